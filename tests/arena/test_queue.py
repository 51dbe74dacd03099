"""Work sent to Celery by task name (arena.queue): every name is a task the workers run."""

import pytest
from django.conf import settings

from arena import queue
from config.celery import app

NAMES = [value for key, value in vars(queue).items() if key.isupper() and isinstance(value, str)]


def test_every_name_sent_is_a_registered_task():
    app.loader.import_default_modules()
    assert len(NAMES) == 13 and set(NAMES) <= set(app.tasks)


def test_the_beat_schedule_names_registered_tasks_only():
    app.loader.import_default_modules()
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= set(app.tasks)


@pytest.mark.parametrize(
    "send, args, name, kwargs, countdown",
    [
        (queue.reply_generate_queue, {"reply_id": 7}, queue.REPLY_GENERATE, {"reply_id": 7}, None),
        (queue.models_probe_queue, {"model_ids": [1], "retries": 2, "countdown": 2.0}, queue.MODELS_PROBE,
         {"model_ids": [1], "retries": 2}, 2.0),
        (queue.leaderboard_refresh_queue, {"countdown": 0.05}, queue.LEADERBOARD_LIVE_REFRESH, {}, 0.05),
        (queue.leaderboard_rebuild_queue, {}, queue.LEADERBOARD_REBUILD, {}, None),
        (queue.battle_traits_queue, {"battle_ids": ["b1"]}, queue.BATTLE_TRAITS_STORE, {"battle_ids": ["b1"]}, None),
        (queue.leaderboard_variant_queue, {"style": True, "category": "coding"}, queue.LEADERBOARD_VARIANT_REFRESH,
         {"style": True, "category": "coding"}, None),
        (queue.judge_run_pump_queue, {"run_id": 3}, queue.JUDGE_RUN_PUMP, {"run_id": 3}, None),
        (queue.judge_answer_generate_queue, {"answer_id": 4, "claim": "c"}, queue.JUDGE_ANSWER_GENERATE,
         {"answer_id": 4, "claim": "c"}, None),
        (queue.judge_game_judge_queue, {"game_id": 5, "claim": "c"}, queue.JUDGE_GAME_JUDGE,
         {"game_id": 5, "claim": "c"}, None),
    ],
)
def test_each_sender_names_its_task_with_keyword_arguments(monkeypatch, send, args, name, kwargs, countdown):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    send(**args)
    assert sent == [((name,), {"kwargs": kwargs, "countdown": countdown})]


def test_both_sides_replies_go_out_as_one_task_each_through_one_producer(monkeypatch):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    queue.replies_generate_queue([7, 8])
    assert [(a, kw["kwargs"]) for a, kw in sent] == [((queue.REPLY_GENERATE,), {"reply_id": 7}),
                                                      ((queue.REPLY_GENERATE,), {"reply_id": 8})]
    assert sent[0][1]["producer"] is sent[1][1]["producer"] is not None
