"""`make run`: check services, migrate, register the development models, then run everything.

Starts the development model servers (three over TGI's protocol, one over OpenAI's), a Celery
worker, the beat scheduler and the ASGI web server in the foreground; Ctrl-C stops them all. Point
DATABASE_URL / REDIS_URL elsewhere to use other services; set ARENA_DEV_MODELS=0 to skip the
development model servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEV_MODELS = [
    # name, port, template: three stand-ins answering differently, like three real models
    ("zephyr-7b-beta", 8081, "zephyr"),
    ("mistral-7b-instruct", 8082, "mistral-instruct"),
    ("openhermes-2.5-mistral-7b", 8083, "chatml"),
]
# name, port: served over OpenAI's protocol (the development server's /v1 routes, which apply the chat
# template themselves), so that battles mix protocols. Its server wants an API key, which the model
# names by reference: the variable below, set for every process started here.
DEV_OPENAI_MODELS = [
    ("llama-2-13b-chat", 8084),
]
DEV_API_KEY_ENV = "ARENA_DEV_API_KEY"
DEV_API_KEY = "dev-key-not-a-secret"  # default of ARENA_DEV_API_KEY; the servers listen on loopback only


def preflight() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.db import connection

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        sys.exit(
            f"Redis is not reachable at {settings.REDIS_URL} ({exc}).\n"
            "Start it, e.g.: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' "
            "--appendonly no\nor set REDIS_URL to a running server."
        )
    try:
        connection.ensure_connection()
    except Exception as exc:  # noqa: BLE001 - any driver error means the same thing here
        db = settings.DATABASES["default"]
        engine = db["ENGINE"].rsplit(".", 1)[-1]
        sys.exit(
            f"The database is not reachable ({engine} {db.get('HOST') or db['NAME']}: {exc}).\n"
            "Start PostgreSQL, e.g.: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
            "or unset DATABASE_URL to use the local SQLite file."
        )


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def model_registrations() -> list[list[str]]:
    """The `manage.py` arguments registering each development model (left alone if it exists)."""
    tgi = [
        ["add_model", name, f"http://127.0.0.1:{port}", "--template", template, "--keep-existing"]
        for name, port, template in DEV_MODELS
    ]
    openai = [
        ["add_model", name, f"http://127.0.0.1:{port}/v1", "--protocol", "openai", "--served-model", name,
         "--api-key-env", DEV_API_KEY_ENV, "--keep-existing"]
        for name, port in DEV_OPENAI_MODELS
    ]
    return tgi + openai


def model_server_command(name: str, port: int, *, api_key: str | None = None) -> list[str]:
    command = [PY, "-m", "devserver", "--port", str(port), "--model-id", name]
    return [*command, "--api-key", api_key] if api_key else command


def model_servers(api_key: str) -> dict[str, list[str]]:
    """Each development model's server, by the name the supervisor reports it under."""
    servers = {f"model server {name} (:{port})": model_server_command(name, port) for name, port, _ in DEV_MODELS}
    for name, port in DEV_OPENAI_MODELS:
        servers[f"model server {name} (:{port}, OpenAI protocol)"] = model_server_command(name, port, api_key=api_key)
    return servers


def main() -> None:
    preflight()
    manage("migrate", "--no-input")
    use_dev_models = os.environ.get("ARENA_DEV_MODELS", "1") != "0"
    if use_dev_models:
        # The web server and the worker read the key through the model's reference to this variable.
        os.environ[DEV_API_KEY_ENV] = os.environ.get(DEV_API_KEY_ENV) or DEV_API_KEY
        # A new model joins battles once its server answers the probe add_model queues; the probe
        # is retried for a few seconds, so the servers started below are found as they come up.
        for args in model_registrations():
            manage(*args)
    port = os.environ.get("PORT", "8000")
    commands: dict[str, list[str]] = {}
    if use_dev_models:
        commands.update(model_servers(os.environ[DEV_API_KEY_ENV]))
    commands["Celery worker"] = [PY, "-m", "celery", "-A", "config", "worker", "--pool", "threads",
                                 "--concurrency", "64", "--loglevel", "info", "--without-gossip", "--without-mingle"]
    commands["Celery beat"] = [PY, "-m", "celery", "-A", "config", "beat", "--loglevel", "warning",
                               "--schedule", str(ROOT / ".celerybeat-schedule")]
    commands[f"web server (:{port})"] = [PY, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                                         "--port", port, "--ws-max-size", "262144",
                                         "--ws-per-message-deflate", "false"]
    print(f"\nArena is running on http://127.0.0.1:{port}  (admin: /admin/, Ctrl-C stops everything)\n", flush=True)
    supervise(commands)


def supervise(
    commands: dict[str, list[str]], *, restarts_per_minute: int = 5, first_delay: float = 1.0, poll_seconds: float = 0.5
) -> None:
    """Run the named commands until Ctrl-C; restart one that exits, as the compose restart policy does.

    A Celery worker exits when its Redis connection drops (kombu cannot always close a broken
    channel cleanly), so a Redis restart must not end the whole local stack. Restarts back off
    (`first_delay` seconds, doubling) so that a command waiting for something to come back (a
    port, Redis) gets some time; one that keeps exiting (more than `restarts_per_minute` times in
    a minute) is a real fault: then everything stops and the exit status says which command failed.
    """
    names = list(commands)
    procs = [subprocess.Popen(commands[name], cwd=ROOT, start_new_session=True) for name in names]
    restarts: list[list[float]] = [[] for _ in names]
    due: list[float | None] = [None for _ in names]  # when an exited command starts again

    def stop(*_: object, status: int = 0) -> None:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        sys.exit(status)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        for i, name in enumerate(names):
            now = time.monotonic()
            if due[i] is not None:
                if now >= due[i]:
                    due[i] = None
                    procs[i] = subprocess.Popen(commands[name], cwd=ROOT, start_new_session=True)
                continue
            if procs[i].poll() is None:
                continue
            restarts[i] = [t for t in restarts[i] if now - t < 60] + [now]
            if len(restarts[i]) > restarts_per_minute:
                print(f"{name} exited with {procs[i].returncode} {len(restarts[i])} times in a minute; "
                      "stopping the rest.", file=sys.stderr, flush=True)
                stop(status=1)
            delay = first_delay * 2 ** (len(restarts[i]) - 1)
            print(f"{name} exited with {procs[i].returncode}; starting it again in {delay:g} s.",
                  file=sys.stderr, flush=True)
            due[i] = now + delay
        time.sleep(poll_seconds)


if __name__ == "__main__":
    main()
