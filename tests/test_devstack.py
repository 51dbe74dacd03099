"""`make run` explains a missing service instead of failing obscurely."""

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port

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


def supervise(tmp_path: Path, commands: dict[str, list[str]], *, after: float = 0) -> subprocess.CompletedProcess:
    """Run devstack.supervise() on `commands` in a child process; SIGTERM it after `after` seconds if set."""
    code = (
        "import sys; sys.path.insert(0, 'scripts'); import devstack; "
        f"devstack.supervise({commands!r}, restarts_per_minute=2, first_delay=0.2, poll_seconds=0.05)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    if after:
        try:
            proc.wait(timeout=after)
        except subprocess.TimeoutExpired:
            proc.terminate()
    _, stderr = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)


def test_a_command_that_exits_is_started_again(tmp_path):
    starts = tmp_path / "starts"
    # Exits the first time (like a worker losing Redis), keeps running the second.
    flaky = f"import os, sys, time; f = open({str(starts)!r}, 'a'); f.write('x'); f.close(); " \
            f"sys.exit(3) if os.path.getsize({str(starts)!r}) == 1 else time.sleep(60)"
    result = supervise(tmp_path, {"flaky server": [sys.executable, "-c", flaky]}, after=3)
    assert starts.read_text() == "xx"
    assert "flaky server exited with 3; starting it again in 0.2 s." in result.stderr
    assert result.returncode == 0, result.stderr  # stopped by SIGTERM, as Ctrl-C does


def test_a_command_that_keeps_exiting_stops_everything(tmp_path):
    alive = tmp_path / "alive"
    steady = f"import time; open({str(alive)!r}, 'a').write('x'); time.sleep(60)"
    result = supervise(
        tmp_path,
        {"broken": [sys.executable, "-c", "import sys; sys.exit(3)"], "steady": [sys.executable, "-c", steady]},
    )
    assert result.returncode == 1
    assert "broken exited with 3; starting it again in 0.2 s." in result.stderr
    assert "broken exited with 3; starting it again in 0.4 s." in result.stderr  # backing off
    assert "broken exited with 3 3 times in a minute; stopping the rest." in result.stderr
    assert alive.read_text() == "x"  # the healthy command was never restarted
