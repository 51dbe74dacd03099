"""The cache every process uses (config/cache.py): one Redis client and pool per process, however
many async contexts (websockets) ask for the cache, against the real Redis."""

from __future__ import annotations

import contextvars
import uuid

from django.core.cache import caches


def _cache_in_a_context_of_its_own():
    # As a websocket's task is: a context in which nothing has asked for the cache yet.
    return contextvars.Context().run(lambda: caches["default"])


def test_every_socket_shares_the_process_client_and_its_pool():
    first, second = _cache_in_a_context_of_its_own(), _cache_in_a_context_of_its_own()
    assert first is not second  # Django makes a cache object per context...
    assert first._cache is second._cache  # ...which now share one client
    assert first._cache.get_client() is second._cache.get_client(write=True)


def test_the_shared_client_stores_reads_and_deletes():
    cache = caches["default"]
    key = f"test:cache:{uuid.uuid4()}"
    assert cache.add(key, {"a": 1}, timeout=30)
    assert not cache.add(key, {"a": 2}, timeout=30)
    assert cache.get(key) == {"a": 1}
    cache.delete(key)
    assert cache.get(key) is None
