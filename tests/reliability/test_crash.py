"""A worker killed mid-stream: the sweep fails its replies within a heartbeat, the user is told,
and the battle can be regenerated on a live worker."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from arena import queue, services, tasks
from arena.models import ChatModel, Reply, Vote
from tests.helpers import process_group_stop, slow_models_serving, worker_start
from tests.reliability.helpers import REPLY_GENERATE, tasks_route_to
from tests.websockets import finished_sides, frames_until, new_session_key, state_of, ws_connect, ws_receive, ws_send

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "reliability-crash"
HEARTBEAT = 1.5


@pytest.fixture
def slow_models(transactional_db):
    """10 tokens/s and up to 100 tokens: a reply streams for several seconds."""
    with slow_models_serving(tokens_per_second=10, max_new_tokens=100) as models:
        yield models


def test_the_sweep_is_on_the_beat_schedule():
    from config.celery import app

    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "inference.tasks.replies_sweep"]
    assert len(entries) == 1
    assert 0 < entries[0]["schedule"] <= 60, "a dead worker's replies must be failed within a minute"
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    assert "inference.tasks.replies_sweep" in app.tasks


def statuses(battle_id) -> dict[str, Reply]:
    return {r.side: r for r in Reply.objects.filter(turn__battle_id=battle_id, attempt=0)}


async def test_a_killed_worker_s_replies_are_failed_by_the_sweep_and_can_be_regenerated(
    slow_models, live_logs, monkeypatch, settings, celery_worker_process
):
    settings.ARENA_REPLY_HEARTBEAT_SECONDS = HEARTBEAT  # the sweep here agrees with the worker
    tasks_route_to(monkeypatch, QUEUE)
    worker = worker_start(
        live_logs, name="doomed", extra_env={"CELERY_QUEUE": QUEUE, "ARENA_REPLY_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    )
    comm = None
    try:
        comm = await ws_connect(await new_session_key())
        await ws_send(comm, {"action": "prompt", "battle": None, "text": "Write a long essay about tea"})
        frames = await frames_until(comm, lambda f, fs: {x["side"] for x in fs if x["type"] == "delta"} == {"a", "b"})
        battle_id = state_of(frames)["battle"]

        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, mid-stream, no goodbye
        worker.wait(timeout=5)
        killed = time.monotonic()
        replies = await database_sync_to_async(statuses)(battle_id)
        assert {r.status for r in replies.values()} == {Reply.Status.STREAMING}

        # Right away, the heartbeat is still fresh: a sweep must not fail a reply that may be alive.
        assert await database_sync_to_async(services.replies_sweep)() == 0

        # As celery beat would: the sweep task, every half second.
        swept = 0
        while swept < 2 and time.monotonic() - killed < HEARTBEAT + 6:
            await asyncio.sleep(0.5)
            swept += await database_sync_to_async(tasks.replies_sweep)()
        took = time.monotonic() - killed
        assert swept == 2, f"the sweep failed {swept} of 2 replies in {took:.1f} s"
        assert took <= HEARTBEAT + 3, f"a dead worker's replies were failed after {took:.1f} s"

        frames += await frames_until(comm, lambda f, fs: finished_sides(fs) >= {"a", "b"}, timeout=5)
        failed = {f["side"]: f for f in frames if f["type"] == "failed"}
        assert set(failed) == {"a", "b"} and not [f for f in frames if f["type"] == "done"]
        replies = await database_sync_to_async(statuses)(battle_id)
        for side, frame in failed.items():
            assert "worker" in frame["reason"] and "Regenerate" in frame["reason"], frame["reason"]
            streamed = "".join(f["text"] for f in frames if f["type"] == "delta" and f["side"] == side)
            assert frame["text"] == streamed and streamed, "the text shown so far is kept"
            assert replies[side].status == Reply.Status.FAILED and replies[side].failure_reason == frame["reason"]

        # The battle isn't lost: regenerate it on a live worker (short replies this time).
        monkeypatch.setattr(queue, "reply_generate_queue", lambda reply_id: REPLY_GENERATE.delay(reply_id=reply_id))
        await database_sync_to_async(ChatModel.objects.update)(parameters={"max_new_tokens": 8})
        await ws_send(comm, {"action": "regenerate", "battle": battle_id, "side": None})
        frames = await frames_until(comm, lambda f, fs: finished_sides(fs, attempt=1) >= {"a", "b"})
        assert sorted((f["type"], f["side"]) for f in frames if f["type"] in ("done", "failed")) == [
            ("done", "a"), ("done", "b")
        ]
        await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "a"})
        assert (await ws_receive(comm, 10))["type"] == "revealed"
        assert await database_sync_to_async(Vote.objects.filter(battle_id=battle_id).count)() == 1
    finally:
        if comm is not None:
            await comm.disconnect()
        process_group_stop(worker)
