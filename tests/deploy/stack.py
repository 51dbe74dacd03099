"""Reading the deployment files the way Docker would, without a Docker engine.

`compose_resolved()` applies Compose's variable interpolation (`${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `$$`) to the parsed file; `dockerfile()` splits
a Dockerfile into instructions (continuations joined, comments dropped).
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"

APP_SERVICES = ("web", "worker", "beat")

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    def replace(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        unset_or_empty = not value
        if op == ":-":
            return arg if unset_or_empty else value
        if op == "-":
            return arg if value is None else value
        if (op == ":?" and unset_or_empty) or (op == "?" and value is None):
            raise InterpolationError(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(replace, text)


def interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(n, env) for n in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


def variables_referenced(text: str) -> set[str]:
    return {m["braced"] or m["bare"] for m in _VAR.finditer(text) if not m["escaped"]}


def compose_text() -> str:
    return COMPOSE.read_text()


def compose_raw() -> dict:
    return yaml.safe_load(compose_text())


def env_example() -> tuple[dict[str, str], set[str]]:
    """(NAME -> value of the active lines, names of the commented-out `# NAME=value` lines)."""
    values: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            values[m[1]] = m[2]
        elif m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=", line):
            commented.add(m[1])
    return values, commented


def deployment_env() -> dict[str, str]:
    """.env as an operator fills it in from .env.example: its values plus the required secrets."""
    values, _ = env_example()
    return {
        **values,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "HF_TOKEN": "hf_" + secrets.token_hex(16),
    }


def compose_resolved(env: dict[str, str] | None = None) -> dict:
    return interpolate_tree(compose_raw(), deployment_env() if env is None else env)


def container_env(service: dict, env: dict[str, str]) -> dict[str, str]:
    """The environment a container of `service` gets; `NAME:` with no value passes NAME through."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    out = {}
    for name, value in environment.items():
        if value is None:
            if name in env:
                out[name] = env[name]
        else:
            out[name] = str(value)
    return out


def command_argv(command) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON-array form's argv, or None for the shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text.split("CMD", 1)[1] if "CMD" in text else ""
        text = text.strip()
        if text.startswith("["):
            return json.loads(text)
        return None


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    return instructions
