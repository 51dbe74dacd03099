"""The arena's keys in Redis, and reading the live text of replies still streaming.

Redis holds only what may be lost. A streaming reply's text so far and its heartbeat are keyed
by the reply's stream id, a random id its claim gives it: ids of rows repeat after a database is
reset or restored, and two installations may share one Redis server, but a stream id never
repeats, so a page can only ever read text its own stream wrote.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

LIVE_TEXT_TTL_SECONDS = 3600


@dataclass(frozen=True)
class StreamKeys:
    text: str  # the reply's text so far (APPENDed by the relay)
    heartbeat: str  # present while a worker streams the reply


def stream_keys(stream_id: uuid.UUID | str) -> StreamKeys:
    return StreamKeys(text=f"arena:stream:{stream_id}:text", heartbeat=f"arena:stream:{stream_id}:alive")


def model_failures_key(model_id: int) -> str:
    """The counter of a model's failed generations in the current window."""
    return f"arena:health:failures:{model_id}"


def probe_due_key(model_id: int) -> str:
    """Set while a model's periodic probe is not due again (OpenAI-compatible servers)."""
    return f"arena:health:probed:{model_id}"


def model_slots_key(model_id: int) -> str:
    """The streams holding one of a model's concurrency slots, scored by when their leases end."""
    return f"arena:slots:{model_id}"


def rate_limit_key(bucket: str, client_key: str, window: int) -> str:
    return f"arena:rl:{bucket}:{client_key}:{window}"


@lru_cache(maxsize=1)
def live_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def live_text(stream_id: uuid.UUID | str | None) -> str:
    """The text a reply's stream has written so far; "" before its stream began."""
    if stream_id is None:
        return ""
    try:
        raw = live_redis().get(stream_keys(stream_id).text)
    except redis.RedisError:
        return ""  # the browser gets the rest from later deltas or the final text
    return raw.decode() if isinstance(raw, bytes) else ""


def counters_incr(names: list[str], ttl_seconds: int) -> list[int]:
    """Add one to each counter, in one round trip; a counter expires `ttl_seconds` after its
    first count (INCR, then EXPIRE NX)."""
    pipe = live_redis().pipeline(transaction=False)
    for name in names:
        pipe.incr(name)
        pipe.expire(name, ttl_seconds, nx=True)
    return [int(count) for count in pipe.execute()[0::2]]


def judge_claim_key(claim: uuid.UUID | str) -> str:
    """Present while a worker holds a judged run's answer or verdict under this claim."""
    return f"arena:judge:claim:{claim}"
