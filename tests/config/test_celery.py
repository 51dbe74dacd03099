"""The Celery worker as deployed: a threads pool whose threads all run before the first task."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import process_group_stop, worker_start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONCURRENCY = 32  # tests.helpers.worker_start's --concurrency


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_it_starts_every_pool_thread_before_saying_ready(tmp_path):
    worker = worker_start(tmp_path, name="pool-worker", extra_env={"CELERY_QUEUE": "pool-test"})
    try:
        # "ready." is logged after the warm-up: the pool's threads plus the consumer's own.
        assert threads_of(worker.pid) > CONCURRENCY
    finally:
        process_group_stop(worker)
