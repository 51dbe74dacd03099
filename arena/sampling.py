"""Which two models fight.  Pure numpy; no Django import.

Every policy gives each unordered pair of drawable models a probability; one draw picks a pair by
it and the sides are then shuffled.  The battle records that probability, so the fit can weight
its vote by the inverse (Chatbot Arena paper, arXiv 2403.04132, eq. 7; see :func:`vote_weight`).

Policies (setting ``ARENA_SAMPLING``), with ``w`` the models' weights (the admin's weight, times
``NEW_MODEL_BOOST`` while a model has fewer counted votes than the boost threshold):

``uniform``
    ``P(i, j) ∝ w_i w_j``: every pair alike when the weights are equal.
``weighted``
    The reference arena's draw: the first model by weight, the second by weight among the rest,
    ``P(i, j) = w_i w_j / W · (1 / (W − w_i) + 1 / (W − w_j))`` with ``W = Σ w``.
``adaptive``
    ``P(i, j) = (1 − ε) · w_i w_j g_ij / Σ w w g + ε · w_i w_j / Σ w w``: mostly in proportion to
    the pair's gain ``g_ij`` (:func:`pair_gains`), and at least ``ε = EXPLORATION`` times the
    pair's uniform chance, so every pair keeps being compared.

The gain is the gain in Fisher information of the Bradley–Terry fit, not the paper's eq. 9: eq. 9
scores each pair from its own battles only (the variance of its win rate over its count), so with
tens of models most pairs have a handful of votes and the score is mostly the pseudo-count.  The
fit pools every vote: a vote on (i, j) also sharpens every comparison that goes through i or j.
The ranking's uncertainty is taken as ``U = Σ_{k<l} Var(P̂(k beats l))``, the variance of the
win probabilities the fit predicts (delta method: ``(p_kl (1 − p_kl))² Var(β_k − β_l)``), so
``U = tr(Σ L(ρ))`` with ``Σ`` the covariance of the ratings and ``L(ρ)`` the Laplacian of
``ρ_kl = (p_kl (1 − p_kl))²``.  One more vote on (i, j) adds ``v_ij = p_ij (1 − p_ij)`` times
``c cᵀ`` (``c = e_i − e_j``) to the information, and by Sherman–Morrison lowers ``U`` by

    g_ij = v_ij · cᵀ Σ L(ρ) Σ c / (1 + v_ij · cᵀ Σ c).

``Σ`` is the inverse of the information plus ``PRIOR_PRECISION`` per model, so a model without
votes has a finite (large) variance and the largest gains.  All pairs cost two K x K products and
one K x K inverse (bench/sampling.py times it).  ``bench/sampling.py`` measures the policies:
level with uniform when every model starts together (no allocation could save more than 4–6%
there: a vote between models 150 points apart still carries 84% of an even match's information),
about 45% fewer votes for models that join a running arena (bench/README.md).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from arena.ratings import RATING_PER_LOGIT, battle_count_matrix, fit_bt

__all__ = [
    "POLICIES",
    "EXPLORATION",
    "NEW_MODEL_BOOST",
    "PRIOR_PRECISION",
    "Policy",
    "Draw",
    "pair_gains",
    "boosted_weights",
    "pair_probabilities",
    "pair_draw",
    "vote_weight",
    "vote_weights",
]

FloatArray = NDArray[np.float64]
AnyArray = NDArray[Any]

Policy = Literal["uniform", "weighted", "adaptive"]
POLICIES: tuple[Policy, ...] = ("uniform", "weighted", "adaptive")
# Share of every draw that stays uniform under `adaptive`: each pair keeps at least this fraction
# of its uniform chance (bench/sampling.py compares floors).
EXPLORATION = 0.25
# Weight multiplier of a model with fewer counted votes than the boost threshold: the public
# arena's static boost for new models.
NEW_MODEL_BOOST = 5.0
# Prior information per model, in log-odds units: a model nobody voted on has a rating standard
# deviation of 1 (174 rating points, more than the spread of the public leaderboard).
PRIOR_PRECISION = 1.0


class Draw(NamedTuple):
    """The pair drawn (indices into the candidates, side A first), the probability with which that
    unordered pair was drawn, and how many pairs could have been."""

    a: int
    b: int
    probability: float
    pairs: int


def _laplacian(weights: FloatArray) -> FloatArray:
    lap = -weights
    lap[np.diag_indices_from(lap)] += weights.sum(axis=1)
    return lap


def _pair_quadratic(m: FloatArray) -> FloatArray:
    """``(e_i − e_j)ᵀ M (e_i − e_j)`` for every pair, for a symmetric ``M``."""
    d = np.diag(m)
    return d[:, None] + d[None, :] - 2.0 * m


def pair_gains(
    counts: AnyArray, ratings: FloatArray | None = None, *, prior: float = PRIOR_PRECISION
) -> FloatArray:
    """``(K, K)`` symmetric: how much one more vote between i and j would lower the ranking's
    uncertainty (module docstring), zero on the diagonal.

    ``counts`` is the ``(K, K, 4)`` count array of :mod:`arena.ratings`; ``ratings`` its
    Bradley–Terry fit (computed when not given).  A model without votes counts as an average one.
    """
    c = np.asarray(counts, dtype=np.float64)
    k = c.shape[0]
    if k < 2:
        return np.zeros((k, k))
    if ratings is None:
        ratings = fit_bt(c)
    r = np.asarray(ratings, dtype=np.float64)
    rated = np.isfinite(r)
    beta = np.zeros(k)
    if rated.any():
        beta[rated] = (r[rated] - r[rated].mean()) / RATING_PER_LOGIT
    p = 1.0 / (1.0 + np.exp(-(beta[:, None] - beta[None, :])))
    info = p * p.T  # p (1 − p): Fisher information of one vote on the pair
    n = np.asarray(battle_count_matrix(c), dtype=np.float64)
    hessian = _laplacian(n * info)
    hessian[np.diag_indices(k)] += prior
    sigma = np.linalg.inv(hessian).astype(np.float64, copy=False)
    spread: FloatArray = sigma @ _laplacian(info * info) @ sigma
    gains: FloatArray = info * _pair_quadratic(spread) / (1.0 + info * _pair_quadratic(sigma))
    np.fill_diagonal(gains, 0.0)
    return np.clip(gains, 0.0, None)


def boosted_weights(weights: Sequence[float], votes: Sequence[int], threshold: int) -> FloatArray:
    """The admin's weights, times ``NEW_MODEL_BOOST`` for models with fewer than ``threshold``
    counted votes."""
    w = np.asarray(weights, dtype=np.float64)
    v = np.asarray(votes, dtype=np.float64)
    if w.shape != v.shape:
        raise ValueError("weights and votes must have one entry per model")
    boosted: FloatArray = np.where(v < threshold, w * NEW_MODEL_BOOST, w)
    return boosted


def pair_probabilities(
    policy: str,
    weights: Sequence[float] | FloatArray,
    gains: FloatArray | None = None,
    *,
    exploration: float = EXPLORATION,
) -> FloatArray:
    """``(D, D)`` probabilities of the unordered pairs, in the upper triangle (``i < j``), summing
    to one; zero for a model without weight and on the diagonal.

    ``gains`` (``(D, D)``, from :func:`pair_gains`) is needed by ``adaptive`` only.  Raises
    ``ValueError`` with fewer than two models of positive weight.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    if np.count_nonzero(w) < 2:
        raise ValueError("At least two models with a positive weight are needed")
    if not 0.0 < exploration <= 1.0:
        raise ValueError("exploration must be in (0, 1]")
    upper = np.triu(np.ones((w.size, w.size), dtype=bool), 1)
    both = np.where(upper, w[:, None] * w[None, :], 0.0)
    uniform: FloatArray = both / both.sum()
    if policy == "uniform":
        return uniform
    if policy == "weighted":
        total = w.sum()
        # 1/(W − w_i) is infinite only for a model that holds all the weight, excluded above
        rest = np.divide(1.0, total - w, out=np.zeros_like(w), where=total - w > 0)
        weighted: FloatArray = both / total * (rest[:, None] + rest[None, :])
        normalised: FloatArray = weighted / weighted.sum()
        return normalised
    if policy == "adaptive":
        if gains is None or gains.shape != (w.size, w.size):
            raise ValueError("adaptive needs a (D, D) gain matrix")
        g = np.where(np.isfinite(gains), np.clip(gains, 0.0, None), 0.0)
        scored = both * g
        if scored.sum() <= 0.0:  # nothing to learn anywhere (or no votes to say so): uniform
            return uniform
        mixed: FloatArray = (1.0 - exploration) * scored / scored.sum() + exploration * uniform
        return mixed
    raise ValueError(f"unknown sampling policy {policy!r}; use one of {', '.join(POLICIES)}")


def pair_draw(probabilities: FloatArray, rng: random.Random) -> Draw:
    """One pair by ``probabilities`` (from :func:`pair_probabilities`), sides at random."""
    i, j = np.nonzero(np.triu(probabilities, 1) > 0)
    if i.size == 0:
        raise ValueError("At least two models with a positive weight are needed")
    p = probabilities[i, j]
    cumulative = np.cumsum(p)
    k = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), i.size - 1)
    first, second = int(i[k]), int(j[k])
    if rng.random() < 0.5:
        first, second = second, first
    return Draw(first, second, float(p[k] / cumulative[-1]), int(i.size))


def vote_weight(probability: float | None, pairs: int | None) -> float:
    """A vote's inverse-probability weight, relative to a uniform draw among the same pairs:
    ``1 / (pairs · P(pair))``.  Its mean under the draw is exactly 1 (``Σ P · 1/(M P) = 1``), so a
    vote whose probability is unknown (imported, or cast before it was recorded) counts as 1."""
    if probability is None or pairs is None:
        return 1.0
    return float(vote_weights(np.array([probability], dtype=np.float64), np.array([pairs], dtype=np.float64))[0])


def vote_weights(probabilities: FloatArray, pairs: FloatArray) -> FloatArray:
    """:func:`vote_weight` of many votes at once; NaN (or out of range) means unknown."""
    p = np.asarray(probabilities, dtype=np.float64)
    m = np.asarray(pairs, dtype=np.float64)
    known = np.isfinite(p) & np.isfinite(m) & (p > 0) & (p <= 1) & (m >= 1)
    weights: FloatArray = np.ones(p.shape)
    weights[known] = 1.0 / (m[known] * p[known])
    return weights
