"""Rate limits: fixed-window counters in Redis, per session (or account) and per IP hash."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from arena.clients import ClientIdentity
from arena.errors import RateLimited
from arena.live import counters_incr, rate_limit_key


def rate_limit(
    bucket: str, client: ClientIdentity, *, limit: int, window_seconds: int, message: str,
    address_limit: int | None = None,
) -> None:
    """Count one more action in `bucket`; RateLimited(message) past `limit` in the window. Counted
    by IP hash too, so starting new sessions doesn't reset it. A signed-in account is a person
    whatever its address, so its address may take ARENA_ADDRESS_SHARERS times as many (an
    office behind one NAT); without accounts a new session is free, so the address holds to `limit`."""
    if address_limit is None:
        address_limit = limit * settings.ARENA_ADDRESS_SHARERS if client.user_id is not None else limit
    window = int(timezone.now().timestamp()) // window_seconds
    keyed = [(f"s:{client.client_id}", limit)]
    if client.ip_hash:
        keyed.append((f"ip:{client.ip_hash}", address_limit))
    hits = counters_incr([rate_limit_key(bucket, key, window) for key, _ in keyed], window_seconds + 5)
    if any(count > cap for count, (_, cap) in zip(hits, keyed, strict=True)):
        raise RateLimited(message)
