"""Commands run without Django set up (config/standalone.py): what they import, and that their
output, errors and exit codes are those of the same command run through Django."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from config.standalone import standalone_run

ROOT = Path(__file__).resolve().parents[2]

# Run manage.py as `python manage.py ...` would, then name the modules of the web stack it loaded.
REPORT_IMPORTS = """
import runpy, sys
sys.argv = ["manage.py", *sys.argv[1:]]
try:
    runpy.run_path("manage.py", run_name="__main__")
finally:
    from django.apps import apps
    web = sorted(m for m in sys.modules if m.split(".")[0] in WEB_PACKAGES or m.startswith(WEB_MODULES))
    print(json.dumps({"apps_ready": apps.ready, "web": web}), file=sys.stderr)
"""
WEB_PACKAGES = ("celery", "kombu", "channels", "channels_redis", "daphne", "redis", "openai", "aiohttp",
                "text_generation", "inference", "whitenoise", "prometheus_client")
WEB_MODULES = ("arena.models", "arena.services", "arena.admin", "django.contrib", "django.db.models",
               "django.template", "django.views")


def manage(*args: str, report: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", *args]
    if report:
        prelude = f"import json\nWEB_PACKAGES = {WEB_PACKAGES!r}\nWEB_MODULES = {WEB_MODULES!r}\n"
        command = [sys.executable, "-c", prelude + REPORT_IMPORTS, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def imports_reported(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stderr.strip().splitlines()[-1])


@pytest.fixture
def battles(tmp_path: Path) -> Path:
    pairs = [("alpha", "beta"), ("beta", "gamma"), ("gamma", "alpha"), ("alpha", "gamma"), ("beta", "alpha")]
    winners = ["model_a", "model_b", "tie", "tie (bothbad)", "model_a", "model_a", "model_b"]
    lines = [
        json.dumps({"model_a": pairs[i % 5][0], "model_b": pairs[i % 5][1], "winner": winners[i % 7],
                    "tstamp": 100.0 - i})  # in reverse time order: Elo must sort them
        for i in range(60)
    ]
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_it_computes_the_leaderboard_without_setting_django_up(battles):
    result = manage("leaderboard", "--battles", str(battles), "--json", "--bootstrap", "20", report=True)
    assert result.returncode == 0, result.stderr
    loaded = imports_reported(result)
    assert loaded == {"apps_ready": False, "web": []}
    board = json.loads(result.stdout)
    assert board["battles"] == 60 and {m["model"] for m in board["models"]} == {"alpha", "beta", "gamma"}


def test_its_results_are_those_of_the_command_run_through_django(battles):
    for flags in (["--json", "--bootstrap", "20", "--seed", "3"], [], ["--anchor", "beta", "--anchor-rating", "1200"]):
        alone = manage("leaderboard", "--battles", str(battles), *flags)
        # --settings makes manage.py leave the command to Django (which reads it before any setting).
        through_django = manage("leaderboard", "--battles", str(battles), "--settings", "config.settings", *flags)
        assert alone.returncode == through_django.returncode == 0, alone.stderr + through_django.stderr
        assert alone.stdout == through_django.stdout and alone.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--battles", "/nonexistent/battles.jsonl"], "CommandError: No such file: /nonexistent/battles.jsonl"),
        (["--battles", "FILE", "--bootstrap", "-1"], "CommandError: --bootstrap must be >= 0"),
        (["--battles", "FILE", "--anchor", "nobody"], "CommandError: --anchor 'nobody' has no battles in this file"),
        (["--battles", "FILE", "--weighting", "sometimes"], "invalid choice: 'sometimes'"),
        ([], "the following arguments are required: --battles"),
    ],
)
def test_it_refuses_bad_input_as_django_would(battles, args, message):
    args = [str(battles) if arg == "FILE" else arg for arg in args]
    alone = manage("leaderboard", *args)
    through_django = manage("leaderboard", *args, "--settings", "config.settings")
    assert alone.returncode == through_django.returncode != 0
    assert message in alone.stderr and message in through_django.stderr
    assert alone.stdout == through_django.stdout == ""


def test_its_help_lists_the_commands_flags_and_djangos():
    result = manage("leaderboard", "--help")
    assert result.returncode == 0
    for flag in ("--battles", "--bootstrap", "--anchor", "--weighting", "--json", "--verbosity", "--traceback"):
        assert flag in result.stdout


def test_other_commands_are_left_to_django():
    assert standalone_run(["manage.py", "migrate", "--check"]) is False
    assert standalone_run(["manage.py"]) is False
    assert standalone_run(["manage.py", "leaderboard", "--battles", "x", "--settings=config.settings"]) is False
    assert standalone_run(["manage.py", "leaderboard", "--pythonpath", ".", "--battles", "x"]) is False
