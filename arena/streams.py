"""Where a worker process runs its streams: one event loop and one batched Redis client for all.

A generation spends nearly all its time waiting on the model server, so a worker runs Celery's
thread pool with many slots; but the streams themselves don't run on those threads. Every
stream of a process runs on the process's background loop (arena.background), sharing one
`RedisBatch` and the channel layer's connections; the Celery thread only claims the reply, hands
the stream over, waits, and stores the outcome.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from django.conf import settings

from arena import metrics
from arena.background import PROCESS_LOOP
from arena.events import ReplyStarted
from arena.live import live_text
from arena.relay import RedisBatch, RelayOutcome, RelayTarget, relay_stream
from arena.services import GenerationJob
from arena.slots import backend_limited
from inference.failures import FailureKind, GenerationFailure
from inference.protocols import backend_for

log = logging.getLogger(__name__)

# The streams of a process share one `RedisBatch`, which keeps one pipeline in flight, so a few
# connections are plenty; the pool blocks (a stream waits its turn) rather than failing as
# redis-py's default pool does past 100 connections.
REDIS_CONNECTIONS_PER_PROCESS = 8
# How long past its model's own timeout (and its wait for a slot) a stream may run before the task
# gives up waiting for it (the backend's stall and total timeouts end it first; this only guards
# against a bug).
STREAM_GRACE_SECONDS = 60
# The streams' Redis pipelines start at least this far apart (RedisBatch). py-spy of a worker
# streaming 100 replies: 21% of its samples were writes to Redis's socket, a pipeline or two per
# delta; gathered for up to 2 ms, a busy worker's deltas share a pipeline ten at a time.
PIPELINE_INTERVAL_SECONDS = 0.002


class _ProcessRedis:
    """The async Redis client of this process's streams, made again in a child after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._batch: RedisBatch | None = None

    def batch(self) -> RedisBatch:
        with self._lock:
            if self._batch is None or self._pid != os.getpid():
                pool = aioredis.BlockingConnectionPool.from_url(
                    settings.REDIS_URL, max_connections=REDIS_CONNECTIONS_PER_PROCESS, timeout=30
                )
                self._batch = RedisBatch(aioredis.Redis(connection_pool=pool), min_interval=PIPELINE_INTERVAL_SECONDS)
                self._pid = os.getpid()
            return self._batch


_REDIS = _ProcessRedis()


def process_redis_batch() -> RedisBatch:
    """The batched async Redis client of this process's event loop (arena.background)."""
    return _REDIS.batch()


def _layer_on_live_redis() -> bool:
    """Is the channel layer on the Redis server that holds the live text (pub/sub ignores the db)?"""
    layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    layer_hosts = layer.get("CONFIG", {}).get("hosts", [])
    addresses = [h.get("address") if isinstance(h, dict) else h for h in layer_hosts]
    return len(addresses) == 1 and urlsplit(str(addresses[0]))[:2] == urlsplit(settings.REDIS_URL)[:2]


async def _relay(job: GenerationJob, batch: RedisBatch) -> RelayOutcome:
    started: ReplyStarted = {**job.ref, "type": "reply.started"}
    # Past the model's limit the request waits for a slot; the page shows "waiting for the
    # model…" meanwhile, and the reply's heartbeat keeps the sweep away.
    backend = backend_limited(
        backend_for(job.protocol), batch, model_id=job.model_id, limit=job.concurrency_limit,
        holder=str(job.stream_id), lease_seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS,
        wait_seconds=settings.ARENA_MODEL_SLOT_WAIT_SECONDS, model=job.model_name,
    )
    active = metrics.STREAMS_ACTIVE.labels(model=job.model_name)
    active.inc()  # waiting for a slot included: the reply is on its way
    try:
        return await relay_stream(
            backend,
            job.request,
            RelayTarget(keys=job.keys, group=job.group, ref=job.ref),
            redis=batch,
            channel_layer=get_channel_layer(),
            flush_ms=settings.ARENA_DELTA_FLUSH_MS,
            flush_chars=settings.ARENA_DELTA_FLUSH_CHARS,
            heartbeat_seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS,
            announce=started,
            layer_on_redis=_layer_on_live_redis(),
            model=job.model_name,
        )
    finally:
        active.dec()


def reply_stream(job: GenerationJob) -> RelayOutcome:
    """Stream a claimed reply to its battle on the process's loop and wait for the outcome; never
    raises (a broken stream is a failed reply, ended now rather than at the sweep)."""
    if job.failure is not None:
        return RelayOutcome(failure=job.failure)
    slot_wait = settings.ARENA_MODEL_SLOT_WAIT_SECONDS if job.concurrency_limit is not None else 0
    timeout = job.request.timeout_seconds + job.request.stall_seconds + slot_wait + STREAM_GRACE_SECONDS
    batch = _REDIS.batch()
    try:
        return PROCESS_LOOP.run(lambda: _relay(job, batch), timeout)
    except concurrent.futures.TimeoutError:
        failure = GenerationFailure(FailureKind.TIMEOUT, "The model took too long to answer.")
    except Exception:
        log.warning("Stream of reply %s broke off", job.reply_id, exc_info=True)
        failure = GenerationFailure(
            FailureKind.INTERNAL, "The reply was interrupted by a server problem. Regenerate to try again."
        )
    return RelayOutcome(text=live_text(job.stream_id), failure=failure)
