"""`make run` explains a missing service instead of failing obscurely."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_devstack(**env):
    return subprocess.run(
        [sys.executable, "scripts/devstack.py"], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=60,
    )


def test_it_names_redis_and_how_to_start_it():
    result = run_devstack(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode != 0
    assert "Redis is not reachable" in result.stderr and "redis-server" in result.stderr


def test_it_names_the_database_and_how_to_start_it():
    result = run_devstack(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/arena")
    assert result.returncode != 0
    assert "database is not reachable" in result.stderr and "pg_ctlcluster" in result.stderr
