"""A model's concurrency limit, held across every worker process and host: slots in Redis.

A model's slots are one sorted set (`arena.live.model_slots_key`) whose members are the streams
holding one, each scored by when its lease ends on the Redis server's clock, so that workers on
hosts whose clocks disagree still agree. Taking a slot is one script: drop the leases that ran
out, then join if fewer than the limit hold one. A holder renews its lease while its request runs
and leaves when it ends, cancelled or not; a worker that died stops renewing, and its slot comes
back when the lease runs out (one heartbeat period). A stream waiting for a slot asks again every
50 ms at first, then every 250 ms at most: no message wakes it, so no wake-up can be lost.
Waiting is not first come, first served: under a sustained overload a reply may wait its whole
`wait_seconds` and fail while later ones get in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator

from arena import metrics
from arena.live import model_slots_key
from arena.relay import RedisBatch
from inference.backends import Backend, Delta, Finished, GenerationRequest
from inference.failures import FailureKind, GenerationFailure

log = logging.getLogger(__name__)

# KEYS[1]: the model's slots. ARGV: the holder, the limit, the lease in ms. 1 if it holds a slot.
# The set's own expiry follows the newest lease, which ends last: a model nobody uses leaves no key.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS[1]: the model's slots. ARGV: the holder, the lease in ms. 1 if its lease had run out: its
# request is still at the server, so it is counted again, even past the limit.
_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lost = redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return lost
"""

FIRST_POLL_SECONDS = 0.05
LONGEST_POLL_SECONDS = 0.25
BUSY = "The model is busy with other replies; try again shortly."


class ModelSlots:
    """One holder's (a stream's) view of one model's slots, through its event loop's `RedisBatch`."""

    def __init__(self, batch: RedisBatch, *, model_id: int, limit: int, holder: str, lease_seconds: float) -> None:
        self.batch, self.key, self.limit, self.holder = batch, model_slots_key(model_id), limit, holder
        self.lease_ms = max(int(lease_seconds * 1000), 1)

    async def try_acquire(self) -> bool:
        [held] = await self.batch.run(("EVAL", _ACQUIRE, 1, self.key, self.holder, self.limit, self.lease_ms))
        return bool(held)

    async def acquire(self, wait_seconds: float) -> None:
        """Take a slot, waiting at most `wait_seconds`; past that, an overloaded failure."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        poll = FIRST_POLL_SECONDS
        while not await self.try_acquire():
            left = deadline - loop.time()
            if left <= 0:
                raise GenerationFailure(FailureKind.OVERLOADED, BUSY)
            # Jittered, so waiters that started together don't all ask in the same instant.
            await asyncio.sleep(min(poll * random.uniform(0.8, 1.2), left))
            poll = min(poll * 1.5, LONGEST_POLL_SECONDS)

    async def renew(self) -> None:
        [lost] = await self.batch.run(("EVAL", _RENEW, 1, self.key, self.holder, self.lease_ms))
        if lost:
            log.warning("The slot of stream %s on %s had expired; counted again", self.holder, self.key)

    async def keep(self) -> None:
        """Renew the lease three times per lease period until cancelled; a failed renewal is tried
        again at the next (one missed leaves two thirds of the lease)."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self.renew()
            except Exception:  # Redis may be back by the next renewal
                log.warning("Could not renew the slot of stream %s", self.holder, exc_info=True)

    async def release(self) -> None:
        """Leave the slot (a no-op if not held). If Redis can't be reached the lease runs out instead."""
        try:
            await self.batch.run(("ZREM", self.key, self.holder))
        except Exception:  # the reply's outcome doesn't depend on it
            log.warning("Could not release the slot of stream %s", self.holder, exc_info=True)


class LimitedBackend:
    """A backend whose requests each wait for one of the model's slots first and hold it throughout.

    The inner backend is called once the slot is held, so its stall and total timeouts start then.
    """

    def __init__(self, inner: Backend, slots: ModelSlots, *, wait_seconds: float, model: str = "") -> None:
        self.inner, self.slots, self.wait_seconds = inner, slots, wait_seconds
        self.slot_wait = metrics.MODEL_SLOT_WAIT.labels(model=model)
        # time.monotonic() once the slot is held: where the relay starts timing the generation.
        self.slot_granted_at: float | None = None

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta | Finished]:
        renewing: asyncio.Task[None] | None = None
        try:
            waiting = time.monotonic()
            try:
                await self.slots.acquire(self.wait_seconds)
            finally:  # a wait that ended in failure was waited too
                self.slot_wait.observe(time.monotonic() - waiting)
            self.slot_granted_at = time.monotonic()
            renewing = asyncio.create_task(self.slots.keep())
            async for event in self.inner.stream(request):
                yield event
        finally:
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            # Also when cancelled mid-acquire: the script may have run with no one left to read its answer.
            await self.slots.release()


def backend_limited(
    inner: Backend, batch: RedisBatch, *, model_id: int, limit: int | None, holder: str,
    lease_seconds: float, wait_seconds: float, model: str = "",
) -> Backend:
    """`inner` behind the model's slots; `inner` itself when the model has no limit (no Redis work)."""
    if limit is None:
        return inner
    slots = ModelSlots(batch, model_id=model_id, limit=limit, holder=holder, lease_seconds=lease_seconds)
    return LimitedBackend(inner, slots, wait_seconds=wait_seconds, model=model)
