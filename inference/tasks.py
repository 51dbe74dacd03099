"""Celery tasks: thin interfaces that take ids, call services and own their retries.

Workers run Celery's thread pool with many slots: a generation spends nearly all its time waiting
on the model server, so one process serves dozens of streams (a prefork pool of 2 would serve 2).
Celery's own time limits don't apply to the thread pool; each generation is bounded instead by its
model's total timeout and a stall timeout inside the backend, and the periodic sweep fails any
reply a dead worker left behind.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from celery import shared_task
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection

from arena import services
from arena.events import ReplyStarted
from arena.publish import group_publish
from arena.selectors import models_all
from inference.backends import TgiBackend, servers_probe
from inference.relay import RelayOutcome, RelayTarget, relay_stream

log = logging.getLogger(__name__)

MAX_TRANSIENT_RETRIES = 3
# Failures that say something about the server's health (not about one request).
HEALTH_FAILURE_KINDS = {"overloaded", "unavailable", "disconnected", "stalled", "timeout", "incomplete"}


async def _relay(job: services.GenerationJob) -> RelayOutcome:
    redis = aioredis.from_url(settings.REDIS_URL)
    try:
        return await relay_stream(
            TgiBackend(),
            job.request,
            RelayTarget(reply_id=job.reply_id, group=job.group, ref=job.ref),
            redis=redis,
            channel_layer=get_channel_layer(),
            flush_ms=settings.ARENA_DELTA_FLUSH_MS,
            flush_chars=settings.ARENA_DELTA_FLUSH_CHARS,
            heartbeat_seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS,
        )
    finally:
        await redis.aclose()


@shared_task(bind=True, name="inference.tasks.reply_generate", acks_late=True, max_retries=MAX_TRANSIENT_RETRIES)
def reply_generate(self, reply_id: int) -> str:
    job = services.reply_claim(reply_id=reply_id)
    if job is None:
        return "skipped"
    started: ReplyStarted = {**job.ref, "type": "reply.started"}
    group_publish(job.group, started)
    # Don't hold a database connection through a minutes-long stream.
    connection.close()
    outcome = asyncio.run(_relay(job))
    close_old_connections()
    failure = outcome.failure
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
    )
    return "failed" if failure else "done"


@shared_task(name="inference.tasks.replies_sweep")
def replies_sweep() -> int:
    return services.replies_sweep()


@shared_task(name="inference.tasks.models_probe")
def models_probe() -> int:
    """Refresh every enabled model's health from its server's /health and /info."""
    models = [m for m in models_all() if m.enabled]
    results = asyncio.run(servers_probe([m.endpoint_url for m in models]))
    for model, result in zip(models, results, strict=True):
        services.model_health_record(
            model_id=model.id, healthy=result["healthy"], error=result["error"], info=result["info"]
        )
    return sum(r["healthy"] for r in results)

