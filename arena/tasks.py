"""Leaderboard refresh tasks: one live refresh per burst of votes, one bootstrap per debounce window.

The live refresh first counts the votes cast since the last run (one batch, not one transaction
per vote), then refits and publishes.

They run as single debounced tasks (a cache key marks one as pending), so adding web or worker
replicas never multiplies the work.
"""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from arena import events, services
from arena.leaderboard import CACHE_CURRENT, bootstrap_store, leaderboard_snapshot
from arena.publish import group_publish

LIVE_PENDING = "leaderboard:live-pending"
BOOTSTRAP_PENDING = "leaderboard:bootstrap-pending"


def _publish(snapshot: dict) -> None:
    cache.set(CACHE_CURRENT, snapshot, timeout=None)
    event: events.LeaderboardUpdated = {"type": "leaderboard.updated", "leaderboard": snapshot}
    group_publish(events.LEADERBOARD_GROUP, event)


@shared_task(name="arena.tasks.leaderboard_live_refresh")
def leaderboard_live_refresh() -> int:
    # Clear the flag before reading: a vote committed after this point schedules another run.
    cache.delete(LIVE_PENDING)
    services.votes_count_pending()
    snapshot = leaderboard_snapshot()
    _publish(snapshot)
    if settings.ARENA_BOOTSTRAP_ROUNDS and cache.add(BOOTSTRAP_PENDING, 1, timeout=300):
        leaderboard_bootstrap_refresh.apply_async(countdown=settings.ARENA_BOOTSTRAP_DEBOUNCE_SECONDS)
    return snapshot["total_votes"]


@shared_task(name="arena.tasks.leaderboard_bootstrap_refresh")
def leaderboard_bootstrap_refresh() -> int:
    cache.delete(BOOTSTRAP_PENDING)
    bootstrap_store(rounds=settings.ARENA_BOOTSTRAP_ROUNDS)
    snapshot = leaderboard_snapshot()
    _publish(snapshot)
    return snapshot["total_votes"]


@shared_task(name="arena.tasks.votes_count")
def votes_count() -> int:
    """Count votes still waiting (their refresh was lost, e.g. Redis restarted); refresh if any."""
    counted = services.votes_count_pending()
    if counted:
        services.leaderboard_refresh_schedule()
    return counted


@shared_task(name="arena.tasks.leaderboard_rebuild")
def leaderboard_rebuild() -> int:
    """Recount every vote (queued after votes were deleted); the refresh it queues publishes."""
    return services.leaderboard_rebuild()
