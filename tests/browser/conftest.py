import shutil
from types import SimpleNamespace

import pytest

from devserver import DevServerConfig, serve_in_thread


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


@pytest.fixture(scope="module")
def odd_servers():
    """A model server whose every reply fails after two tokens, and one slow to its first token."""
    faulty = DevServerConfig(model_id="faulty-model", time_to_first_token=0.05, tokens_per_second=150,
                             fault="error-mid-stream", fault_after_tokens=2)
    slow_start = DevServerConfig(model_id="slow-start", time_to_first_token=2.5, tokens_per_second=150)
    with serve_in_thread(faulty) as faulty_url, serve_in_thread(slow_start) as slow_start_url:
        yield SimpleNamespace(faulty=faulty_url, slow_start=slow_start_url)
