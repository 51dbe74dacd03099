"""The Dockerfile and its build context, checked without a Docker engine.

The build's own steps that need no engine are run here: the runtime requirement list, the lock's
coverage of everything it pulls in, and collectstatic on a copy of the build context.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .stack import DOCKERIGNORE, ROOT, command_argv, compose_raw, dockerfile

RUNTIME_INSTALL = re.compile(r"\b(pip3?|apt-get|apt|apk|npm|uv|poetry|conda)\b\s+(install|add|sync)\b|collectstatic")


@pytest.fixture(scope="module")
def instructions():
    return dockerfile()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- Instructions ---------------------------------------------------------------------------


def test_base_image_is_a_pinned_python_311_slim(instructions):
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert froms, "no FROM"
    for instruction in froms:
        image = instruction.args.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), (
            f"pin the base image to a patch release, not {image!r}"
        )
    assert ">=3.11" in _pyproject()["project"]["requires-python"]


def test_runs_as_a_non_root_user_and_builds_nothing_after_switching(instructions):
    keywords = [i.keyword for i in instructions]
    users = [i for i in instructions if i.keyword == "USER"]
    assert users, "the image must not run as root"
    last_user = users[-1]
    user = last_user.args.split(":")[0]
    assert user not in ("root", "0"), "the final USER is root"
    assert user == "10001" or user.isalpha(), user
    last_user_at = instructions.index(last_user)
    for keyword in ("CMD", "ENTRYPOINT"):
        if keyword in keywords:
            assert keywords.index(keyword) > last_user_at, f"{keyword} before the final USER"
    assert "RUN" not in keywords[last_user_at:], "RUN after the final USER"
    useradd = " ".join(i.args for i in instructions if i.keyword == "RUN" and "useradd" in i.args)
    assert "--uid 10001" in useradd


def test_dependencies_are_installed_from_the_lock_without_the_test_extras(instructions):
    installs = [i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args]
    assert len(installs) == 1, installs
    (install,) = installs
    assert "-c requirements.lock" in install and "--no-cache-dir" in install
    assert "requirements_runtime.py" in install
    assert " -e " not in install and "[test]" not in install and ".[" not in install


def test_runtime_requirements_are_pyprojects_dependencies_pinned_as_in_the_lock():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "requirements_runtime.py"), str(ROOT / "pyproject.toml")],
        capture_output=True, text=True, check=True,
    )
    printed = result.stdout.split()
    assert printed == _pyproject()["project"]["dependencies"]
    lock = _lock()
    for line in printed:
        requirement = Requirement(line)
        assert str(requirement.specifier).startswith("=="), f"{line}: pin it"
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(lock[name]), f"{line} but the lock has {lock[name]}"


def test_the_lock_pins_every_package_the_runtime_requirements_pull_in():
    """pip resolves the runtime set inside the image; each package it can reach must be pinned."""
    lock = _lock()
    base_env = default_environment()
    seen: set[str] = set()
    todo = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    problems = []
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        if name not in lock:
            problems.append(f"{requirement.name} is needed but not pinned in requirements.lock")
            continue
        if not requirement.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{requirement} conflicts with the lock's {name}=={lock[name]}")
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is not installed here, so its dependencies can't be checked")
            continue
        for text in distribution.requires or []:
            dependency = Requirement(text)
            wanted = dependency.marker is None or any(
                dependency.marker.evaluate({**base_env, "extra": extra}) for extra in (requirement.extras or {""})
            )
            if wanted:
                todo.append(dependency)
    assert problems == []
    runtime = {k.split("[")[0] for k in seen}
    assert "playwright" not in runtime and "pytest" not in runtime, "test packages leak into the image"


def test_collectstatic_runs_at_build_time_before_the_user_switch(instructions):
    runs = [i for i in instructions if i.keyword == "RUN" and "collectstatic" in i.args]
    assert len(runs) == 1
    run = runs[0].args
    assert "DEBUG=false" in run and re.search(r"SECRET_KEY=\S+", run) and "--noinput" in run
    last_user = max(n for n, i in enumerate(instructions) if i.keyword == "USER")
    assert instructions.index(runs[0]) < last_user
    for instruction in instructions:
        if instruction.keyword in ("ENV", "ARG"):
            assert "SECRET_KEY" not in instruction.args, "the build key must not stay in the image"


def test_nothing_is_installed_or_built_when_a_container_starts(instructions):
    commands = [
        f"{instruction.keyword} {instruction.args}"
        for instruction in instructions
        if instruction.keyword in ("CMD", "ENTRYPOINT", "HEALTHCHECK")
    ]
    for name, service in compose_raw()["services"].items():
        commands.extend(
            f"{name}.{key}: {' '.join(command_argv(service[key]))}"
            for key in ("command", "entrypoint")
            if key in service
        )
        test = (service.get("healthcheck") or {}).get("test")
        if test:
            commands.append(f"{name}.healthcheck: {' '.join(command_argv(test))}")
    scripts = (script for script in (ROOT / "docker").iterdir() if script.is_file())
    commands.extend(f"{script.name}: {script.read_text()}" for script in scripts)
    for command in commands:
        # the requirement script is only run during the build, by the RUN step
        if command.startswith("requirements_runtime.py"):
            continue
        assert not RUNTIME_INSTALL.search(command), command


def test_image_serves_the_web_role_by_default_with_a_health_check(instructions):
    by_keyword = {i.keyword: i for i in instructions}
    assert by_keyword["EXPOSE"].args.split() == ["8000"]
    assert by_keyword["WORKDIR"].args == "/app"
    assert re.search(r"\bPYTHONPATH=/app\b", " ".join(i.args for i in instructions if i.keyword == "ENV"))
    cmd = by_keyword["CMD"].exec_form()
    assert cmd[:2] == ["uvicorn", "config.asgi:application"] and "--host=0.0.0.0" in cmd and "--port=8000" in cmd
    health = by_keyword["HEALTHCHECK"]
    assert health.exec_form() == ["python", "/app/docker/healthcheck.py"]
    assert "--start-period=" in health.args and "--interval=" in health.args


# --- Build context --------------------------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((negate, re.compile(regex + "(?:/.*)?$")))
    return patterns


def ignored(relative: str, patterns=None) -> bool:
    """Whether Docker leaves `relative` (a posix path from the context root) out of the context."""
    result = False
    for negate, regex in patterns or _ignore_patterns():
        if regex.match(relative):
            result = not negate
    return result


def build_context_files() -> list[str]:
    patterns = _ignore_patterns()
    files = []
    for directory, dirnames, filenames in os.walk(ROOT):
        relative_dir = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        dirnames[:] = [d for d in dirnames if not ignored(prefix + d, patterns)]
        files += [prefix + f for f in filenames if not ignored(prefix + f, patterns)]
    return files


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    for path in (".git/config", ".venv/bin/python", ".env", ".env.local", "arena.sqlite3", "arena.sqlite3-wal",
                 "staticfiles/admin/x.css", ".pytest_cache/v", "test-results/trace.zip", "tests/conftest.py",
                 "arena/__pycache__/models.cpython-311.pyc", ".celerybeat-schedule", "arena.egg-info/PKG-INFO",
                 ".hypothesis/examples"):
        assert ignored(path), f"{path} would be sent into the image"


def test_build_context_has_everything_the_image_needs(instructions):
    files = set(build_context_files())
    for needed in ("manage.py", "pyproject.toml", "requirements.lock", "docker/healthcheck.py",
                   "docker/requirements_runtime.py", "config/settings.py", "config/asgi.py", "config/celery.py",
                   "arena/models.py", "arena/management/commands/models_sync.py", "inference/backends.py"):
        assert needed in files, f"{needed} is left out of the build context"
    for app in ("arena", "inference"):
        for kind in ("templates", "static"):
            source = ROOT / app / kind
            if source.is_dir():
                for path in source.rglob("*"):
                    if path.is_file():
                        assert path.relative_to(ROOT).as_posix() in files
    for instruction in instructions:
        if instruction.keyword == "COPY" and "--from" not in instruction.args:
            sources = [a for a in instruction.args.split()[:-1] if not a.startswith("--")]
            for source in sources:
                if source == ".":
                    continue
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert source in files, f"COPY {source}: left out by .dockerignore"


def test_collectstatic_as_the_build_runs_it(tmp_path):
    """The build's collectstatic step, on a copy of the build context, with the build's environment."""
    context = tmp_path / "app"
    for relative in build_context_files():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    run = next(i.args for i in dockerfile() if i.keyword == "RUN" and "collectstatic" in i.args)
    assignments = dict(re.findall(r"\b([A-Z_]+)=(\S+)", run.split("python", 1)[0]))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(context), **assignments}
    command = run.split("python", 1)[1].split()
    result = subprocess.run(
        [sys.executable, *command], cwd=context, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    static_root = context / "staticfiles"
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    # Every {% static %} a template names must be in the manifest, or that page fails in production.
    for template in context.glob("*/templates/**/*.html"):
        for name in re.findall(r"{%\s*static\s+['\"]([^'\"]+)['\"]", template.read_text()):
            assert name in manifest, f"{template.name}: {name} is not collected"
            assert (static_root / manifest[name]).is_file()
    assert any(p.suffix == ".gz" for p in static_root.rglob("*")), "whitenoise compresses at build time"
    assert "admin/css/base.css" in manifest
    # The page's modules import each other by their hashed names, which change with their content.
    entry = (static_root / manifest["arena/arena.js"]).read_text()
    imported = re.findall(r'from\s+"\./([^"]+)"', entry)
    assert imported and all(f"arena/{name}" in manifest.values() for name in imported), imported
