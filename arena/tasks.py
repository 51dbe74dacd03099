"""Celery tasks: thin interfaces that take ids, call services and own their retries.

Task names are fixed in `arena.queue` (messages already queued and the beat schedule use them).
Celery's own time limits don't apply to the thread pool the workers run; each generation is
bounded instead by its model's total timeout and a stall timeout inside the backend, and the
periodic sweep fails any reply a dead worker left behind.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection

from arena import events, metrics, queue, services
from arena.judge_calls import answer_generate, verdict_ask
from arena.leaderboard import CACHE_CURRENT, bootstrap_store, counts_load, leaderboard_snapshot
from arena.leaderboard_variants import variant_refresh
from arena.pairing import CACHE_PAIRING, pairing_state
from arena.publish import group_publish
from arena.selectors import models_to_probe
from arena.services.counting import LIVE_REFRESH_PENDING
from arena.services.registry import NEW_MODEL_PROBE_INTERVAL_SECONDS
from arena.streams import reply_stream
from inference.failures import FailureKind

MAX_TRANSIENT_RETRIES = 3
RETRY_CEILING_SECONDS = 10
BOOTSTRAP_PENDING = "leaderboard:bootstrap-pending"

# A worker process runs a thread per stream (hundreds), but a stream needs the database only to
# claim its reply and to store it, for a few milliseconds each. At most this many of them hold a
# connection at once, so a burst of battles starting or ending together queues here for a moment
# instead of exhausting PostgreSQL's connections.
DATABASE_SLOTS = threading.BoundedSemaphore(16)


@shared_task(bind=True, name=queue.REPLY_GENERATE, acks_late=True, max_retries=MAX_TRANSIENT_RETRIES)
def reply_generate(self: Task, reply_id: int) -> str:
    with DATABASE_SLOTS:
        try:
            job = services.reply_claim(reply_id=reply_id)
        finally:
            connection.close()  # not held through a minutes-long stream
    if job is None:
        return "skipped"
    outcome = reply_stream(job)
    failure = outcome.failure
    with DATABASE_SLOTS:
        try:
            close_old_connections()
            # Nothing reached the user yet, so a quiet retry with backoff is invisible to them.
            quiet_retry = failure is not None and failure.retryable and not outcome.text
            if quiet_retry and self.request.retries < (self.max_retries or 0):
                services.reply_requeue(reply_id=reply_id)
                kind = failure.kind if failure else ""
                metrics.REPLIES.labels(model=job.model_name, outcome="retried", failure_kind=kind).inc()
                # A server's Retry-After (429) is honoured, up to the backoff's ceiling.
                backoff = max(2 ** self.request.retries, failure.retry_after or 0) if failure else 1
                raise self.retry(countdown=min(backoff, RETRY_CEILING_SECONDS))
            if failure is not None and failure.kind.about_server:
                services.model_failure_record(model_id=job.model_id, error=failure.message)
            if failure is not None and failure.kind is FailureKind.MISCONFIGURED and job.failure is None:
                services.model_misconfigured(model_id=job.model_id, error=failure.message)
            services.reply_finish(
                reply_id=reply_id,
                text=outcome.text,
                token_count=outcome.token_count,
                prompt_tokens=outcome.prompt_tokens,
                finish_reason=outcome.finish_reason,
                ttft_ms=outcome.ttft_ms,
                duration_ms=outcome.duration_ms,
                failure=failure.message if failure else None,
                failure_kind=failure.kind if failure else "",
            )
        finally:
            connection.close()
    return "failed" if failure else "done"


@shared_task(name=queue.REPLIES_SWEEP)
def replies_sweep() -> int:
    return services.replies_sweep()


@shared_task(name=queue.MODELS_PROBE)
def models_probe(model_ids: list[int] | None = None, retries: int = 0) -> int:
    """Refresh models' health from their servers' /health and /info: every enabled model (the
    periodic probe), or the models `model_ids` (just saved; enabled or not), probed again up to
    `retries` times while unhealthy. Returns how many were healthy."""
    models = models_to_probe(model_ids=model_ids)
    # The periodic run spares rate-limited APIs; a probe queued for a model just saved does not.
    probed = services.models_probe_now(models if model_ids is not None else services.models_probe_due(models))
    # Only a server that didn't answer is worth asking again; parameters that don't fit it wait
    # for an admin.
    unreachable = [model.id for model, result, _ in probed if not result["healthy"]]
    if model_ids is not None and retries > 0 and unreachable:
        queue.models_probe_queue(model_ids=unreachable, retries=retries - 1, countdown=NEW_MODEL_PROBE_INTERVAL_SECONDS)
    return sum(verdict.healthy for _, _, verdict in probed)


def _leaderboard_publish(snapshot: dict[str, Any]) -> None:
    cache.set(CACHE_CURRENT, snapshot, timeout=None)
    event: events.LeaderboardUpdated = {"type": "leaderboard.updated", "leaderboard": snapshot}
    group_publish(events.LEADERBOARD_GROUP, event)


@shared_task(name=queue.LEADERBOARD_LIVE_REFRESH)
def leaderboard_live_refresh() -> int:
    """Count the votes cast since the last run (one batch), refit and publish; one run per burst
    of votes, and one bootstrap per debounce window after it."""
    # Cleared before reading: a vote committed after this point schedules another run.
    cache.delete(LIVE_REFRESH_PENDING)
    with metrics.LEADERBOARD_REFRESH.labels(kind="live").time():
        services.votes_count_pending()
        loaded = counts_load()
        snapshot = leaderboard_snapshot(loaded=loaded)
        _leaderboard_publish(snapshot)
        # The sampling policy follows the same counts: battles started from now on use them.
        cache.set(CACHE_PAIRING, pairing_state(loaded), timeout=None)
    if settings.ARENA_BOOTSTRAP_ROUNDS and cache.add(BOOTSTRAP_PENDING, 1, timeout=300):
        queue.leaderboard_bootstrap_queue(countdown=settings.ARENA_BOOTSTRAP_DEBOUNCE_SECONDS)
    return int(snapshot["total_votes"])


@shared_task(name=queue.BATTLE_TRAITS_STORE)
def battle_traits_store(battle_ids: list[str]) -> int:
    """Style and categories of battles just counted (queued by the counting, once committed)."""
    return services.battle_traits_store(battle_ids=[uuid.UUID(i) for i in battle_ids])


@shared_task(name=queue.LEADERBOARD_VARIANT_REFRESH)
def leaderboard_variant_refresh(style: bool, category: str) -> int:
    """Recompute one category / style-controlled leaderboard that pages found stale (they were
    served the cached one meanwhile)."""
    with metrics.LEADERBOARD_REFRESH.labels(kind="variant").time():
        return int(variant_refresh(style=style, category=category)["total_votes"])


@shared_task(name=queue.LEADERBOARD_BOOTSTRAP_REFRESH)
def leaderboard_bootstrap_refresh() -> int:
    cache.delete(BOOTSTRAP_PENDING)
    with metrics.LEADERBOARD_REFRESH.labels(kind="bootstrap").time():
        bootstrap_store(rounds=settings.ARENA_BOOTSTRAP_ROUNDS)
        snapshot = leaderboard_snapshot()
        _leaderboard_publish(snapshot)
    return int(snapshot["total_votes"])


@shared_task(name=queue.VOTES_COUNT)
def votes_count() -> int:
    """Count votes still waiting (their refresh was lost, e.g. Redis restarted); refresh if any."""
    counted = services.votes_count_pending()
    if counted:
        services.leaderboard_refresh_schedule()
    return counted


@shared_task(name=queue.LEADERBOARD_REBUILD)
def leaderboard_rebuild() -> int:
    """Recount every vote (queued after votes were deleted); the refresh it queues publishes."""
    with metrics.LEADERBOARD_REFRESH.labels(kind="rebuild").time():
        return services.leaderboard_rebuild()


# --- judged runs: work handed out by `services.judge_run_pump`, each item under its claim --------


@shared_task(name=queue.JUDGE_RUN_PUMP)
def judge_run_pump(run_id: int) -> int:
    return services.judge_run_pump(run_id=run_id)


@shared_task(name=queue.JUDGE_RUNS_SWEEP)
def judge_runs_sweep() -> int:
    """Give back the items of workers that died and hand out the runs' next work (periodic)."""
    return services.judge_runs_sweep()


def _in_database_slot(step, **kwargs):
    """One database step of a judged item, its connection closed after: not held through requests."""
    with DATABASE_SLOTS:
        try:
            close_old_connections()
            return step(**kwargs)
        finally:
            connection.close()


def _failure_record(job, failure) -> None:
    if failure is not None and failure.kind.about_server:
        services.model_failure_record(model_id=job.call.model_id, error=failure.message)


@shared_task(name=queue.JUDGE_ANSWER_GENERATE, acks_late=True)
def judge_answer_generate(answer_id: int, claim: str) -> str:
    job = _in_database_slot(services.judge_answer_start, answer_id=answer_id, claim=claim)
    if job is None:
        return "skipped"
    outcome = answer_generate(job)
    failure = outcome.failure

    def finish() -> None:
        _failure_record(job, failure)
        services.judge_answer_finish(
            answer_id=answer_id, claim=claim, texts=outcome.texts, token_count=outcome.token_count,
            requests=outcome.requests, failure=failure.message if failure else None,
            retryable=bool(failure and failure.retryable),
        )

    _in_database_slot(finish)
    return "failed" if failure else "done"


@shared_task(name=queue.JUDGE_GAME_JUDGE, acks_late=True)
def judge_game_judge(game_id: int, claim: str) -> str:
    job = _in_database_slot(services.judge_game_start, game_id=game_id, claim=claim)
    if job is None:
        return "skipped"
    outcome = verdict_ask(job)
    failure = outcome.failure

    def finish() -> None:
        _failure_record(job, failure)
        services.judge_game_finish(
            game_id=game_id, claim=claim, verdict=outcome.verdict, reasoning=outcome.reasoning,
            error=failure.message if failure else "", requests=outcome.requests,
            retry=bool(failure and failure.retryable),
        )

    _in_database_slot(finish)
    return outcome.verdict or "invalid"
