"""Leaderboard variants: one category's battles, with or without style control, from battle rows
(the database's counted votes or a clean_battle file alike). Pure numpy; no Django import.

The plain table of the same battles is always fitted too: with style control each row says how
many ranks style control moved the model (`rank_change`, positive when it rose) and its rating
without it (`rating_plain`). Fewer than `min_battles` battles in the view give no table, only the
count (`too_few_votes`), so a category with a handful of votes never shows a ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from arena import ratings, style_ratings
from arena.categories import OVERALL, RULES, TraitArrays, category_mask, category_names

# How each style feature is said in words: the subject, and what "one standard deviation" is of.
_FEATURE_WORDS = {
    "tokens": ("Longer answers", "an answer one standard deviation longer than its rival's (in relative length)"),
    "headers": ("Answers with more headers", "one standard deviation more headers than the rival answer"),
    "lists": ("Answers with more list items", "one standard deviation more list items than the rival answer"),
    "bold": ("Answers with more bold text", "one standard deviation more bold spans than the rival answer"),
}


def coefficient_says(feature: str, value: float, lower: float, upper: float) -> str:
    """A style coefficient in one sentence, e.g. "Longer answers win more often: …"."""
    subject, unit = _FEATURE_WORDS[feature]
    figures = f"γ = {value:+.3f}, 95% interval {lower:+.3f} to {upper:+.3f}"
    if not (math.isfinite(lower) and math.isfinite(upper)) or lower <= 0.0 <= upper:
        return f"{subject} win neither clearly more nor less often ({figures})."
    change = math.exp(value) - 1.0
    direction = "more" if value > 0 else "less"
    moves = "raises" if value > 0 else "lowers"
    by = f"{abs(change) * 100:.0f}%"
    return f"{subject} win {direction} often: {unit} {moves} the odds of winning by {by} ({figures})."


def category_label(name: str) -> str:
    if name == OVERALL:
        return "Overall"
    return RULES.get(name, name.replace("_", " ").capitalize())


@dataclass
class BattleRows:
    """Battles in vote order: model indices into `names`, outcome codes, the votes' weights, each
    side's style (N x 4) with whether it is known, and the categories' traits."""

    names: list[str]
    a: NDArray[np.int64]
    b: NDArray[np.int64]
    outcome: NDArray[np.int64]
    weights: NDArray[np.float64]
    style_a: NDArray[np.float64]
    style_b: NDArray[np.float64]
    has_style: NDArray[np.bool_]
    traits: TraitArrays | None


def variant_compute(
    rows: BattleRows, *, style: bool, category: str, min_battles: int, min_votes: int = 0,
    weighted: bool = False, bootstrap_rounds: int = 0, seed: int = 0, anchor: tuple[str, float] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """The variant's payload: `models` (the rows of arena.ratings' table, plus `rank_change` and
    `rating_plain` with style control), `battles`, `coefficients` with style control."""
    if category == OVERALL:
        keep = np.ones(rows.a.size, dtype=bool)
    elif rows.traits is None:
        raise ValueError("categories need the battles' traits")
    else:
        keep = category_mask(category, rows.traits)
    if style:
        keep &= rows.has_style
    n = int(keep.sum())
    payload: dict[str, Any] = {
        "style_control": style, "category": category, "category_label": category_label(category),
        "battles": n, "min_battles": min_battles, "too_few_votes": n < min_battles, "models": [],
    }
    if style:
        payload["coefficients"] = []
    if n == 0 or n < min_battles:
        return payload
    present = np.unique(np.concatenate([rows.a[keep], rows.b[keep]]))
    index = np.full(len(rows.names), -1, dtype=np.int64)
    index[present] = np.arange(present.size)
    names = [rows.names[i] for i in present]
    a, b, o = index[rows.a[keep]], index[rows.b[keep]], rows.outcome[keep]
    w = rows.weights[keep]
    k = len(names)
    anchor_at = (names.index(anchor[0]), anchor[1]) if anchor and anchor[0] in names else None
    elo = ratings.elo_online(a, b, o, k)
    counts = ratings.counts_from_battles(a, b, o, k)
    sums = (ratings.counts_from_battles(a, b, o, k, weights=w), ratings.counts_from_battles(a, b, o, k, weights=w * w))
    plain = ratings.leaderboard_compute(
        counts, names, bootstrap_rounds=0 if style else bootstrap_rounds, seed=seed, anchor=anchor_at, elo=elo,
        weighted=sums if weighted else None, min_votes=min_votes, workers=workers,
    )
    payload["interval_method"] = plain.interval_method
    payload["bootstrap_rounds"] = plain.bootstrap_rounds
    # The charts of these battles, as the live table's (ties left out of the win fractions).
    win = ratings.win_fraction_matrix(counts, exclude_ties=True)
    payload["names"] = names
    payload["win_fraction"] = [[None if not np.isfinite(x) else round(float(x), 4) for x in row] for row in win]
    payload["wins"] = ratings.pair_wins_matrix(counts).astype(int).tolist()
    payload["battle_counts"] = ratings.battle_count_matrix(counts).astype(int).tolist()
    if not style:
        payload["models"] = [_public(r) for r in plain.to_dicts()]
        return payload
    z = style_ratings.style_design(rows.style_a[keep], rows.style_b[keep])
    fit_rows = style_ratings.style_rows(a, b, o, z, k, weights=w if weighted else None)
    table = style_ratings.style_leaderboard_compute(
        fit_rows, names, bootstrap_rounds=bootstrap_rounds, seed=seed, anchor=anchor_at, elo=elo,
        min_votes=min_votes, workers=workers,
    )
    before = {r.model: r for r in plain.rows}
    models = []
    for row in table.to_dicts():
        old = before[row["model"]]
        row["rating_plain"] = old.rating
        row["rank_plain"] = old.rank
        row["rank_change"] = None if row["rank"] is None or old.rank is None else old.rank - row["rank"]
        models.append(_public(row))
    payload["models"] = models
    payload["interval_method"] = table.interval_method
    payload["bootstrap_rounds"] = table.bootstrap_rounds
    payload["coefficients"] = [
        {**c, "says": coefficient_says(c["feature"], c["value"], c["ci_lower"], c["ci_upper"])}
        for c in table.coefficient_dicts()
    ]
    return payload


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("index", None)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def categories_offered(traits: TraitArrays | None, total: int) -> list[dict[str, Any]]:
    """The category menu: each category with its number of battles (languages by frequency)."""
    if traits is None:
        return [{"name": OVERALL, "label": category_label(OVERALL), "battles": total}]
    return [
        {"name": name, "label": category_label(name), "battles": int(category_mask(name, traits).sum())}
        for name in category_names(traits)
    ]
