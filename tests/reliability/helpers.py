"""Plain helpers of the reliability and security tests: websocket clients, task routing, dedicated
worker processes, finished battles made without a model, and the dev servers' fault switch."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import requests

from arena import queue
from arena.tasks import reply_generate as REPLY_GENERATE
from tests.helpers import process_group_stop, worker_start

# --- where generation tasks go ----------------------------------------------------------------


class NoTask:
    """Stands in for `arena.queue.reply_generate_queue` when a test finishes replies itself:
    nothing is queued."""

    def __init__(self):
        self.queued: list[int] = []

    def __call__(self, reply_id: int) -> None:
        self.queued.append(reply_id)


def tasks_route_to(monkeypatch, queue_name: str) -> None:
    """Generation tasks of this process go to `queue_name` (a dedicated worker's)."""
    monkeypatch.setattr(
        queue, "reply_generate_queue",
        lambda reply_id: REPLY_GENERATE.apply_async(kwargs={"reply_id": reply_id}, queue=queue_name),
    )




# --- processes --------------------------------------------------------------------------------


@contextlib.contextmanager
def dedicated_worker(
    logs: Path, name: str, queue: str, loglevel: str = "info", **settings_env: str
) -> Iterator[subprocess.Popen]:
    """A worker of its own, consuming only `queue`, with settings of its own (env values)."""
    proc = worker_start(logs, name=name, extra_env={"CELERY_QUEUE": queue, **settings_env}, loglevel=loglevel)
    try:
        yield proc
    finally:
        process_group_stop(proc)


# --- dev model servers ------------------------------------------------------------------------


def fault_set(url: str, fault: str | None, **body) -> dict:
    answer = requests.post(f"{url}/__devserver__/fault", json={"fault": fault, **body}, timeout=5)
    answer.raise_for_status()
    return answer.json()


def devserver_requests(url: str) -> int:
    """`tgi_request_count` from the dev server's /metrics: generation requests it received."""
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("tgi_request_count "):
            return int(line.split()[1])
    raise AssertionError("no tgi_request_count in /metrics")

