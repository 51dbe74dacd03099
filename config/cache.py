"""Django's Redis cache with one client and connection pool per process.

Django keeps a cache object per async context, so under ASGI every websocket got a cache of its
own, with its own connection pool: its first cache call opened a Redis connection (redis-py reads
its package metadata for each, about 1 ms of CPU), and every call built a client. One shared,
thread-safe client per process instead, as redis-py intends.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, str], ProcessRedisCacheClient] = {}


class ProcessRedisCacheClient(RedisCacheClient):
    """Keeps the `redis.Redis` it makes (one server) instead of making one for every call."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._single_server = len(servers) == 1
        self._redis: Any = None

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        if not self._single_server:  # reads go to a replica drawn at random: leave them to Django
            return super().get_client(key, write=write)
        if self._redis is None:
            with _LOCK:
                if self._redis is None:
                    self._redis = super().get_client(key, write=True)
        return self._redis


class ProcessRedisCache(RedisCache):
    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._process_servers = re.split("[;,]", server) if isinstance(server, str) else list(server)
        self._process_options: dict[str, Any] = params.get("OPTIONS", {})

    @cached_property
    def _cache(self) -> ProcessRedisCacheClient:
        key = (",".join(self._process_servers), repr(sorted(self._process_options.items())))
        with _LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = ProcessRedisCacheClient(self._process_servers, **self._process_options)
        return client
