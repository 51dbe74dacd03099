"""A model's slots in the real Redis: taken up to the limit, waited for, given back, reclaimed from
a holder that stopped renewing; and the backend that holds one for each request."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from arena.live import model_slots_key
from arena.relay import RedisBatch
from arena.slots import BUSY, LimitedBackend, ModelSlots, backend_limited
from inference.backends import Delta, Finished, GenerationRequest
from inference.failures import FailureKind, GenerationFailure

MODEL_ID = 987_001  # no real model's: the key is this test's alone
KEY = model_slots_key(MODEL_ID)
REQUEST = GenerationRequest(endpoint_url="http://model.invalid", template="zephyr", messages=[])


@pytest.fixture
async def redis():
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    await client.delete(KEY)
    yield client
    await client.delete(KEY)
    await client.aclose()


@pytest.fixture
def slots_of(redis):
    batch = RedisBatch(redis)

    def slots(holder: str, limit: int = 2, lease_seconds: float = 30) -> ModelSlots:
        return ModelSlots(batch, model_id=MODEL_ID, limit=limit, holder=holder, lease_seconds=lease_seconds)

    return slots


async def holders(redis) -> set[str]:
    return {member.decode() for member in await redis.zrange(KEY, 0, -1)}


async def server_ms(redis) -> float:
    seconds, microseconds = await redis.time()
    return seconds * 1000 + microseconds / 1000


async def test_up_to_the_limit_get_a_slot_and_the_next_one_is_refused(redis, slots_of):
    assert await slots_of("a").try_acquire() and await slots_of("b").try_acquire()
    assert not await slots_of("c").try_acquire()
    assert await slots_of("a").try_acquire(), "a holder asking again keeps its slot"
    assert await holders(redis) == {"a", "b"}


async def test_leases_end_on_the_redis_server_s_clock_and_renewing_extends_them(redis, slots_of):
    before = await server_ms(redis)
    assert await slots_of("a", lease_seconds=30).try_acquire()
    after = await server_ms(redis)
    first = await redis.zscore(KEY, "a")
    assert int(before) + 30_000 <= first <= after + 30_000  # the script counts whole ms
    assert 0 < await redis.pttl(KEY) <= 30_000, "the set goes when nobody renews"
    await asyncio.sleep(0.01)  # the server's clock moves on
    await slots_of("a", lease_seconds=30).renew()
    assert await redis.zscore(KEY, "a") > first


async def test_a_release_lets_a_waiter_in(redis, slots_of, monkeypatch):
    assert await slots_of("a").try_acquire() and await slots_of("b").try_acquire()
    waiter = slots_of("c")
    refused = asyncio.Event()
    real_try = waiter.try_acquire

    async def try_acquire() -> bool:
        held = await real_try()
        if not held:
            refused.set()
        return held

    monkeypatch.setattr(waiter, "try_acquire", try_acquire)
    waiting = asyncio.create_task(waiter.acquire(wait_seconds=60))
    await asyncio.wait_for(refused.wait(), 5)
    assert not waiting.done()
    await slots_of("a").release()
    await asyncio.wait_for(waiting, 5)
    assert await holders(redis) == {"b", "c"}


async def test_the_slot_of_a_holder_that_stopped_renewing_comes_back(redis, slots_of):
    assert await slots_of("alive").try_acquire() and await slots_of("dead").try_acquire()
    # The dead holder's lease ended a moment ago (its worker stopped renewing it).
    await redis.zadd(KEY, {"dead": await server_ms(redis) - 1}, xx=True)
    assert await slots_of("new").try_acquire()
    assert await holders(redis) == {"alive", "new"}


async def test_a_lease_left_to_run_out_frees_the_slot_for_a_waiter(redis, slots_of):
    assert await slots_of("dead", limit=1, lease_seconds=0.3).try_acquire()  # and never renewed
    await asyncio.wait_for(slots_of("waiter", limit=1).acquire(wait_seconds=30), 10)
    assert await holders(redis) == {"waiter"}


async def test_a_holder_whose_lease_ran_out_is_counted_again_when_it_renews(redis, slots_of):
    assert await slots_of("late", limit=1).try_acquire()
    await redis.zadd(KEY, {"late": await server_ms(redis) - 1}, xx=True)
    assert await slots_of("next", limit=1).try_acquire()
    await slots_of("late", limit=1).renew()  # its request is still at the server
    assert await holders(redis) == {"late", "next"}


async def test_a_wait_past_its_bound_fails_as_overloaded_and_takes_no_slot(redis, slots_of):
    assert await slots_of("a", limit=1).try_acquire()
    with pytest.raises(GenerationFailure) as failure:
        await slots_of("b", limit=1).acquire(wait_seconds=0.2)
    assert failure.value.kind is FailureKind.OVERLOADED and failure.value.message == BUSY
    assert await holders(redis) == {"a"}


class Inner:
    """A backend that notes who held a slot when it was called, and streams or blocks."""

    def __init__(self, redis, *, block: bool = False, fail: bool = False) -> None:
        self.redis, self.block, self.fail = redis, block, fail
        self.holders_at_call: set[str] | None = None
        self.called = asyncio.Event()

    async def stream(self, request):
        self.holders_at_call = await holders(self.redis)
        self.called.set()
        yield Delta("Hello")
        if self.block:
            await asyncio.Event().wait()
        if self.fail:
            raise GenerationFailure(FailureKind.DISCONNECTED, "The connection to the model server was lost.")
        yield Finished(text="Hello", token_count=1, finish_reason="eos_token")


async def test_the_backend_holds_a_slot_while_the_request_runs_and_gives_it_back(redis, slots_of):
    inner = Inner(redis)
    events = [e async for e in LimitedBackend(inner, slots_of("stream-1"), wait_seconds=5).stream(REQUEST)]
    assert [type(e) for e in events] == [Delta, Finished]
    assert inner.holders_at_call == {"stream-1"}, "the request goes out once the slot is held"
    assert await holders(redis) == set()


async def test_a_failed_request_gives_its_slot_back(redis, slots_of):
    inner = Inner(redis, fail=True)
    with pytest.raises(GenerationFailure):
        [e async for e in LimitedBackend(inner, slots_of("stream-1"), wait_seconds=5).stream(REQUEST)]
    assert inner.holders_at_call == {"stream-1"} and await holders(redis) == set()


async def test_a_cancelled_request_gives_its_slot_back(redis, slots_of):
    inner = Inner(redis, block=True)

    async def consume() -> None:
        async for _ in LimitedBackend(inner, slots_of("stream-1"), wait_seconds=5).stream(REQUEST):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(inner.called.wait(), 5)
    assert await holders(redis) == {"stream-1"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await holders(redis) == set()


async def test_a_wait_cancelled_before_it_read_its_answer_leaves_no_slot_behind(redis, slots_of, monkeypatch):
    slots = slots_of("b", limit=1)
    real_try = slots.try_acquire
    asked = asyncio.Event()

    async def try_acquire_then_hang() -> bool:
        await real_try()  # the script ran and took the slot...
        asked.set()
        await asyncio.Event().wait()  # ...but its answer is never read
        return True

    monkeypatch.setattr(slots, "try_acquire", try_acquire_then_hang)
    task = asyncio.create_task(anext(LimitedBackend(Inner(redis), slots, wait_seconds=60).stream(REQUEST)))
    await asyncio.wait_for(asked.wait(), 5)
    assert await holders(redis) == {"b"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await holders(redis) == set()


async def test_with_no_limit_the_backend_is_the_model_s_own(redis):
    inner = Inner(redis)
    backend = backend_limited(
        inner, RedisBatch(redis), model_id=MODEL_ID, limit=None, holder="s", lease_seconds=10, wait_seconds=5
    )
    assert backend is inner
    limited = backend_limited(
        inner, RedisBatch(redis), model_id=MODEL_ID, limit=3, holder="s", lease_seconds=10, wait_seconds=5
    )
    assert isinstance(limited, LimitedBackend) and limited.slots.limit == 3


async def test_time_to_first_token_counts_from_the_slot_not_the_wait_for_it(redis, slots_of):
    """A reply that waited for its model's slot reports the model's speed, not the queue's: its time
    to first token and duration start once the slot is held."""
    import uuid

    from channels.layers import InMemoryChannelLayer

    from arena.events import reply_ref
    from arena.live import stream_keys
    from arena.relay import RelayTarget, relay_stream

    assert await slots_of("other", limit=1).try_acquire()
    stream_id = uuid.uuid4()
    keys = stream_keys(stream_id)
    ref = reply_ref(battle_id="x", turn_index=0, attempt=0, side="a")
    target = RelayTarget(keys=keys, group="battle-ttft-test", ref=ref)
    backend = LimitedBackend(Inner(redis), slots_of("stream-1", limit=1), wait_seconds=5)

    async def release_later() -> None:
        await asyncio.sleep(0.6)
        await slots_of("other", limit=1).release()

    releasing = asyncio.create_task(release_later())
    started = asyncio.get_running_loop().time()
    outcome = await relay_stream(
        backend, REQUEST, target, redis=redis, channel_layer=InMemoryChannelLayer(), flush_ms=15, flush_chars=256,
    )
    waited = asyncio.get_running_loop().time() - started
    await releasing
    await redis.delete(keys.text, keys.heartbeat)
    assert outcome.failure is None and waited >= 0.6
    assert outcome.ttft_ms is not None and outcome.ttft_ms < 300, outcome.ttft_ms
    assert outcome.duration_ms is not None and outcome.duration_ms < 300, outcome.duration_ms
