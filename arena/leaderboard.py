"""The leaderboard as the site shows it: counts from the database, math from `arena.ratings`.

`leaderboard_snapshot()` builds the full payload (table, matrices, interval plot data) from the
PairCount table — O(K^2), independent of the number of votes. Point ratings and analytic
intervals are recomputed after every counted vote; the bootstrap intervals are recomputed in the
background (debounced) and used while they are current, i.e. computed from the same vote total.
"""

from __future__ import annotations

import time

import numpy as np
from django.conf import settings
from django.core.cache import cache

from arena import ratings
from arena.models import ChatModel, PairCount

# The key names the payload's shape: a snapshot cached by an older version is never shown.
CACHE_CURRENT = "leaderboard:current:2"
CACHE_BOOTSTRAP = "leaderboard:bootstrap"


def counts_load() -> tuple[np.ndarray, list[str], np.ndarray]:
    """(counts K x K x 4, model names, online Elo) over the models that have counted votes."""
    cells = list(PairCount.objects.filter(count__gt=0).values_list("model_a_id", "model_b_id", "outcome", "count"))
    ids = sorted({c[0] for c in cells} | {c[1] for c in cells})
    index = {model_id: i for i, model_id in enumerate(ids)}
    counts = np.zeros((len(ids), len(ids), ratings.N_OUTCOMES))
    for a, b, outcome, n in cells:
        counts[index[a], index[b], outcome] += n
    models = ChatModel.objects.in_bulk(ids)
    names = [models[i].name for i in ids]
    elo = np.array([models[i].elo_online for i in ids])
    return counts, names, elo


def _anchor(names: list[str]) -> tuple[int, float] | None:
    model = settings.ARENA_RATING_ANCHOR_MODEL
    if model and model in names:
        return names.index(model), settings.ARENA_RATING_ANCHOR_VALUE
    return None


def leaderboard_snapshot(*, bootstrap_rounds: int = 0) -> dict:
    started = time.perf_counter()
    counts, names, elo = counts_load()
    payload: dict = {"models": [], "names": names, "total_votes": int(counts.sum()), "interval_method": "analytic"}
    if not names:
        payload.update(win_fraction=[], wins=[], battle_counts=[], computed_ms=0.0)
        return payload
    anchor = _anchor(names)
    table = ratings.leaderboard_compute(
        counts, names, anchor=anchor, elo=elo, bootstrap_rounds=bootstrap_rounds, seed=0
    )
    rows = table.to_dicts()
    if bootstrap_rounds == 0:
        boot = cache.get(CACHE_BOOTSTRAP)
        if boot and boot.get("total_votes") == payload["total_votes"] and boot.get("names") == names:
            # The background bootstrap is current: show its intervals (and the ranks they imply).
            lower = np.array([boot["intervals"][r["model"]][0] for r in rows])
            upper = np.array([boot["intervals"][r["model"]][1] for r in rows])
            for row, lo, hi, rank in zip(rows, lower, upper, ratings.rank_ub(lower, upper), strict=True):
                row.update(ci_lower=float(lo), ci_upper=float(hi), rank=int(rank))
            payload["interval_method"] = "bootstrap"
            payload["bootstrap_rounds"] = boot["rounds"]
    else:
        payload["interval_method"] = "bootstrap"
        payload["bootstrap_rounds"] = bootstrap_rounds
    for row in rows:
        row.pop("index", None)
    rows.sort(key=lambda r: (-r["rating"], r["model"]))
    payload["models"] = rows
    # As the reference leaderboard's chart: wins over decisive battles, ties left out (they still
    # count as half a win in the ratings). `wins` and `battle_counts` give each pair's W-L-T.
    win = ratings.win_fraction_matrix(counts, exclude_ties=True)
    payload["win_fraction"] = [[None if not np.isfinite(x) else round(float(x), 4) for x in row] for row in win]
    payload["wins"] = ratings.pair_wins_matrix(counts).astype(int).tolist()
    payload["battle_counts"] = ratings.battle_count_matrix(counts).astype(int).tolist()
    payload["anchor"] = settings.ARENA_RATING_ANCHOR_MODEL if anchor else None
    payload["computed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return payload


def bootstrap_store(*, rounds: int) -> dict:
    """Run the bootstrap on the current counts and keep its intervals for the live snapshots."""
    counts, names, _ = counts_load()
    if not names:
        return {}
    lower, upper = ratings.bootstrap_intervals(counts, rounds, 0, anchor=_anchor(names))
    result = {
        "total_votes": int(counts.sum()),
        "names": names,
        "rounds": rounds,
        "intervals": {n: [float(lo), float(hi)] for n, lo, hi in zip(names, lower, upper, strict=True)},
    }
    cache.set(CACHE_BOOTSTRAP, result, timeout=None)
    return result
