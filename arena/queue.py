"""Work handed to the Celery workers, sent by task name.

Services queue work here and the tasks in `arena.tasks` call services, so services never import
the tasks module (no import cycle). The names are part of a running deployment — messages in the
broker and the beat schedule refer to them — so they keep the module path they were first
registered under, even where that is no longer where the task lives.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from celery import current_app

REPLY_GENERATE = "inference.tasks.reply_generate"
REPLIES_SWEEP = "inference.tasks.replies_sweep"
MODELS_PROBE = "inference.tasks.models_probe"
LEADERBOARD_LIVE_REFRESH = "arena.tasks.leaderboard_live_refresh"
LEADERBOARD_BOOTSTRAP_REFRESH = "arena.tasks.leaderboard_bootstrap_refresh"
LEADERBOARD_REBUILD = "arena.tasks.leaderboard_rebuild"
VOTES_COUNT = "arena.tasks.votes_count"
LEADERBOARD_VARIANT_REFRESH = "arena.tasks.leaderboard_variant_refresh"
BATTLE_TRAITS_STORE = "arena.tasks.battle_traits_store"


# Set while several tasks go out together (replies_generate_queue): the producer they share.
_PRODUCER: ContextVar[Any] = ContextVar("arena_queue_producer", default=None)


def _send(name: str, *, countdown: float | None = None, **kwargs: Any) -> None:
    producer = _PRODUCER.get()
    shared = {"producer": producer} if producer is not None else {}
    current_app.send_task(name, kwargs=kwargs, countdown=countdown, **shared)


def reply_generate_queue(reply_id: int) -> None:
    _send(REPLY_GENERATE, reply_id=reply_id)


def replies_generate_queue(reply_ids: list[int]) -> None:
    """A task per reply, sent together: one Redis pipeline (kombu's publish batch) instead of a
    client and a round trip each, on the battle's critical path."""
    with current_app.producer_or_acquire() as producer, producer.batch():
        token = _PRODUCER.set(producer)
        try:
            for reply_id in reply_ids:
                reply_generate_queue(reply_id)  # each reply's own task, by the one name
        finally:
            _PRODUCER.reset(token)


def models_probe_queue(*, model_ids: list[int], retries: int, countdown: float | None = None) -> None:
    _send(MODELS_PROBE, countdown=countdown, model_ids=model_ids, retries=retries)


def leaderboard_refresh_queue(*, countdown: float) -> None:
    _send(LEADERBOARD_LIVE_REFRESH, countdown=countdown)


def leaderboard_bootstrap_queue(*, countdown: float) -> None:
    _send(LEADERBOARD_BOOTSTRAP_REFRESH, countdown=countdown)


def battle_traits_queue(*, battle_ids: list[str]) -> None:
    _send(BATTLE_TRAITS_STORE, battle_ids=battle_ids)


def leaderboard_variant_queue(*, style: bool, category: str) -> None:
    _send(LEADERBOARD_VARIANT_REFRESH, style=style, category=category)


def leaderboard_rebuild_queue() -> None:
    _send(LEADERBOARD_REBUILD)


JUDGE_RUN_PUMP = "arena.tasks.judge_run_pump"
JUDGE_ANSWER_GENERATE = "arena.tasks.judge_answer_generate"
JUDGE_GAME_JUDGE = "arena.tasks.judge_game_judge"
JUDGE_RUNS_SWEEP = "arena.tasks.judge_runs_sweep"


def judge_run_pump_queue(run_id: int) -> None:
    _send(JUDGE_RUN_PUMP, run_id=run_id)


def judge_answer_generate_queue(answer_id: int, claim: str) -> None:
    _send(JUDGE_ANSWER_GENERATE, answer_id=answer_id, claim=claim)


def judge_game_judge_queue(game_id: int, claim: str) -> None:
    _send(JUDGE_GAME_JUDGE, game_id=game_id, claim=claim)
