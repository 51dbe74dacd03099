"""Secrets by reference: a model's API key and extra headers name where the value lives, never the value.

A reference is `env:NAME` (an environment variable of the web and worker processes) or
`file:/path` (a file such as a Docker or Kubernetes secret, read whole, trailing newline dropped).
The database, the admin, logs, exports and error messages only ever see the reference; the value
is read when a request is about to be made, in the process making it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# RFC 9110 token characters: what a header field name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class CredentialMissing(Exception):
    """A reference that gives no value; the message names the reference, never a value."""


def reference_problem(reference: str) -> str | None:
    """Why `reference` is not a valid `env:NAME` or `file:/path`; None if it is."""
    kind, sep, where = reference.partition(":")
    if not sep or kind not in ("env", "file"):
        return f"“{reference[:40]}” must be env:VARIABLE or file:/path/to/secret"
    if kind == "env" and not _ENV_NAME.match(where):
        return f"“{where[:40]}” is not an environment variable name"
    if kind == "file" and not where.startswith("/"):
        return f"“{where[:40]}” must be an absolute path"
    return None


def env_name_problem(name: str) -> str | None:
    return None if _ENV_NAME.match(name) else f"“{name[:40]}” is not an environment variable name"


def headers_problems(headers: object) -> list[str]:
    """Why an extra-headers mapping ({"Header-Name": "env:VAR" | "file:/path"}) is invalid."""
    if not isinstance(headers, dict):
        return ['Extra headers must be a JSON object, e.g. {"OpenAI-Organization": "env:OPENAI_ORG"}.']
    problems = []
    for name, reference in headers.items():
        if not _HEADER_NAME.match(name):
            problems.append(f"“{name[:40]}” is not a header name.")
        elif name.lower() == "authorization":
            problems.append("Authorization is set from the API key; use the API key fields for it.")
        elif not isinstance(reference, str):
            problems.append(f"{name}: the value must be a reference string (env:VARIABLE or file:/path), not a value.")
        elif problem := reference_problem(reference):
            problems.append(f"{name}: {problem} (a header's value is given by reference only).")
    return problems


def reference_read(reference: str) -> str:
    """The value a reference names; CredentialMissing if it names nothing usable."""
    kind, _, where = reference.partition(":")
    if kind == "env":
        value = os.environ.get(where, "")
        if not value.strip():
            raise CredentialMissing(f"environment variable {where} is not set")
        return value.strip()
    try:
        value = Path(where).read_text().strip()
    except OSError as exc:
        raise CredentialMissing(f"secret file {where} can't be read ({exc.strerror or type(exc).__name__})") from None
    if not value:
        raise CredentialMissing(f"secret file {where} is empty")
    return value


def api_key_reference(*, env: str, file: str) -> str | None:
    """The reference a model's two API key fields make (at most one is set); None for no key."""
    if env:
        return f"env:{env}"
    if file:
        return f"file:{file}"
    return None


def api_key_read(*, env: str, file: str) -> str:
    """The model's API key, "" when it has none; CredentialMissing naming what is missing."""
    reference = api_key_reference(env=env, file=file)
    if reference is None:
        return ""
    try:
        return reference_read(reference)
    except CredentialMissing as exc:
        raise CredentialMissing(f"Its API key is missing: {exc}") from None


def headers_read(headers: dict[str, str]) -> dict[str, str]:
    resolved = {}
    for name, reference in headers.items():
        try:
            resolved[name] = reference_read(reference)
        except CredentialMissing as exc:
            raise CredentialMissing(f"Its header {name} is missing: {exc}") from None
    return resolved
