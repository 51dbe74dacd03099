"""Plain helpers shared by the tests (fixtures live in the conftest files): polling, free ports,
and the live stack's processes (Celery worker, uvicorn) and dev model servers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from django.conf import settings

from devserver import DevServerConfig, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent


# --- waiting and ports -----------------------------------------------------------------------

def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


# --- processes -------------------------------------------------------------------------------

def process_start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A process in a session of its own (so `process_group_stop` ends its children too)."""
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def process_ready(proc: subprocess.Popen, ready: Callable[[], object], log: Path, what: str,
                  timeout: float = 60) -> None:
    """Wait for a starting process to be ready; if it exits first or never is, fail with the end of its log."""
    try:
        wait_until(lambda: ready() or proc.poll() is not None, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{log.read_text()[-3000:]}") from None
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-3000:]}")


def process_group_stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a process started with start_new_session=True, and its children."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# --- the live stack --------------------------------------------------------------------------

class LiveStack:
    def __init__(self, base_url: str, worker: subprocess.Popen, web: subprocess.Popen, logs: Path):
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://") + "/ws/arena/"
        self.worker = worker
        self.web = web
        self.logs = logs


# The API key of the OpenAI-protocol dev servers in browser tests, given to the stack's processes
# as ARENA_TEST_OPENAI_KEY (models name the variable, never the key).
TEST_OPENAI_KEY = "dev-key-for-tests"


def stack_env() -> dict:
    """The environment of the stack's processes: the test database and Redis."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DEBUG="true",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        ARENA_TEST_OPENAI_KEY=TEST_OPENAI_KEY,
    )
    return env


def worker_start(
    logs: Path, name: str = "worker", extra_env: dict | None = None, loglevel: str = "info"
) -> subprocess.Popen:
    """A Celery worker process; `extra_env` overrides its settings (e.g. CELERY_QUEUE, REDIS_URL)."""
    log = logs / f"{name}.log"
    proc = process_start(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads", "--concurrency", "32",
         "--loglevel", loglevel, "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"],
        log, stack_env() | (extra_env or {}),
    )
    process_ready(proc, lambda: "ready." in log.read_text(), log, "the Celery worker")
    return proc


def web_start(
    logs: Path, name: str = "web", extra_env: dict | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """A uvicorn ASGI server process and its base URL; `extra_env` overrides its settings
    (e.g. ARENA_MAX_TURNS: the pages and the websocket are served with them)."""
    port = port or free_port()
    log = logs / f"{name}.log"
    web = process_start(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        log, stack_env() | (extra_env or {}),
    )
    process_ready(web, lambda: port_open(port), log, "the ASGI server")
    return web, f"http://127.0.0.1:{port}"


def devserver_stats(url: str) -> dict:
    """A dev server's counters: generation requests in flight now, the most at once, received."""
    answer = requests.get(f"{url}/__devserver__/stats", timeout=5)
    answer.raise_for_status()
    return answer.json()


def devserver_stats_reset(url: str) -> dict:
    """The peak of requests in flight starts again from those in flight now."""
    answer = requests.post(f"{url}/__devserver__/stats/reset", timeout=5)
    answer.raise_for_status()
    return answer.json()


@contextlib.contextmanager
def slow_models_serving(tokens_per_second: float, max_new_tokens: int):
    """Two models on dev servers of their own, paced so a reply streams for a while."""
    from arena.models import ChatModel

    configs = [
        DevServerConfig(model_id=f"slow-{i}", time_to_first_token=0.05, tokens_per_second=tokens_per_second)
        for i in (1, 2)
    ]
    params = {"max_new_tokens": max_new_tokens}
    with serve_in_thread(configs[0]) as url_1, serve_in_thread(configs[1]) as url_2:
        yield [
            ChatModel.objects.create(name="slow-1", endpoint_url=url_1, template="zephyr", parameters=params),
            ChatModel.objects.create(name="slow-2", endpoint_url=url_2, template="chatml", parameters=params),
        ]
