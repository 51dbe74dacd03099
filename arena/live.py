"""Reading the live text of replies still streaming (written by the relay into Redis)."""

from functools import lru_cache

import redis
from django.conf import settings

from inference.relay import live_text_key


@lru_cache(maxsize=1)
def live_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def live_text(reply_id: int) -> str:
    try:
        raw = live_redis().get(live_text_key(reply_id))
    except redis.RedisError:
        return ""  # the browser gets the rest from later deltas or the final text
    return raw.decode() if raw else ""
