"""The arena's Prometheus metrics, counted across every web and worker process.

prometheus-client's multiprocess mode: each process writes its values into memory-mapped files
of its own, and `/metrics` (arena.views) merges the files of all of them. The files live under
`ARENA_METRICS_DIR`, in a subdirectory per host (container), so that processes of two containers
sharing the directory (docker-compose mounts one volume into web and worker) never write the same
file even when both are pid 1. A process's live gauges (streams, sockets) are removed when it
exits, and on start-up any left by an earlier process with its pid on this host (killed, so it
couldn't clean up); its counters and histograms stay, so that totals never go down.

This module sets `PROMETHEUS_MULTIPROC_DIR` before prometheus-client is first imported (the
library picks its storage at import time); import it early in any process that counts.

Every per-model series is labelled `model="<name>"` (ChatModel.name). Time between tokens is the
time between two streamed deltas as the backend yields them (one token each for TGI and for an
OpenAI-compatible server's chunks), observed as they are read: one observation per delta, no I/O.
"""

from __future__ import annotations

import atexit
import glob
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

METRICS_HOST_DIR = Path(settings.ARENA_METRICS_DIR) / socket.gethostname()
METRICS_HOST_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_HOST_DIR)

# E402: prometheus-client reads PROMETHEUS_MULTIPROC_DIR when it is imported.
from prometheus_client import Counter, Gauge, Histogram, values  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402

if values.ValueClass is values.MutexValue:  # imported by someone before this module: switch now
    values.ValueClass = values.get_value_class()

# Latencies from a few ms (a local model's first token) to minutes (a long queue).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Between tokens: 1 ms (a fast server's burst) to seconds (a stall in the making).
_TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5)
_RATE_BUCKETS = (1, 2.5, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000)

REPLY_TTFT = Histogram(
    "arena_reply_ttft_seconds", "Time from a reply's generation start (its model slot held) to its first token.",
    ["model"], buckets=_LATENCY_BUCKETS,
)
REPLY_TOKEN_GAP = Histogram(
    "arena_reply_token_gap_seconds", "Time between two streamed deltas of a reply (one token each).",
    ["model"], buckets=_TOKEN_GAP_BUCKETS,
)
REPLY_TOKENS_PER_SECOND = Histogram(
    "arena_reply_tokens_per_second", "Tokens per second of a finished reply, after its first token.",
    ["model"], buckets=_RATE_BUCKETS,
)
REPLIES = Counter(
    "arena_replies", "Replies ended, by outcome (done, failed, retried) and failure kind (empty when done).",
    ["model", "outcome", "failure_kind"],
)
REPLY_QUEUE_WAIT = Histogram(
    "arena_reply_queue_wait_seconds", "Time a reply waited for a worker to claim it (claim - created).",
    ["model"], buckets=_LATENCY_BUCKETS,
)
MODEL_SLOT_WAIT = Histogram(
    "arena_model_slot_wait_seconds", "Time a reply waited for one of its model's concurrency slots.",
    ["model"], buckets=_LATENCY_BUCKETS,
)
STREAMS_ACTIVE = Gauge(
    "arena_streams_active", "Replies streaming now.", ["model"], multiprocess_mode="livesum",
)
WEBSOCKETS_OPEN = Gauge(
    "arena_websockets_open", "Open websockets, by page (arena, leaderboard).", ["page"], multiprocess_mode="livesum",
)
VOTES_CAST = Counter(
    "arena_votes_cast", "Votes recorded, by whether a reply named a model or vendor (flagged).", ["flagged"],
)
VOTES_COUNTED = Counter("arena_votes_counted", "Votes added to the pair counts and ratings.")
LEADERBOARD_REFRESH = Histogram(
    "arena_leaderboard_refresh_seconds",
    "Duration of a leaderboard refresh, by kind (live, bootstrap, rebuild, variant).",
    ["kind"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

# Every metric name this module defines, as written in PromQL (counters get `_total`; histograms
# `_bucket`, `_sum`, `_count`): the dashboard and alert rules are checked against it.
METRICS = (
    REPLY_TTFT, REPLY_TOKEN_GAP, REPLY_TOKENS_PER_SECOND, REPLIES, REPLY_QUEUE_WAIT, MODEL_SLOT_WAIT,
    STREAMS_ACTIVE, WEBSOCKETS_OPEN, VOTES_CAST, VOTES_COUNTED, LEADERBOARD_REFRESH,
)


def _process_dead() -> None:
    mark_process_dead(os.getpid(), str(METRICS_HOST_DIR))


# Live gauges an earlier process with this pid left behind (it was killed): not ours to add to.
_process_dead()
atexit.register(_process_dead)


class AllHostsCollector:
    """Every process's values, on every host whose files are under ARENA_METRICS_DIR, merged."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root or settings.ARENA_METRICS_DIR)

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(str(self.root / "*" / "*.db"))
        return MultiProcessCollector.merge(files, accumulate=True)
