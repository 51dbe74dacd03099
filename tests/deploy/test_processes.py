"""The containers' commands, run as processes: what docker-compose.yml starts, with its flags and
environment (production settings), against the test PostgreSQL and Redis. Only the host and port
differ, and the image's console scripts are the virtualenv's.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.helpers import free_port, port_open, process_group_stop, process_ready, process_start

from .runtime import clean_env, database_url
from .stack import ROOT, command_argv, compose_resolved, container_env, deployment_env

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def service_process_env(service: str, **env_overrides: str) -> tuple[list[str], dict[str, str], dict]:
    """(argv, environment, resolved service) of a compose service, pointed at the test services."""
    env = {**deployment_env(), **env_overrides}
    resolved = compose_resolved(env)["services"][service]
    container = container_env(resolved, env)
    container.update(DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL)
    process_env = clean_env(
        **container,
        PYTHONPATH=str(ROOT),  # the image's ENV PYTHONPATH=/app
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        PYTHONUNBUFFERED="1",
    )
    return command_argv(resolved["command"]), process_env, resolved


def get(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.parametrize("trusted_proxies", ["", "172.16.0.0/12"], ids=["no-proxy-configured", "proxy-range"])
def test_web_serves_production_settings_and_its_health_check_passes(db, tmp_path, trusted_proxies):
    argv, env, web = service_process_env("web", TRUSTED_PROXIES=trusted_proxies)
    assert argv[0] == "uvicorn"
    port = free_port()
    argv = [str(BIN / "uvicorn")] + [
        "--host=127.0.0.1" if a == "--host=0.0.0.0" else f"--port={port}" if a == "--port=8000" else a for a in argv[1:]
    ]
    log = tmp_path / "web.log"
    process = process_start(argv, log, env)
    try:
        process_ready(process, lambda: port_open(port), log, "uvicorn")
        health = web["healthcheck"]["test"]
        assert health[:2] == ["CMD", "python"]
        script = health[2].replace("/app/", f"{ROOT}/")
        result = subprocess.run(
            [sys.executable, script, str(port)], env=env, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr + log.read_text()[-3000:]

        host = env["ALLOWED_HOSTS"].split(",")[0]
        plain = get(port, "/healthz", {"Host": host})
        assert plain.status == 301 and plain.getheader("Location") == f"https://{host}/healthz"
        assert get(port, "/healthz", {"Host": "attacker.example"}).status == 400
        secure = get(port, "/healthz", {"Host": host, "X-Forwarded-Proto": "https"})
        assert secure.status == 200 and "max-age=31536000" in secure.getheader("Strict-Transport-Security")
    finally:
        process_group_stop(process, timeout=20)
    result = subprocess.run([sys.executable, script, str(port)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "unhealthy" in result.stderr


def test_worker_starts_with_the_thread_pool_and_answers_its_health_check(tmp_path):
    queue = "deploy-check-worker"
    argv, env, worker = service_process_env("worker", CELERY_QUEUE=queue)
    env["CELERY_QUEUE"] = queue  # a queue of its own: it must not take other tests' tasks
    assert argv[0] == "celery"
    hostname = socket.gethostname()
    log = tmp_path / "worker.log"
    process = process_start([str(BIN / "celery"), *argv[1:]], log, env)
    try:
        process_ready(process, lambda: "ready." in log.read_text(), log, "the Celery worker")
        text = log.read_text()
        assert "concurrency: 64 (thread)" in text, text[:3000]
        kind, command = worker["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        result = subprocess.run(
            ["sh", "-c", command], cwd=ROOT, env={**env, "HOSTNAME": hostname}, capture_output=True, text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        wrong = command.replace("celery@$HOSTNAME", "celery@no-such-worker").replace("--timeout 10", "--timeout 1")
        result = subprocess.run(["sh", "-c", wrong], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0, "the health check must fail when this worker doesn't answer"
    finally:
        process_group_stop(process, timeout=20)
    assert process.returncode == 0, log.read_text()[-3000:]


def test_beat_starts_and_writes_its_schedule(tmp_path):
    queue = "deploy-check-beat"
    argv, env, _ = service_process_env("beat", CELERY_QUEUE=queue)
    env["CELERY_QUEUE"] = queue
    assert argv[:4] == ["celery", "-A", "config", "beat"]
    schedule = argv[argv.index("--schedule") + 1]
    local_schedule = tmp_path / Path(schedule).name
    argv = [str(BIN / "celery"), *(str(local_schedule) if a == schedule else a for a in argv[1:])]
    log = tmp_path / "beat.log"
    process = process_start(argv, log, env)
    try:
        process_ready(process, lambda: "beat: Starting..." in log.read_text(), log, "celery beat")
        process_ready(process, lambda: any(tmp_path.glob(local_schedule.name + "*")), log, "the schedule file")
    finally:
        process_group_stop(process, timeout=20)
        redis.Redis.from_url(settings.REDIS_URL).delete(queue)
