"""How fast each model answers, over its recent replies: time to first token (p50, p90), tokens
per second after the first, and the share of replies that failed. Read from the replies'
stored timings (measured from when generation started: a wait for a model slot is not counted,
arena.relay) and cached briefly, as every leaderboard refresh shows them."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.core.cache import cache

from arena.models import Reply

RECENT_REPLIES = 500
CACHE_SPEED = "leaderboard:speed:1"
CACHE_SECONDS = 60


def model_speed(model_id: int) -> dict[str, Any] | None:
    """A model's speed over its last RECENT_REPLIES finished replies; None if it has none."""
    rows = list(
        Reply.objects.filter(model_id=model_id, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("status", "ttft_ms", "duration_ms", "token_count")[:RECENT_REPLIES]
    )
    if not rows:
        return None
    failed = sum(1 for r in rows if r[0] == Reply.Status.FAILED)
    done = [r for r in rows if r[0] == Reply.Status.DONE and r[1] is not None]
    ttft = np.array([r[1] for r in done], dtype=np.float64)
    rates = np.array([
        (tokens - 1) * 1000.0 / (duration - first)
        for _, first, duration, tokens in done
        if first is not None and duration is not None and tokens > 1 and duration > first
    ])
    return {
        "replies": len(rows),
        "ttft_p50_ms": round(float(np.percentile(ttft, 50)), 1) if ttft.size else None,
        "ttft_p90_ms": round(float(np.percentile(ttft, 90)), 1) if ttft.size else None,
        "tokens_per_second": round(float(np.median(rates)), 2) if rates.size else None,
        "failure_rate": round(failed / len(rows), 4),
    }


def models_speed(model_ids: list[int]) -> dict[int, dict[str, Any] | None]:
    """Every listed model's speed, cached for CACHE_SECONDS (one indexed query per model)."""
    cached: dict[int, dict[str, Any] | None] = cache.get(CACHE_SPEED) or {}
    missing = [i for i in model_ids if i not in cached]
    if missing:
        cached.update({i: model_speed(i) for i in missing})
        cache.set(CACHE_SPEED, cached, timeout=CACHE_SECONDS)
    return {i: cached[i] for i in model_ids}
