"""The leaderboard as the site shows it: counts from the database, math from `arena.ratings`.

`leaderboard_snapshot()` builds the full payload (table, matrices, interval plot data) from the
PairCount table — O(K^2), independent of the number of votes. Point ratings and analytic
intervals are recomputed after every counted vote; the bootstrap intervals are recomputed in the
background (debounced) and used while they are current, i.e. computed from the same vote total.
With ARENA_RATINGS_WEIGHTING=inverse-probability the fit reads the votes' weights instead of their
counts (arena.ratings, Weighted votes). Models with fewer than ARENA_PROVISIONAL_VOTES counted votes
are provisional: in the fit, listed after the others, without a rank.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.core.cache import cache

from arena import ratings
from arena.models import ChatModel, PairCount
from arena.speed import models_speed

# The key names the payload's shape: a snapshot cached by an older version is never shown.
CACHE_CURRENT = "leaderboard:current:4"
CACHE_BOOTSTRAP = "leaderboard:bootstrap:2"


class Counts(NamedTuple):
    """The pair counts over the models that have counted votes, in model id order."""

    ids: list[int]
    names: list[str]
    counts: np.ndarray  # K x K x 4 votes
    sums: np.ndarray  # the same votes' weights, summed
    squares: np.ndarray  # and their squares, summed
    elo: np.ndarray

    @property
    def weighted(self) -> tuple[np.ndarray, np.ndarray] | None:
        """What the fit reads besides the counts, per ARENA_RATINGS_WEIGHTING."""
        return (self.sums, self.squares) if settings.ARENA_RATINGS_WEIGHTING == "inverse-probability" else None


def counts_load() -> Counts:
    cells = list(
        PairCount.objects.filter(count__gt=0)
        .values_list("model_a_id", "model_b_id", "outcome", "count", "weight", "weight_sq")
    )
    ids = sorted({c[0] for c in cells} | {c[1] for c in cells})
    index = {model_id: i for i, model_id in enumerate(ids)}
    shape = (len(ids), len(ids), ratings.N_OUTCOMES)
    counts, sums, squares = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for a, b, outcome, n, w, w2 in cells:
        at = (index[a], index[b], outcome)
        counts[at] += n
        sums[at] += w
        squares[at] += w2
    models = ChatModel.objects.in_bulk(ids)
    names = [models[i].name for i in ids]
    elo = np.array([models[i].elo_online for i in ids])
    return Counts(ids, names, counts, sums, squares, elo)


def _anchor(names: list[str]) -> tuple[int, float] | None:
    model = settings.ARENA_RATING_ANCHOR_MODEL
    if model and model in names:
        return names.index(model), settings.ARENA_RATING_ANCHOR_VALUE
    return None


def leaderboard_snapshot(
    *, bootstrap_rounds: int = 0, loaded: Counts | None = None, cached_intervals: bool = True
) -> dict:
    """The payload every leaderboard page draws; `loaded` saves reading the counts again.
    `cached_intervals`: show the background bootstrap's intervals when they are current (False
    for counts other than the people's, e.g. a judge model's)."""
    started = time.perf_counter()
    loaded = loaded or counts_load()
    counts, names = loaded.counts, loaded.names
    payload: dict = {
        "models": [], "names": names, "total_votes": int(counts.sum()), "interval_method": "analytic",
        "weighting": settings.ARENA_RATINGS_WEIGHTING, "provisional_votes": settings.ARENA_PROVISIONAL_VOTES,
    }
    if not names:
        payload.update(win_fraction=[], wins=[], battle_counts=[], computed_ms=0.0)
        return payload
    anchor = _anchor(names)
    table = ratings.leaderboard_compute(
        counts, names, anchor=anchor, elo=loaded.elo, bootstrap_rounds=bootstrap_rounds, seed=0,
        weighted=loaded.weighted, min_votes=settings.ARENA_PROVISIONAL_VOTES,
    )
    rows = table.to_dicts()
    if bootstrap_rounds == 0 and cached_intervals:
        boot = cache.get(CACHE_BOOTSTRAP)
        if boot and boot.get("total_votes") == payload["total_votes"] and boot.get("names") == names \
                and boot.get("weighting") == payload["weighting"]:
            # The background bootstrap is current: show its intervals (and the ranks they imply).
            lower = np.array([boot["intervals"][r["model"]][0] for r in rows])
            upper = np.array([boot["intervals"][r["model"]][1] for r in rows])
            ranked = np.array([not r["provisional"] for r in rows], dtype=bool)
            for row, lo, hi, rank in zip(rows, lower, upper, ratings.rank_ub(lower, upper, ranked), strict=True):
                row.update(ci_lower=float(lo), ci_upper=float(hi), rank=int(rank) if not row["provisional"] else None)
            payload["interval_method"] = "bootstrap"
            payload["bootstrap_rounds"] = boot["rounds"]
    else:
        payload["interval_method"] = "bootstrap"
        payload["bootstrap_rounds"] = bootstrap_rounds
    speed = models_speed(loaded.ids)
    for row in rows:
        row["speed"] = speed[loaded.ids[row.pop("index")]]
    # Ranked models first, then the provisional ones, each by rating: the charts follow this order.
    rows.sort(key=lambda r: (r["provisional"], -r["rating"], r["model"]))
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
    loaded = counts_load()
    names = loaded.names
    if not names:
        return {}
    fitted, squares = loaded.weighted or (loaded.counts, None)
    lower, upper = ratings.bootstrap_intervals(fitted, rounds, 0, anchor=_anchor(names), squares=squares)
    result = {
        "total_votes": int(loaded.counts.sum()),
        "names": names,
        "weighting": settings.ARENA_RATINGS_WEIGHTING,
        "rounds": rounds,
        "intervals": {n: [float(lo), float(hi)] for n, lo, hi in zip(names, lower, upper, strict=True)},
    }
    cache.set(CACHE_BOOTSTRAP, result, timeout=None)
    return result
