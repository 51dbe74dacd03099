"""The relay's batched Redis client against the real Redis: each stream's commands in order, the
streams flushing together sharing pipelines, pipelines spaced by `min_interval` only when busy."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from arena.relay import RedisBatch


class PipelinesCounted(aioredis.Redis):
    """The real client, counting the pipelines it is asked for."""

    pipelines = 0

    def pipeline(self, *args, **kwargs):
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
async def redis():
    client = PipelinesCounted.from_url(settings.REDIS_URL)
    prefix = f"test:batch:{uuid.uuid4()}"
    yield client, prefix
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_streams_flushing_together_share_pipelines_and_keep_their_order(redis):
    client, prefix = redis
    batch = RedisBatch(client, min_interval=0.005)

    async def stream(i: int) -> None:
        for j in range(10):
            await batch.run(("RPUSH", f"{prefix}:{i}", j), ("APPEND", f"{prefix}:{i}:text", f"{j},"))

    await asyncio.gather(*(stream(i) for i in range(50)))
    for i in range(50):
        assert [int(x) for x in await client.lrange(f"{prefix}:{i}", 0, -1)] == list(range(10))
        assert (await client.get(f"{prefix}:{i}:text")).decode() == "".join(f"{j}," for j in range(10))
    # 500 requests: one pipeline per round of the 50 streams, not one per request.
    assert client.pipelines <= 25


async def test_an_idle_request_goes_out_at_once_and_a_busy_one_waits_its_interval(redis):
    client, prefix = redis
    batch = RedisBatch(client, min_interval=0.5)
    started = time.monotonic()
    await batch.run(("SET", f"{prefix}:a", 1))
    assert time.monotonic() - started < 0.25  # idle: no wait
    started = time.monotonic()
    await batch.run(("SET", f"{prefix}:b", 2))
    assert time.monotonic() - started >= 0.4  # right after the last pipeline: gathered until it is due
    assert await client.mget(f"{prefix}:a", f"{prefix}:b") == [b"1", b"2"]


async def test_a_failing_command_fails_only_its_own_request(redis):
    client, prefix = redis
    batch = RedisBatch(client, min_interval=0.005)
    await client.set(f"{prefix}:str", "x")
    good, bad = await asyncio.gather(
        batch.run(("SET", f"{prefix}:ok", 1)), batch.run(("LPUSH", f"{prefix}:str", 1)), return_exceptions=True
    )
    assert good == [True]
    assert isinstance(bad, aioredis.ResponseError)
