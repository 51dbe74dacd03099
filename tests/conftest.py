"""Shared fixtures: dev model servers, chat models, clients, and the live stack (real worker and
ASGI server processes) for integration and browser tests."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from arena.clients import ClientIdentity
from devserver import DevServerConfig, serve_in_thread
from tests.helpers import LiveStack, process_group_stop, web_start, worker_start


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
            except Exception as exc:  # only a deadlock is retried
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


@pytest.fixture
def chat_models(db, devserver_urls):
    from arena.models import ChatModel

    return [
        ChatModel.objects.create(
            name="zephyr-7b-beta", endpoint_url=devserver_urls[0], template="zephyr", timeout_seconds=20
        ),
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


@pytest.fixture(scope="session")
def live_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("live-logs")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, live_logs):
    """A real Celery worker process (thread pool) consuming the test broker, on the test database."""
    proc = worker_start(live_logs)
    yield proc
    process_group_stop(proc)


@pytest.fixture(scope="session")
def live_stack(celery_worker_process, live_logs):
    """The real worker plus a real uvicorn ASGI server on the test database."""
    web, base_url = web_start(live_logs)
    stack = LiveStack(base_url, celery_worker_process, web, live_logs)
    yield stack
    process_group_stop(web)


# --- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium driven by Playwright; a browser is never downloaded at test time.

    Module-scoped: Playwright's sync API keeps an event loop running in this thread, which
    must be gone before the asyncio tests of other modules run.
    """
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (make test installs it: apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; Django's ORM is still safe to call
    # here. Only while a browser module runs: other tests' subprocesses must not inherit it.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as p:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()
