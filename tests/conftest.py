"""Shared fixtures: dev model servers, chat models, clients, and the live stack (real worker and
ASGI server processes) for integration and browser tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from arena.clients import ClientIdentity
from devserver import DevServerConfig, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _redis_clean():
    """Tests use their own Redis database; start from an empty one (no stale tasks or limits)."""
    assert settings.REDIS_URL.rstrip("/").split("/")[-1] not in ("", "0") or os.environ.get("ARENA_TEST_ALLOW_DB0"), (
        "Run the tests through `make test` (it points REDIS_URL at a separate database)."
    )
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    yield


def _deadlocked(exc: BaseException | None) -> bool:
    while exc is not None:
        if "deadlock detected" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@pytest.fixture(scope="session", autouse=True)
def _flush_retried_after_a_deadlock():
    """A transactional test ends by truncating every table while the real Celery worker may still
    be counting that test's votes; PostgreSQL may then break the lock cycle by cancelling the
    TRUNCATE, which would leave the test's rows to the next test. Try the flush again: the
    worker's transaction finishes meanwhile."""
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self):
        for attempt in range(4):
            try:
                return original(self)
            except Exception as exc:  # noqa: BLE001 - only a deadlock is retried
                if attempt == 3 or not _deadlocked(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


@pytest.fixture(autouse=True)
def _cache_clear():
    from django.core.cache import cache

    cache.clear()  # rate-limit counters must not leak between tests
    yield


@pytest.fixture(scope="session")
def devserver_urls():
    """Two TGI-compatible dev servers, fast enough for tests, slow enough to stream."""
    configs = [
        DevServerConfig(model_id="zephyr-7b-beta", time_to_first_token=0.05, tokens_per_second=150),
        DevServerConfig(model_id="mistral-7b-instruct", time_to_first_token=0.05, tokens_per_second=150),
    ]
    with serve_in_thread(configs[0]) as url_a, serve_in_thread(configs[1]) as url_b:
        yield url_a, url_b


@contextlib.contextmanager
def slow_models_serving(tokens_per_second: float, max_new_tokens: int):
    """Two models on dev servers of their own, paced so a reply streams for a while."""
    from arena.models import ChatModel

    configs = [
        DevServerConfig(model_id=f"slow-{i}", time_to_first_token=0.05, tokens_per_second=tokens_per_second) for i in (1, 2)
    ]
    params = {"max_new_tokens": max_new_tokens}
    with serve_in_thread(configs[0]) as url_1, serve_in_thread(configs[1]) as url_2:
        yield [
            ChatModel.objects.create(name="slow-1", endpoint_url=url_1, template="zephyr", parameters=params),
            ChatModel.objects.create(name="slow-2", endpoint_url=url_2, template="chatml", parameters=params),
        ]


@pytest.fixture
def chat_models(db, devserver_urls):
    from arena.models import ChatModel

    return [
        ChatModel.objects.create(name="zephyr-7b-beta", endpoint_url=devserver_urls[0], template="zephyr", timeout_seconds=20),
        ChatModel.objects.create(
            name="mistral-7b-instruct", endpoint_url=devserver_urls[1], template="mistral-instruct", timeout_seconds=20
        ),
    ]


@pytest.fixture
def alice() -> ClientIdentity:
    return ClientIdentity(client_id="alice-session-hash", ip_hash="ip-hash-1")


@pytest.fixture
def mallory() -> ClientIdentity:
    return ClientIdentity(client_id="mallory-session-hash", ip_hash="ip-hash-2")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


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


class LiveStack:
    def __init__(self, base_url: str, worker: subprocess.Popen, web: subprocess.Popen, logs: Path):
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://") + "/ws/arena/"
        self.worker = worker
        self.web = web
        self.logs = logs


def _subprocess_env() -> dict:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DEBUG="true",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    return env


def worker_start(logs: Path, name: str = "worker", extra_env: dict | None = None) -> subprocess.Popen:
    """A Celery worker process; `extra_env` overrides its settings (e.g. CELERY_QUEUE, REDIS_URL)."""
    log_path = logs / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads", "--concurrency", "32",
         "--loglevel", "info", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"],
        cwd=ROOT, env=_subprocess_env() | (extra_env or {}), stdout=log_path.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait_for(lambda: "ready." in log_path.read_text() or proc.poll() is not None, 60, "the Celery worker")
    if proc.poll() is not None:
        raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def live_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("live-logs")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, live_logs):
    """A real Celery worker process (thread pool) consuming the test broker, on the test database."""
    proc = worker_start(live_logs)
    yield proc
    process_group_stop(proc)


def web_start(logs: Path, name: str = "web", extra_env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """A uvicorn ASGI server process and its base URL; `extra_env` overrides its settings
    (e.g. ARENA_MAX_TURNS: the pages and the websocket are served with them)."""
    port = free_port()
    web_log = logs / f"{name}.log"
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=_subprocess_env() | (extra_env or {}), stdout=web_log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def web_up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return web.poll() is not None

    _wait_for(web_up, 60, "the ASGI server")
    if web.poll() is not None:
        raise RuntimeError(f"web exited: {web_log.read_text()[-3000:]}")
    return web, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def live_stack(celery_worker_process, live_logs):
    """The real worker plus a real uvicorn ASGI server on the test database."""
    web, base_url = web_start(live_logs)
    stack = LiveStack(base_url, celery_worker_process, web, live_logs)
    yield stack
    process_group_stop(web)
