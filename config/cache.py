"""Django's Redis cache with one client and connection pool per process.

Django keeps a cache object per async context, so under ASGI every websocket got a cache of its
own, with its own connection pool: its first cache call opened a Redis connection (redis-py reads
its package metadata for each, about 1 ms of CPU), and each call built a client. One shared
thread-safe pool per process, as redis-py intends.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, ...], ProcessRedisCacheClient] = {}


class ProcessRedisCacheClient(RedisCacheClient):
    """Keeps one `redis.Redis` per server instead of making one for every call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._redis_clients.get(index)
        if client is None:
            with _LOCK:
                client = self._redis_clients.get(index)
                if client is None:
                    client = self._client(connection_pool=self._get_connection_pool(write))
                    self._redis_clients[index] = client
        return client


class ProcessRedisCache(RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ProcessRedisCacheClient

    @cached_property
    def _cache(self) -> ProcessRedisCacheClient:
        key = (*self._servers, repr(sorted(self._options.items())))
        with _LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = self._class(self._servers, **self._options)
        return client
