"""A claimed reply streamed on the process's loop: behind its model's slots when it has a limit,
and with no Redis work for slots when it has none."""

from __future__ import annotations

import pytest

from arena import services, slots, streams
from arena.live import live_redis, model_slots_key
from arena.models import ChatModel
from arena.relay import RelayOutcome
from arena.streams import STREAM_GRACE_SECONDS, reply_stream
from inference.failures import FailureKind
from tests.helpers import devserver_stats

pytestmark = pytest.mark.django_db


def claimed(turn, side: str = "a") -> services.GenerationJob:
    job = services.reply_claim(reply_id=turn.replies.get(side=side).id)
    assert job is not None
    return job


def test_a_model_with_no_limit_streams_with_no_slot(chat_models, alice, monkeypatch):
    made = []
    monkeypatch.setattr(slots, "ModelSlots", lambda *args, **kwargs: made.append(kwargs))
    job = claimed(services.battle_start(client=alice, text="Tell me about rivers"))
    assert job.concurrency_limit is None
    outcome = reply_stream(job)
    assert outcome.failure is None and outcome.text
    assert made == [] and not live_redis().exists(model_slots_key(job.model_id))


def test_past_the_model_s_limit_a_reply_waits_and_is_never_sent(chat_models, alice, settings):
    settings.ARENA_MODEL_SLOT_WAIT_SECONDS = 0.5
    ChatModel.objects.update(max_concurrent=1)
    turn = services.battle_start(client=alice, text="Tell me about lakes")
    job = claimed(turn)
    assert job.concurrency_limit == 1
    key = model_slots_key(job.model_id)
    seconds, _ = live_redis().time()
    live_redis().zadd(key, {"another-stream": (seconds + 60) * 1000})  # the one slot, held elsewhere
    sent = devserver_stats(job.request.endpoint_url)["requests"]
    try:
        outcome = reply_stream(job)
        assert outcome.failure is not None and outcome.failure.kind is FailureKind.OVERLOADED
        assert outcome.failure.message == slots.BUSY and outcome.text == ""
        assert devserver_stats(job.request.endpoint_url)["requests"] == sent, "nothing went to the model server"
        assert {m.decode() for m in live_redis().zrange(key, 0, -1)} == {"another-stream"}
    finally:
        live_redis().zrem(key, "another-stream")

    services.reply_requeue(reply_id=job.reply_id)
    again = claimed(turn)
    outcome = reply_stream(again)
    assert outcome.failure is None and outcome.text
    assert devserver_stats(job.request.endpoint_url)["requests"] == sent + 1
    assert not live_redis().exists(key), "the slot was given back"


@pytest.mark.parametrize("limit", [None, 2])
def test_the_stream_may_run_for_the_model_s_timeouts_plus_any_wait_for_a_slot(
    chat_models, alice, settings, monkeypatch, limit
):
    settings.ARENA_MODEL_SLOT_WAIT_SECONDS = 45
    ChatModel.objects.update(max_concurrent=limit)
    job = claimed(services.battle_start(client=alice, text="Tell me about seas"))
    allowed = []
    monkeypatch.setattr(streams.PROCESS_LOOP, "run", lambda work, timeout: allowed.append(timeout) or RelayOutcome())
    reply_stream(job)
    own = job.request.timeout_seconds + job.request.stall_seconds + STREAM_GRACE_SECONDS
    assert allowed == [own + (45 if limit else 0)]
