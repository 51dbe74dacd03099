"""Rate limits: fixed-window counters in Redis, per session and per IP hash."""

from __future__ import annotations

from django.utils import timezone

from arena.clients import ClientIdentity
from arena.errors import RateLimited
from arena.live import counters_incr, rate_limit_key


def rate_limit(bucket: str, client: ClientIdentity, *, limit: int, window_seconds: int, message: str) -> None:
    """Count one more action in `bucket`; RateLimited(message) past `limit` in the window. Counted
    by IP hash too, so starting new sessions doesn't reset it."""
    window = int(timezone.now().timestamp()) // window_seconds
    keys = [f"s:{client.client_id}", f"ip:{client.ip_hash}" if client.ip_hash else ""]
    hits = counters_incr([rate_limit_key(bucket, key, window) for key in keys if key], window_seconds + 5)
    if any(count > limit for count in hits):
        raise RateLimited(message)
