"""The leaderboard by category and with style control, from the database's counted votes and
their battles' traits (arena.variants does the math). Unlike the live table these read one row
per vote, so each variant is cached and recomputed at most every VARIANT_STALE_SECONDS while
votes come in, one process at a time, by a worker: a page is served the cached one meanwhile,
and waits for the computation only when nothing of that variant was ever computed."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count

from arena import queue
from arena.categories import LONG_QUERY_TOKENS, MULTI_TURN_TURNS, OVERALL, RULES, SHORT_QUERY_TOKENS, TraitArrays
from arena.models import BattleTraits, ChatModel, Vote
from arena.sampling import vote_weights
from arena.speed import models_speed
from arena.variants import BattleRows, categories_offered, category_label, variant_compute

CACHE_VARIANT = "leaderboard:variant:1:{style}:{category}:{weighting}"
CACHE_MENU = "leaderboard:categories:1"
CACHE_VARIANT_LOCK = "leaderboard:variant-lock:{style}:{category}"
VARIANT_STALE_SECONDS = 30
MENU_SECONDS = 300  # the menu's vote counts: a guide to what is there, not a live figure

_TRAITS = [f"battle__traits__{f}" for f in (*BattleTraits.STYLE_FIELDS, *BattleTraits.TRAIT_FIELDS)]
_FIELDS = ("battle__model_a_id", "battle__model_b_id", "outcome", "battle__draw_probability", "battle__draw_pairs",
           *_TRAITS)


def battle_rows_load() -> tuple[BattleRows, list[int]]:
    """Every counted vote in vote order with its battle's style and traits (blank where the
    battle has none), and the models' ids in the rows' index order."""
    rows = list(Vote.objects.countable().filter(counted=True).order_by("created_at", "id").values_list(*_FIELDS))
    ids = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {model_id: i for i, model_id in enumerate(ids)}
    names_by_id = dict(ChatModel.objects.filter(id__in=ids).values_list("id", "name"))
    n = len(rows)
    a = np.fromiter((index[r[0]] for r in rows), dtype=np.int64, count=n)
    b = np.fromiter((index[r[1]] for r in rows), dtype=np.int64, count=n)
    o = np.fromiter((Vote.Outcome(r[2]).code for r in rows), dtype=np.int64, count=n)
    w = vote_weights(np.array([r[3] for r in rows], dtype=np.float64), np.array([r[4] for r in rows], dtype=np.float64))
    has = np.fromiter((r[5] is not None for r in rows), dtype=bool, count=n)
    style = np.array([[x or 0 for x in r[5:13]] for r in rows], dtype=np.float64).reshape(n, 8)
    traits = TraitArrays(
        np.fromiter((r[13] or 0 for r in rows), dtype=np.int64, count=n),
        np.fromiter((r[14] or 0 for r in rows), dtype=np.int64, count=n),
        np.fromiter((bool(r[15]) for r in rows), dtype=bool, count=n),
        np.array([r[16] or "" for r in rows], dtype=np.str_),
        np.fromiter((bool(r[17]) for r in rows), dtype=bool, count=n),
        np.array([r[18] or "" for r in rows], dtype=np.str_),
    )
    battle_rows = BattleRows([names_by_id[i] for i in ids], a, b, o, w, style[:, :4], style[:, 4:], has, traits)
    return battle_rows, ids


def variant_snapshot(*, style: bool, category: str, total_votes: int) -> dict[str, Any]:
    """The payload of one variant, cached as described above."""
    key = CACHE_VARIANT.format(style=int(style), category=category, weighting=settings.ARENA_RATINGS_WEIGHTING)
    cached = cache.get(key)
    if cached is not None and (
        cached["total_votes"] == total_votes or time.time() - cached["computed_at"] < VARIANT_STALE_SECONDS
    ):
        return cached
    lock = CACHE_VARIANT_LOCK.format(style=int(style), category=category)
    if cached is not None:
        if cache.add(lock, 1, timeout=120):  # nobody is computing it yet
            transaction.on_commit(lambda: queue.leaderboard_variant_queue(style=style, category=category))
        return cached
    return variant_refresh(style=style, category=category, locked=False)


def variant_refresh(*, style: bool, category: str, locked: bool = True) -> dict[str, Any]:
    """Compute one variant and cache it; `locked`: the caller holds its lock, released here."""
    key = CACHE_VARIANT.format(style=int(style), category=category, weighting=settings.ARENA_RATINGS_WEIGHTING)
    lock = CACHE_VARIANT_LOCK.format(style=int(style), category=category)
    if not locked:
        cache.add(lock, 1, timeout=120)
    try:
        payload = _variant_compute(style=style, category=category)
        cache.set(key, payload, timeout=None)
    finally:
        cache.delete(lock)
    return payload


def _variant_compute(*, style: bool, category: str) -> dict[str, Any]:
    started = time.perf_counter()
    rows, ids = battle_rows_load()
    anchor = settings.ARENA_RATING_ANCHOR_MODEL
    payload = variant_compute(
        rows, style=style, category=category, min_battles=settings.ARENA_CATEGORY_MIN_VOTES,
        min_votes=settings.ARENA_PROVISIONAL_VOTES,
        weighted=settings.ARENA_RATINGS_WEIGHTING == "inverse-probability",
        anchor=(anchor, settings.ARENA_RATING_ANCHOR_VALUE) if anchor else None,
    )
    by_name = dict(zip(rows.names, ids, strict=True))
    speed = models_speed(ids)
    for row in payload["models"]:
        row["speed"] = speed[by_name[row["model"]]]
    payload.update(
        total_votes=int(rows.a.size), weighting=settings.ARENA_RATINGS_WEIGHTING,
        provisional_votes=settings.ARENA_PROVISIONAL_VOTES, computed_at=time.time(),
        categories=categories_offered(rows.traits, int(rows.a.size)),
        anchor=anchor if anchor and anchor in rows.names else None,
        computed_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    payload.setdefault("interval_method", "analytic")
    return payload


def categories_menu() -> list[dict[str, Any]]:
    """The category menu with each category's counted votes, from the traits alone (SQL counts,
    cached for MENU_SECONDS); deduplication's count needs every prompt's frequency and is left out."""
    menu = cache.get(CACHE_MENU)
    if menu is not None:
        return menu
    votes = Vote.objects.countable().filter(counted=True)  # the one rule of what counts
    counted = BattleTraits.objects.filter(battle__vote__in=votes)
    total = votes.count()
    rules = {
        "coding": counted.filter(coding=True), "long_query": counted.filter(query_tokens__gte=LONG_QUERY_TOKENS),
        "multi_turn": counted.filter(turns__gte=MULTI_TURN_TURNS),
        "no_short": counted.filter(query_tokens__gte=SHORT_QUERY_TOKENS), "no_refusal": counted.filter(refusal=False),
    }
    menu = [{"name": OVERALL, "label": category_label(OVERALL), "battles": total}]
    menu += [{"name": name, "label": category_label(name), "battles": rules[name].count() if name in rules else None}
             for name in RULES]
    languages = counted.values("language").annotate(n=Count("battle_id")).order_by("-n", "language")
    menu += [{"name": row["language"], "label": category_label(row["language"]), "battles": row["n"]}
             for row in languages if row["language"]]
    cache.set(CACHE_MENU, menu, timeout=MENU_SECONDS)
    return menu
