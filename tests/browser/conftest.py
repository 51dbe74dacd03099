"""Fixtures of the browser tests (the browser itself is in tests/conftest.py: the XSS tests use it too)."""

from types import SimpleNamespace

import pytest

from devserver import DevServerConfig, serve_in_thread


@pytest.fixture(scope="module")
def odd_servers():
    """A model server whose every reply fails after two tokens, and one slow to its first token."""
    faulty = DevServerConfig(model_id="faulty-model", time_to_first_token=0.05, tokens_per_second=150,
                             fault="error-mid-stream", fault_after_tokens=2)
    slow_start = DevServerConfig(model_id="slow-start", time_to_first_token=2.5, tokens_per_second=150)
    with serve_in_thread(faulty) as faulty_url, serve_in_thread(slow_start) as slow_start_url:
        yield SimpleNamespace(faulty=faulty_url, slow_start=slow_start_url)
