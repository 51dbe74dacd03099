"""Fixtures of the arena's tests."""

import pytest


@pytest.fixture
def probes_run_here(monkeypatch):
    """`models_probe.delay()` runs the probe in this process (no retries); returns the calls."""
    from arena import queue, tasks

    calls = []

    def delay(**kwargs):
        calls.append(kwargs)
        tasks.models_probe(model_ids=kwargs["model_ids"])

    monkeypatch.setattr(queue, "models_probe_queue", delay)
    return calls
