"""Production settings, in fresh processes: Django's deployment checks pass, bad config fails loudly."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .runtime import SETTINGS_VARS, clean_env, production_env
from .stack import ROOT, compose_resolved, container_env, deployment_env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def settings_values(env: dict[str, str], names: list[str]) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_deployment_checks_pass_with_production_settings():
    result = manage(production_env(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr


def test_deployment_checks_pass_with_exactly_the_compose_environment():
    env = deployment_env()
    web = compose_resolved(env)["services"]["web"]
    result = manage(clean_env(**container_env(web, env)), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_is_https_only_and_serves_collected_static_files():
    values = settings_values(
        production_env(),
        ["DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
         "STORAGES", "ALLOWED_HOSTS"],
    )
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["STORAGES"]["staticfiles"]["BACKEND"] == "config.storage.StaticFilesStorage"
    assert values["ALLOWED_HOSTS"] == ["arena.example.com"]


def test_a_plain_http_trial_is_possible_with_secure_ssl_off():
    values = settings_values(
        production_env(SECURE_SSL="false"),
        ["DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"],
    )
    assert values == {
        "DEBUG": False, "SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False, "SECURE_HSTS_SECONDS": 0,
    }


def test_without_a_secret_key_production_refuses_to_start():
    # SECRET_KEY set but empty: a .env file next to manage.py can't supply one either.
    result = manage(production_env(SECRET_KEY=""), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "name, value",
    [
        ("ARENA_MAX_TURNS", "abc"),
        ("ARENA_BATTLES_PER_MINUTE", "1.5"),
        ("DEBUG", "maybe"),
        ("SECURE_SSL", "sometimes"),
        ("CELERY_TASK_TIME_LIMIT", "fifteen minutes"),
        ("ARENA_MAX_TURNS", "0"),
        ("ARENA_VOTES_PER_DAY", "-5"),
        ("ARENA_STALL_SECONDS", "0"),
        ("DB_POOL_MAX_SIZE", "-1"),
        ("ARENA_SAMPLING", "random"),
        ("ARENA_RATINGS_WEIGHTING", "sometimes"),
        ("ARENA_PROVISIONAL_VOTES", "-1"),
        ("ARENA_NEW_MODEL_BOOST_VOTES", "many"),
    ],
)
def test_a_bad_value_stops_the_process_naming_the_variable(name, value):
    result = manage(production_env(**{name: value}), "check")
    assert result.returncode != 0, f"{name}={value} was accepted"
    last_line = result.stderr.strip().splitlines()[-1]
    assert f'"{name}"' in last_line and "invalid" in last_line, result.stderr[-2000:]


def test_a_pool_and_persistent_connections_together_are_refused():
    result = manage(production_env(DB_CONN_MAX_AGE="60"), "check")
    assert result.returncode != 0 and "DB_POOL_MAX_SIZE=0" in result.stderr, result.stderr[-2000:]
    assert manage(production_env(DB_CONN_MAX_AGE="60", DB_POOL_MAX_SIZE="0"), "check").returncode == 0
    pool = settings_values(production_env(), ["DATABASES"])["DATABASES"]["default"]["OPTIONS"]["pool"]
    assert pool["max_size"] == 20


def test_env_example_shows_the_real_defaults():
    """Each commented-out `# NAME=value` in .env.example is the value the settings use unset."""
    shown = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=(.+)$", line):
            shown[m[1]] = m[2].strip()
    shown = {name: text for name, text in shown.items() if name in SETTINGS_VARS}  # not compose's own
    renamed = {"CELERY_QUEUE": "CELERY_TASK_DEFAULT_QUEUE"}
    names = [renamed.get(n, n) for n in shown if n != "DB_CONN_MAX_AGE"]
    actual = settings_values(production_env(), names)
    actual["DB_CONN_MAX_AGE"] = settings_values(production_env(), ["DATABASES"])["DATABASES"]["default"]["CONN_MAX_AGE"]
    for name, text in shown.items():
        value = actual[renamed.get(name, name)]
        if isinstance(value, bool):
            parsed = text.lower() in ("true", "1", "yes", "on")
        elif isinstance(value, (int, float)):
            parsed = type(value)(float(text))
        elif isinstance(value, list):
            parsed = [w.strip() for w in text.split(",")]
        else:
            parsed = text
        assert parsed == value, f".env.example shows {name}={text} but the default is {value!r}"
    assert len(shown) >= 20
