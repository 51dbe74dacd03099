"""Work handed to the Celery workers, sent by task name.

Services queue work here and the tasks in `arena.tasks` call services, so services never import
the tasks module (no import cycle). The names are part of a running deployment — messages in the
broker and the beat schedule refer to them — so they keep the module path they were first
registered under, even where that is no longer where the task lives.
"""

from __future__ import annotations

from typing import Any

from celery import current_app

REPLY_GENERATE = "inference.tasks.reply_generate"
REPLIES_SWEEP = "inference.tasks.replies_sweep"
MODELS_PROBE = "inference.tasks.models_probe"
LEADERBOARD_LIVE_REFRESH = "arena.tasks.leaderboard_live_refresh"
LEADERBOARD_BOOTSTRAP_REFRESH = "arena.tasks.leaderboard_bootstrap_refresh"
LEADERBOARD_REBUILD = "arena.tasks.leaderboard_rebuild"
VOTES_COUNT = "arena.tasks.votes_count"


def _send(name: str, *, countdown: float | None = None, **kwargs: Any) -> None:
    current_app.send_task(name, kwargs=kwargs, countdown=countdown)


def reply_generate_queue(reply_id: int) -> None:
    _send(REPLY_GENERATE, reply_id=reply_id)


def replies_generate_queue(reply_ids: list[int]) -> None:
    """A task per reply, sent together: one Redis pipeline (kombu's publish batch) instead of a
    client and a round trip each, on the battle's critical path."""
    app = current_app
    with app.producer_or_acquire() as producer, producer.batch():
        for reply_id in reply_ids:
            app.send_task(REPLY_GENERATE, kwargs={"reply_id": reply_id}, producer=producer)


def models_probe_queue(*, model_ids: list[int], retries: int, countdown: float | None = None) -> None:
    _send(MODELS_PROBE, countdown=countdown, model_ids=model_ids, retries=retries)


def leaderboard_refresh_queue(*, countdown: float) -> None:
    _send(LEADERBOARD_LIVE_REFRESH, countdown=countdown)


def leaderboard_bootstrap_queue(*, countdown: float) -> None:
    _send(LEADERBOARD_BOOTSTRAP_REFRESH, countdown=countdown)


def leaderboard_rebuild_queue() -> None:
    _send(LEADERBOARD_REBUILD)
