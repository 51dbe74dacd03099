"""Rigging detection, pure numpy (no Django): which votes to flag for an admin's review.

A voter loyal to a model M picks it more often than the leaderboard says M deserves. For each
(voter, model) pair a sequential likelihood-ratio test reads the voter's battles of M in vote
order. Under H0 the vote follows the leaderboard: a tie (or both bad) with the leaderboard's share
of ties t, else M wins with its predicted probability p. Under H1 the voter picks M outright a
share ρ of the time and votes as H0 otherwise. A win for M adds
log((ρ + (1 − ρ)(1 − t)p) / ((1 − t)p)), a loss or a tie adds log(1 − ρ); the sum restarts at 0
whenever it would go below (Page's CUSUM: a test that accepted H0 starts again, so honest
history can't hide a later switch). Two alternatives run side by side, a strong one (ρ = 0.9:
a handful of battles unmask an always-loyal voter) and a mild one (ρ = 0.5: a voter who is
loyal three times in four still climbs); crossing the threshold with either flags the pair.

Thresholds and their error rates are measured by `bench/rigging.py` (bench/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

LOYALTY_SHARES = (0.9, 0.5)
# The log-likelihood ratio that flags a (voter, model) pair: an always-loyal voter for a model the
# leaderboard gives even odds crosses it within 10 battles, fewer than 1% of honest voters ever do.
LOYALTY_THRESHOLD = 8.5
_P_CLIP = 1e-3
# Share of tie and both-bad votes assumed when the leaderboard has none yet (the public arena's ~0.3).
DEFAULT_TIE_RATE = 0.3


@dataclass(frozen=True)
class CastVote:
    """One vote as detection reads it: who cast it, the two models (A, B) and the outcome code
    (arena.ratings: 0 A wins, 1 B wins, 2 tie, 3 both bad)."""

    vote_id: int
    voter: str
    model_a: int
    model_b: int
    outcome: int


def win_probability(rating_a: float, rating_b: float) -> float:
    """P(A beats B) on the leaderboard's scale (400 points per factor of 10 in the odds)."""
    return float(1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0)))


def loyalty_increments(outcome: str, p: float, tie_rate: float, shares: Iterable[float] = LOYALTY_SHARES) -> np.ndarray:
    """Each alternative's log-likelihood ratio for one battle of M: outcome "won", "lost" or "tie"
    (tie or both bad); p = P(M wins a decisive vote), tie_rate = the share of votes that aren't."""
    p = min(max(p, _P_CLIP), 1 - _P_CLIP)
    t = min(max(tie_rate, 0.0), 1 - _P_CLIP)
    rho = np.array(list(shares), dtype=np.float64)
    if outcome == "won":
        won: np.ndarray = np.log((rho + (1 - rho) * (1 - t) * p) / ((1 - t) * p))
        return won
    other: np.ndarray = np.log(1 - rho)
    return other  # a loss or a tie is (1 - ρ) times as likely from a loyal voter


def loyal_pairs(
    votes: list[CastVote], ratings: dict[int, float], *, tie_rate: float = DEFAULT_TIE_RATE,
    threshold: float = LOYALTY_THRESHOLD, shares: tuple[float, ...] = LOYALTY_SHARES,
) -> set[tuple[str, int]]:
    """The (voter, model) pairs whose statistic crossed the threshold at some point of `votes`
    (in vote order). A model without a rating is taken at the average rating."""
    stats: dict[tuple[str, int], np.ndarray] = {}
    flagged: set[tuple[str, int]] = set()
    default = float(np.mean(list(ratings.values()))) if ratings else 1000.0
    for vote in votes:
        ra, rb = ratings.get(vote.model_a, default), ratings.get(vote.model_b, default)
        p_a = win_probability(ra, rb)
        tie = vote.outcome not in (0, 1)
        for model, p, won in ((vote.model_a, p_a, vote.outcome == 0), (vote.model_b, 1 - p_a, vote.outcome == 1)):
            key = (vote.voter, model)
            if key in flagged:
                continue
            step = loyalty_increments("tie" if tie else "won" if won else "lost", p, tie_rate, shares)
            s = np.maximum(0.0, stats.get(key, np.zeros(len(shares))) + step)
            stats[key] = s
            if s.max() >= threshold:
                flagged.add(key)
    return flagged


def loyal_votes(
    votes: list[CastVote], ratings: dict[int, float], *, tie_rate: float = DEFAULT_TIE_RATE,
    threshold: float = LOYALTY_THRESHOLD,
) -> dict[int, int]:
    """Vote id → the model it is suspected of favouring: every vote, before or after the
    crossing, of a voter on a battle of a model they were flagged as loyal to."""
    pairs = loyal_pairs(votes, ratings, tie_rate=tie_rate, threshold=threshold)
    out: dict[int, int] = {}
    for vote in votes:
        for model in (vote.model_a, vote.model_b):
            if (vote.voter, model) in pairs:
                out.setdefault(vote.vote_id, model)
    return out


def too_fast(seconds_after_replies: float | None, minimum: float) -> bool:
    """Was the vote cast sooner after the slower reply finished than anyone reads two replies?"""
    return seconds_after_replies is not None and math.isfinite(seconds_after_replies) \
        and seconds_after_replies < minimum
