"""`make run`: explains a missing service instead of failing obscurely, keeps its processes running, and
registers development models over both protocols."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers import free_port, port_open, wait_until

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


def _devstack():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import devstack
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return devstack


def test_the_development_models_mix_protocols_and_register_with_add_models_options():
    from arena.management.commands.add_model import Command

    devstack = _devstack()
    parser = Command().create_parser("manage.py", "add_model")
    registered = {}
    for args in devstack.model_registrations():
        assert args[0] == "add_model" and "--keep-existing" in args, args
        options = parser.parse_args(args[1:])  # a CommandError for an option add_model doesn't take
        registered[options.name] = options
    assert {o.protocol for o in registered.values()} == {"tgi", "openai"}, "local battles mix both protocols"
    servers = devstack.model_servers("k")
    assert len(servers) == len(registered)
    ports = set()
    for options in registered.values():
        url = urlsplit(options.url)
        assert url.hostname == "127.0.0.1"
        ports.add(url.port)
        (command,) = [c for c in servers.values() if c[c.index("--port") + 1] == str(url.port)]
        assert command[command.index("--model-id") + 1] == options.name
        if options.protocol == "openai":
            assert url.path == "/v1", "an OpenAI client's base URL"
            assert options.served_model == options.name
            assert options.api_key_env == devstack.DEV_API_KEY_ENV and not options.template
            assert command[command.index("--api-key") + 1] == "k"
        else:
            assert url.path == "" and options.template and "--api-key" not in command
    assert len(ports) == len(registered), "one port per model server"


def test_the_openai_development_server_answers_the_probe_with_the_key_it_references(monkeypatch):
    import asyncio

    from arena.credentials import api_key_read
    from inference.openai_chat import openai_probe

    devstack = _devstack()
    name, _ = devstack.DEV_OPENAI_MODELS[0]
    port = free_port()
    monkeypatch.setenv(devstack.DEV_API_KEY_ENV, devstack.DEV_API_KEY)
    proc = subprocess.Popen(
        devstack.model_server_command(name, port, api_key=devstack.DEV_API_KEY), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), 30, "the development model server")
        base_url = f"http://127.0.0.1:{port}/v1"
        key = api_key_read(env=devstack.DEV_API_KEY_ENV, file="")
        healthy = asyncio.run(openai_probe(base_url, name, api_key=key))
        assert healthy["healthy"] and healthy["info"]["id"] == name, healthy
        refused = asyncio.run(openai_probe(base_url, name, api_key="wrong"))
        assert not refused["healthy"] and "API key was refused" in refused["error"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
