"""Fixtures of the reliability and security tests (their plain helpers are in helpers.py)."""

import pytest

from arena import queue
from tests.browser.conftest import chromium, page  # noqa: F401 - the same module-scoped browser fixtures
from tests.reliability.helpers import NoTask


@pytest.fixture
def no_generation(monkeypatch) -> NoTask:
    """Battles whose replies nobody generates: the test finishes them with `turn_finish`."""
    recorder = NoTask()
    monkeypatch.setattr(queue, "reply_generate_queue", recorder)
    return recorder
