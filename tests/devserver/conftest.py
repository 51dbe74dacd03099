"""The dev server on a background thread (`serve_in_thread`) on 127.0.0.1; no Django here."""

import pytest

from devserver import serve_in_thread
from tests.devserver.client import fast_config


@pytest.fixture(scope="module")
def url():
    with serve_in_thread(fast_config()) as base_url:
        yield base_url


@pytest.fixture
def faulty():
    """A fresh server per test, so fault state never leaks between tests."""
    with serve_in_thread(fast_config(stall_seconds=30)) as base_url:
        yield base_url
