"""Celery tasks: thin interfaces that take ids, call services and own their retries.

Workers run Celery's thread pool with many slots: a generation spends nearly all its time waiting
on the model server, so one process serves dozens of streams (a prefork pool of 2 would serve 2).
Celery's own time limits don't apply to the thread pool; each generation is bounded instead by its
model's total timeout and a stall timeout inside the backend, and the periodic sweep fails any
reply a dead worker left behind.

The streams themselves don't run on the Celery threads: every stream of a worker process runs on
one event loop (uvloop), on a thread of its own (`StreamLoop`), sharing one batched Redis client
(`RedisBatch`) and the channel layer's connections; the Celery thread only claims the reply, hands
the stream over, waits, and stores the outcome. Before, each task ran `asyncio.run()`: a loop, a
Redis connection and channel-layer connections per stream, and as many threads as streams taking
turns at the GIL for every token. Measured with bench/stream.py (one worker process, replies of
200 tokens at 50 tokens/s, 4.2 s at the model's pace, 50 battles): a task started 1.4 s after its
battle (median) and took 13 s over its reply; now 0.04 s and 4.6 s, together with the relay's
batching (inference/relay.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from celery import shared_task
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection

from arena import services
from arena.background import PROCESS_LOOP
from arena.events import ReplyStarted
from arena.live import live_text
from arena.models import ChatModel
from arena.selectors import models_to_probe
from inference.backends import GenerationFailure, TgiBackend, servers_probe
from inference.relay import RedisBatch, RelayOutcome, RelayTarget, relay_stream

log = logging.getLogger(__name__)

MAX_TRANSIENT_RETRIES = 3
# Failures that say something about the server's health (not about one request).
HEALTH_FAILURE_KINDS = {"overloaded", "unavailable", "disconnected", "stalled", "timeout", "incomplete"}


T = TypeVar("T")
# Redis connections of a worker process's streams. They share one `RedisBatch`, which keeps one
# pipeline in flight, so a few are plenty; the pool blocks (a stream waits its turn) rather than
# failing as redis-py's default pool does past 100 connections (200 streams sharing a client did).
REDIS_CONNECTIONS_PER_PROCESS = 8
# How long past its model's own timeout a stream may run before the task gives up waiting for it
# (the backend's stall and total timeouts end it first; this only guards against a bug).
STREAM_GRACE_SECONDS = 60


class StreamLoop:
    """Where every stream of this process runs: the process's background loop (arena.background),
    and the async Redis client its streams share, made again in a child process after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.batch: RedisBatch | None = None  # the process's Redis client, batching across streams

    def run(self, work: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run `work()` on the loop and wait for its result (at most `timeout` seconds)."""
        with self._lock:
            if self.batch is None or self._pid != os.getpid():
                self.batch = RedisBatch(aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
                    settings.REDIS_URL, max_connections=REDIS_CONNECTIONS_PER_PROCESS, timeout=30
                )))
                self._pid = os.getpid()
        return PROCESS_LOOP.run(work, timeout)


STREAMS = StreamLoop()

# A worker process runs a thread per stream (hundreds), but a stream needs the database only to
# claim its reply and to store it, for a few milliseconds each. At most this many of them hold a
# connection at once, so that a burst of battles starting or ending together queues here for a
# moment instead of exhausting PostgreSQL's connections (max_connections is 100 by default), and
# the connection is closed as soon as that work is done.
DATABASE_SLOTS = threading.BoundedSemaphore(16)


async def _relay(job: services.GenerationJob) -> RelayOutcome:
    started: ReplyStarted = {**job.ref, "type": "reply.started"}
    return await relay_stream(
        TgiBackend(),
        job.request,
        RelayTarget(reply_id=job.reply_id, group=job.group, ref=job.ref),
        redis=STREAMS.batch,
        channel_layer=get_channel_layer(),
        flush_ms=settings.ARENA_DELTA_FLUSH_MS,
        flush_chars=settings.ARENA_DELTA_FLUSH_CHARS,
        heartbeat_seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS,
        announce=dict(started),
        layer_on_redis=_layer_on_live_redis(),
    )


def _layer_on_live_redis() -> bool:
    """Is the channel layer on the Redis server that holds the live text (pub/sub ignores the db)?"""
    layer_hosts = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts", [])
    addresses = [h.get("address") if isinstance(h, dict) else h for h in layer_hosts]
    return len(addresses) == 1 and urlsplit(str(addresses[0]))[:2] == urlsplit(settings.REDIS_URL)[:2]


def _stream(job: services.GenerationJob) -> RelayOutcome:
    timeout = job.request.timeout_seconds + job.request.stall_seconds + STREAM_GRACE_SECONDS
    try:
        return STREAMS.run(lambda: _relay(job), timeout)
    except concurrent.futures.TimeoutError:
        return RelayOutcome(
            text=live_text(job.reply_id), failure=GenerationFailure("timeout", "The model took too long to answer.")
        )
    except Exception:  # noqa: BLE001 - e.g. Redis went away mid-stream: end the reply now, not at the sweep
        log.warning("Stream of reply %s broke off", job.reply_id, exc_info=True)
        return RelayOutcome(
            text=live_text(job.reply_id),
            failure=GenerationFailure("internal", "The reply was interrupted by a server problem. Regenerate to try again."),
        )


@shared_task(bind=True, name="inference.tasks.reply_generate", acks_late=True, max_retries=MAX_TRANSIENT_RETRIES)
def reply_generate(self, reply_id: int) -> str:
    with DATABASE_SLOTS:
        try:
            job = services.reply_claim(reply_id=reply_id)
        finally:
            # Don't hold a database connection through a minutes-long stream.
            connection.close()
    if job is None:
        return "skipped"
    outcome = _stream(job)
    failure = outcome.failure
    with DATABASE_SLOTS:
        try:
            close_old_connections()
            if failure is not None and failure.retryable and not outcome.text and self.request.retries < self.max_retries:
                # Nothing reached the user yet, so a quiet retry with backoff is invisible to them.
                services.reply_requeue(reply_id=reply_id)
                raise self.retry(countdown=min(2 ** self.request.retries, 10))
            if failure is not None and failure.kind in HEALTH_FAILURE_KINDS:
                services.model_failure_record(model_id=job.model_id, error=failure.message)
            services.reply_finish(
                reply_id=reply_id,
                text=outcome.text,
                token_count=outcome.token_count,
                finish_reason=outcome.finish_reason,
                ttft_ms=outcome.ttft_ms,
                duration_ms=outcome.duration_ms,
                failure=failure.message if failure else None,
                failure_kind=failure.kind if failure else "",
            )
        finally:
            connection.close()
    return "failed" if failure else "done"


@shared_task(name="inference.tasks.replies_sweep")
def replies_sweep() -> int:
    return services.replies_sweep()


# A model just added or pointed at another server is probed at once and, while its server can't be
# reached, again every few seconds for a little while: `make run` registers the development models
# while their servers are still starting. After that, the periodic probe takes over.
NEW_MODEL_PROBE_RETRIES = 5
NEW_MODEL_PROBE_INTERVAL_SECONDS = 2.0


def models_probe_now(models: list[ChatModel]) -> list[tuple[ChatModel, dict, services.HealthVerdict]]:
    """Probe the models' servers (/health and /info, concurrently) and store each verdict; for each
    model, the server's answer and what was stored (the admin's Probe action shows both)."""
    results = asyncio.run(servers_probe([m.endpoint_url for m in models]))
    return [
        (
            model,
            result,
            services.model_health_record(
                model_id=model.id, healthy=result["healthy"], error=result["error"], info=result["info"],
                endpoint_url=model.endpoint_url,
            ),
        )
        for model, result in zip(models, results, strict=True)
    ]


@shared_task(name="inference.tasks.models_probe")
def models_probe(model_ids: list[int] | None = None, retries: int = 0) -> int:
    """Refresh models' health from their servers' /health and /info: every enabled model (the
    periodic probe), or the models `model_ids` (just saved; enabled or not), probed again up to
    `retries` times while unhealthy. Returns how many were healthy."""
    models = models_to_probe(model_ids=model_ids)
    probed = models_probe_now(models)
    # Only a server that didn't answer is worth asking again; parameters that don't fit it wait
    # for an admin.
    unreachable = [model.id for model, result, _ in probed if not result["healthy"]]
    if model_ids is not None and retries > 0 and unreachable:
        models_probe.apply_async(
            kwargs={"model_ids": unreachable, "retries": retries - 1}, countdown=NEW_MODEL_PROBE_INTERVAL_SECONDS
        )
    return sum(verdict.healthy for _, _, verdict in probed)

