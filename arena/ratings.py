"""Rating math for the arena leaderboard: Bradley–Terry, bootstrap and analytic
intervals, online Elo and the pairwise charts.  Pure numpy; no Django import.

Conventions
-----------
Outcomes are coded from the point of view of the two sides of a battle::

    A_WINS = 0     "model_a"        score for side A = 1
    B_WINS = 1     "model_b"        score for side A = 0
    TIE = 2        "tie"            score for side A = 1/2
    BOTH_BAD = 3   "tie (bothbad)"  score for side A = 1/2

``WINNER_TO_OUTCOME`` maps FastChat's ``winner`` strings to these codes.

Votes are kept as a count array ``counts`` of shape ``(K, K, 4)``:
``counts[a, b, o]`` is the number of battles with model ``a`` on side A,
model ``b`` on side B and outcome ``o``.  Self-battles (``a == b``) are
rejected by the helpers and ignored by the fits.

Model (the same as FastChat's ``compute_bt`` / lmarena ``arena-rank``)
    P(A beats B) = 1 / (1 + 10 ** ((R_B - R_A) / 400)).
    The Bradley–Terry ratings maximise the likelihood of all battles where a
    tie or a both-bad vote counts as half a win for each side (FastChat codes
    it as outcome 0.5, which is the same loss as one A-win plus one B-win each
    with weight 1/2).  No side advantage, no intercept.  Internally the fit
    works in natural log-odds units beta; ``rating = 1000 + 400 * theta`` with
    ``theta = beta / ln 10`` (base 10, scale 400).
    Ratings are centred so that the rated models average exactly 1000; an
    optional ``anchor=(i, value)`` then shifts every rating so that model
    ``i`` shows ``value`` (FastChat pins mixtral-8x7b-instruct-v0.1 to 1114).
    The fit is Newton's method with a line search on the K x K sufficient
    statistics (half-tie win matrix and battle-count matrix), so one
    iteration costs O(K^2) + one K x K solve whatever the number of votes.

Ridge
    The negative log-likelihood gets a tiny ridge ``ridge / 2 * |beta|^2``
    (``DEFAULT_RIDGE = 1e-6``, on the summed, not averaged, loss).  It keeps
    the optimum unique and finite when a model won (or lost) every battle it
    played, or when the comparison graph is disconnected (each connected part
    is then centred on its own).  On ordinary data it moves ratings by far
    less than 0.01 points (tested).  ``ridge=0`` gives the plain MLE; for a
    separated model the plain MLE is infinite and the result is whatever
    ``max_iter`` Newton steps reach.  With the default ridge an unbeaten
    model ends some 2,000 points or more above the rest: finite and
    deterministic but not meaningful (FastChat's L-BFGS likewise stops at a
    large value set by its tolerance).  Analytic intervals of such a model
    are not meaningful either; the bootstrap shows the instability.

Models without battles
    A model whose row and column of ``counts`` are empty is not part of the
    fit: its rating and interval are NaN, it does not enter the mean-1000
    centring, it has rank 0 from ``rank_ub`` and it is left out of
    ``leaderboard_compute`` unless ``include_unrated=True``.

Intervals
    ``bootstrap_intervals`` re-draws the aggregated outcome cells with a
    multinomial of total N over the observed cell frequencies and refits
    every round (FastChat ``compute_bootstrap_bt``); the reported bounds are
    the 2.5% / 97.5% quantiles (linear interpolation, as pandas) while the
    shown rating stays the full-data fit.  ``analytic_intervals`` uses the
    observed information (``method="hessian"``) or the sandwich
    H^-1 Sigma H^-1 of lmarena ``arena-rank`` (``method="sandwich"``,
    default), +-1.96 standard errors.  Both are expressed in the gauge of the
    ratings: centred without an anchor, relative to the anchored model with
    one (FastChat anchors every bootstrap round, so the anchored model gets
    a zero-width interval).

    Bootstrap implementation: the multinomial is drawn exactly by
    Poissonisation plus an exact correction of each round's total (one
    Poisson variate per cell instead of numpy's one binomial per cell), over
    the cells pooled per unordered pair (i won / j won / tie or both-bad),
    which has the same law as FastChat's per-(a, b, outcome) draw because
    the fit only sees those sums; ``sampler="reference"`` instead replays
    FastChat's exact random stream.  Rounds are fitted in batches by a chord
    (fixed-Hessian Newton) iteration warm-started at the full fit, with a
    damped Newton fallback, in chunks spread over threads; results depend on
    ``seed`` only, not on the number of threads.

Weighted votes
    A battle whose pair was drawn with probability P among M drawable pairs
    may weigh ``w = 1 / (M P)`` (``arena.sampling.vote_weight``; 1 under a
    uniform draw, mean 1 under any draw), so that the fit estimates what
    uniform sampling would have (Chatbot Arena paper, eq. 7): the cells then
    hold sums of weights (``counts_from_battles(..., weights=)``), the fit is
    the same weighted likelihood, and the sandwich's Sigma and the bootstrap
    take the sums of the squared weights (``squares``) per cell.

Rank (UB)
    ``rank = 1 + #{models whose lower bound > this model's upper bound}``,
    among the models ranked: ``leaderboard_compute(min_votes=N)`` leaves the
    models with fewer than N votes unranked (provisional).

Charts
    ``win_fraction_matrix`` is FastChat's ``compute_pairwise_win_fraction``:
    both orientations pooled, ties and both-bad in the denominator but a win
    for neither side (``tie_weight=0.5`` counts them as half a win instead).
    FastChat's leaderboard draws its chart from the non-tied battles only
    (``battles_no_ties``): ``exclude_ties=True`` gives that, wins over
    decisive battles.  ``pair_wins_matrix`` is the decisive wins behind it.
    ``battle_count_matrix`` is symmetric, ``votes_per_model`` its row sums.

Online Elo
    Battles in time order, K = 4, base 10, scale 400, initial 1000, ties and
    both-bad score 1/2 (FastChat ``compute_elo``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "A_WINS",
    "B_WINS",
    "TIE",
    "BOTH_BAD",
    "N_OUTCOMES",
    "OUTCOME_NAMES",
    "WINNER_TO_OUTCOME",
    "SCORE_A",
    "SCALE",
    "BASE",
    "INITIAL_RATING",
    "RATING_PER_LOGIT",
    "DEFAULT_RIDGE",
    "Interval",
    "LeaderboardRow",
    "LeaderboardTable",
    "counts_from_battles",
    "counts_add",
    "fit_bt",
    "bootstrap_ratings",
    "bootstrap_intervals",
    "rating_covariance",
    "analytic_intervals",
    "rank_ub",
    "elo_step",
    "elo_online",
    "win_fraction_matrix",
    "pair_wins_matrix",
    "average_win_rate",
    "battle_count_matrix",
    "votes_per_model",
    "leaderboard_compute",
]

A_WINS = 0
B_WINS = 1
TIE = 2
BOTH_BAD = 3
N_OUTCOMES = 4
OUTCOME_NAMES = ("model_a", "model_b", "tie", "tie (bothbad)")
WINNER_TO_OUTCOME = {name: code for code, name in enumerate(OUTCOME_NAMES)}
# score of side A for each outcome code
SCORE_A = np.array([1.0, 0.0, 0.5, 0.5])

SCALE = 400.0
BASE = 10.0
INITIAL_RATING = 1000.0
RATING_PER_LOGIT = SCALE / math.log(BASE)  # rating points per natural log-odds unit
DEFAULT_RIDGE = 1e-6

# Ratings, intervals and every matrix derived from counts are float64; counts and model
# indices may come in any integer (or, for counts, float) dtype and are converted on entry.
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
IndexArray = NDArray[np.intp]  # what flatnonzero / nonzero return
AnyArray = NDArray[Any]

_MAX_STEP = 5.0  # largest move, in log-odds units, of one bootstrap fixed-point step
_CHUNK_ELEMENTS = 1 << 18  # rounds per bootstrap chunk ~ this / K^2


class Interval(NamedTuple):
    """Lower and upper bounds in rating points, one entry per model."""

    lower: FloatArray
    upper: FloatArray


# --------------------------------------------------------------------------
# counts
# --------------------------------------------------------------------------


def counts_from_battles(
    a_idx: AnyArray, b_idx: AnyArray, outcome: AnyArray, k: int, weights: AnyArray | None = None
) -> AnyArray:
    """Collapse battle rows into an int64 ``(k, k, 4)`` count array.

    ``a_idx``/``b_idx`` are model indices of sides A and B, ``outcome`` the
    outcome codes.  With ``weights`` (one per battle) the cells hold float64
    sums of the weights instead (see Weighted votes).  Raises ``ValueError``
    on out-of-range values, length mismatches and self-battles.
    """
    a = np.asarray(a_idx)
    b = np.asarray(b_idx)
    o = np.asarray(outcome)
    if not (a.shape == b.shape == o.shape) or a.ndim != 1:
        raise ValueError("a_idx, b_idx and outcome must be 1-d arrays of equal length")
    k = int(k)
    if k < 0:
        raise ValueError("k must be non-negative")
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None and w.shape != a.shape:
        raise ValueError("weights must have one entry per battle")
    if a.size == 0:
        return np.zeros((k, k, N_OUTCOMES), dtype=np.int64 if w is None else np.float64)
    for name, arr, hi in (("a_idx", a, k), ("b_idx", b, k), ("outcome", o, N_OUTCOMES)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integers")
        if arr.min() < 0 or arr.max() >= hi:
            raise ValueError(f"{name} out of range [0, {hi})")
    if np.any(a == b):
        raise ValueError("a battle needs two different models (a_idx == b_idx found)")
    flat = (a.astype(np.int64) * k + b) * N_OUTCOMES + o
    counts = np.bincount(flat, weights=w, minlength=k * k * N_OUTCOMES)
    if w is None:
        counts = counts.astype(np.int64, copy=False)
    return counts.reshape(k, k, N_OUTCOMES)


def counts_add(counts: AnyArray, a: int, b: int, outcome: int, n: int = 1) -> None:
    """Add ``n`` battles (a on side A, b on side B, outcome) to ``counts`` in place."""
    k = counts.shape[0]
    if not (0 <= a < k and 0 <= b < k):
        raise ValueError("model index out of range")
    if a == b:
        raise ValueError("a battle needs two different models")
    if not 0 <= outcome < N_OUTCOMES:
        raise ValueError("unknown outcome code")
    counts[a, b, outcome] += n


def _check_counts(counts: AnyArray) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 3 or c.shape[0] != c.shape[1] or c.shape[2] != N_OUTCOMES:
        raise ValueError("counts must have shape (K, K, 4)")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("counts must be finite and non-negative")
    return c


def _pair_stats(counts: AnyArray) -> tuple[FloatArray, FloatArray]:
    """Strict wins ``S[i, j]`` (i beat j, either side) and symmetric ties ``T``."""
    c = _check_counts(counts)
    strict = c[:, :, A_WINS] + c[:, :, B_WINS].T
    ties = c[:, :, TIE] + c[:, :, BOTH_BAD]
    ties = ties + ties.T
    np.fill_diagonal(strict, 0.0)
    np.fill_diagonal(ties, 0.0)
    return strict, ties


def battle_count_matrix(counts: AnyArray) -> AnyArray:
    """Symmetric ``(K, K)`` matrix of battles between i and j (both orientations)."""
    c = np.asarray(counts)
    _check_counts(c)
    per_side: AnyArray = c.sum(axis=2)  # in the dtype of counts
    out = per_side + per_side.T
    np.fill_diagonal(out, 0)
    return out


def votes_per_model(counts: AnyArray) -> AnyArray:
    """Number of battles each model took part in (either side)."""
    votes: AnyArray = battle_count_matrix(counts).sum(axis=1)
    return votes


def pair_wins_matrix(counts: AnyArray) -> FloatArray:
    """``(K, K)`` battles row model i won outright against column model j, either side.

    With :func:`battle_count_matrix` ``n``: i's record against j is
    ``W[i, j]`` wins, ``W[j, i]`` losses and ``n[i, j] - W[i, j] - W[j, i]`` ties.
    """
    return _pair_stats(counts)[0]


def win_fraction_matrix(counts: AnyArray, tie_weight: float = 0.0, *, exclude_ties: bool = False) -> FloatArray:
    """Fraction of battles between row model i and column model j won by i.

    Both orientations are pooled.  The default ``tie_weight=0`` is FastChat's
    ``compute_pairwise_win_fraction``: ties and both-bad votes are in the
    denominator but count as a win for neither side, so ``F + F.T <= 1``.
    ``tie_weight=0.5`` counts them as half a win each (then ``F + F.T == 1``).
    ``exclude_ties=True`` leaves ties and both-bad votes out altogether, as
    FastChat's leaderboard chart does ("fraction of A wins for all non-tied
    battles"): then ``F + F.T == 1`` wherever the pair had a decisive battle.
    NaN where the pair never met (with ``exclude_ties``: never had a decisive
    battle) and on the diagonal.
    """
    strict, ties = _pair_stats(counts)
    if exclude_ties:
        ties = np.zeros_like(ties)
    total = strict + strict.T + ties
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (strict + tie_weight * ties) / total
    frac[total == 0] = np.nan
    np.fill_diagonal(frac, np.nan)
    return frac


def average_win_rate(counts: AnyArray, tie_weight: float = 0.0) -> FloatArray:
    """Mean over opponents of the pairwise win fraction (FastChat's chart)."""
    frac = win_fraction_matrix(counts, tie_weight)
    out = np.full(frac.shape[0], np.nan)
    seen = np.any(np.isfinite(frac), axis=1)
    out[seen] = np.nanmean(frac[seen], axis=1)
    return out


# --------------------------------------------------------------------------
# Bradley–Terry fit
# --------------------------------------------------------------------------


def _sigmoid_matrix(beta: FloatArray) -> FloatArray:
    """``P[i, j] = sigma(beta_i - beta_j)``; ``P.T == 1 - P`` to the last bit."""
    d = beta[:, None] - beta[None, :]
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-d))


def _laplacian(weights: FloatArray) -> FloatArray:
    """``L = diag(rowsum(w)) - w`` for a symmetric weight matrix with zero diagonal."""
    lap = -weights
    lap[np.diag_indices_from(lap)] += weights.sum(axis=1)
    return lap


def _nll(w: FloatArray, beta: FloatArray, ridge: float) -> float:
    d = beta[:, None] - beta[None, :]
    return float(np.sum(w * np.logaddexp(0.0, -d)) + 0.5 * ridge * beta @ beta)


def _newton(
    n: FloatArray,
    w: FloatArray,
    beta: FloatArray,
    ridge: float,
    tol: float,
    max_iter: int,
) -> FloatArray:
    """Minimise the BT negative log-likelihood from the pair statistics.

    ``n`` symmetric battle counts, ``w[i, j]`` wins of i over j with ties as
    halves, ``beta`` the start (log-odds units).  Returns the minimiser.
    """
    k = n.shape[0]
    beta = np.array(beta, dtype=np.float64)
    wrow = w.sum(axis=1)
    f = None
    for _ in range(max_iter):
        p = _sigmoid_matrix(beta)
        grad = (n * p).sum(axis=1) - wrow + ridge * beta
        hess = _laplacian(n * p * p.T)
        hess[np.diag_indices(k)] += ridge
        # the likelihood is flat along the all-ones direction; adding
        # s * 11^T / k fixes that gauge without changing the step in the
        # remaining directions (the gradient is orthogonal to 11^T when
        # sum(beta) == 0 or ridge == 0)
        s = max(float(hess.diagonal().mean()), 1e-12)
        hess += s / k
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        size = float(np.max(np.abs(step)))
        if not np.isfinite(size):
            break
        if size <= 1e-4:
            # quadratic region: the full step is safe
            beta = beta - step
            f = None
        else:
            if f is None:
                f = _nll(w, beta, ridge)
            slope = float(grad @ step)
            t = 1.0
            while True:
                cand = beta - t * step
                fc = _nll(w, cand, ridge)
                if fc <= f - 1e-4 * t * slope or t < 1e-8:
                    break
                t *= 0.5
            beta, f = cand, fc
            size *= t
        if size < tol:
            break
    return beta


def _beta_start(init: FloatArray | None, idx: IndexArray) -> FloatArray:
    if init is None:
        return np.zeros(idx.size)
    r = np.asarray(init, dtype=np.float64)[idx]
    r = np.where(np.isfinite(r), r, np.nan)
    if np.all(np.isnan(r)):
        return np.zeros(idx.size)
    beta = (r - np.nanmean(r)) / RATING_PER_LOGIT
    start: FloatArray = np.nan_to_num(beta, nan=0.0)
    return start


def _apply_anchor(ratings: FloatArray, anchor: tuple[int, float] | None) -> FloatArray:
    if anchor is None:
        return ratings
    i, value = int(anchor[0]), float(anchor[1])
    ref = ratings[..., i : i + 1]
    if np.any(~np.isfinite(ref)):
        raise ValueError(f"anchor model {i} has no battles")
    return ratings + (value - ref)


def fit_bt(
    counts: AnyArray,
    *,
    anchor: tuple[int, float] | None = None,
    init: FloatArray | None = None,
    ridge: float = DEFAULT_RIDGE,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> FloatArray:
    """Bradley–Terry ratings (rating points, shape ``(K,)``).

    ``init`` is a previous rating vector (any gauge) for a warm start; it only
    changes the iteration count, not the answer.  Rated models average 1000
    unless ``anchor=(i, value)`` is given.  Unrated models are NaN.
    """
    strict, ties = _pair_stats(counts)
    k = strict.shape[0]
    w = strict + 0.5 * ties
    n = w + w.T
    out = np.full(k, np.nan)
    idx = np.flatnonzero(n.sum(axis=1) > 0)
    if idx.size:
        sub = np.ix_(idx, idx)
        beta = _newton(n[sub], w[sub], _beta_start(init, idx), ridge, tol, max_iter)
        out[idx] = INITIAL_RATING + RATING_PER_LOGIT * (beta - beta.mean())
    return _apply_anchor(out, anchor)


def fit_bt_shrunk(
    counts: AnyArray, prior: FloatArray, *, prior_sd: float = 100.0, tol: float = 1e-9, max_iter: int = 50
) -> FloatArray:
    """Bradley–Terry ratings from few votes, shrunk towards ``prior`` (rating points, ``(K,)``).

    The maximum a posteriori fit with an independent normal prior of ``prior_sd`` rating points
    around each prior rating: with no votes it is the prior, with many it approaches the plain
    fit. A personal leaderboard uses it, the prior being the global ratings. No re-centring: the
    ratings stay on the prior's scale.
    """
    strict, ties = _pair_stats(counts)
    w = strict + 0.5 * ties
    n = w + w.T
    prior = np.asarray(prior, dtype=np.float64)
    beta0 = (prior - INITIAL_RATING) / RATING_PER_LOGIT
    lam = (RATING_PER_LOGIT / prior_sd) ** 2  # the prior's precision in log-odds units
    beta = beta0.copy()
    for _ in range(max_iter):
        p = _sigmoid_matrix(beta)
        grad = -(w - n * p).sum(axis=1) + lam * (beta - beta0)
        hess = _laplacian(n * p * (1 - p)) + lam * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < tol:
            break
    return INITIAL_RATING + RATING_PER_LOGIT * beta


# --------------------------------------------------------------------------
# analytic intervals
# --------------------------------------------------------------------------


def _components(adjacent: NDArray[np.bool_]) -> list[IndexArray]:
    """Connected components of a boolean adjacency matrix."""
    k = adjacent.shape[0]
    label = np.full(k, -1)
    comps: list[IndexArray] = []
    for start in range(k):
        if label[start] >= 0:
            continue
        members = [start]
        label[start] = len(comps)
        frontier = np.array([start])
        while frontier.size:
            reach = np.flatnonzero(adjacent[frontier].any(axis=0) & (label < 0))
            label[reach] = len(comps)
            members.extend(reach.tolist())
            frontier = reach
        comps.append(np.sort(np.array(members)))
    return comps


def _gauge_pinv(lap: FloatArray, comps: list[IndexArray]) -> FloatArray:
    """Pseudo-inverse of a Laplacian-like matrix whose null space is spanned by
    the indicators of ``comps`` (each component is centred on its own)."""
    out = np.zeros_like(lap)
    for c in comps:
        m = c.size
        if m == 1:
            continue
        sub = lap[np.ix_(c, c)]
        s = max(float(sub.diagonal().mean()), 1e-300)
        inv = np.linalg.inv(sub + s / m) - 1.0 / (s * m)
        out[np.ix_(c, c)] = inv
    return out


def rating_covariance(
    counts: AnyArray, ratings: FloatArray, *, method: str = "sandwich", squares: AnyArray | None = None
) -> FloatArray:
    """Covariance of the centred ratings, in rating points squared, ``(K, K)``.

    ``method="hessian"``: inverse observed information H^+ (exact for
    win/loss data, conservative when there are ties).  ``method="sandwich"``:
    H^+ Sigma H^+ with Sigma the empirical covariance of the per-battle
    scores, as lmarena ``arena-rank``.  The sum-to-zero gauge is handled
    with the pseudo-inverse.  Rows/columns of unrated models are NaN.
    With weighted ``counts``, ``squares`` (the sums of the squared weights)
    make the sandwich's Sigma; ``method="hessian"`` assumes unit weights.
    """
    if method not in ("sandwich", "hessian"):
        raise ValueError("method must be 'sandwich' or 'hessian'")
    strict, ties = _pair_stats(counts)
    k = strict.shape[0]
    n = strict + strict.T + ties
    cov = np.full((k, k), np.nan)
    idx = np.flatnonzero(n.sum(axis=1) > 0)
    if idx.size == 0:
        return cov
    sub = np.ix_(idx, idx)
    n, s, t = n[sub], strict[sub], ties[sub]
    if squares is not None:
        s2, t2 = _pair_stats(squares)
        s, t = s2[sub], t2[sub]
    r = np.asarray(ratings, dtype=np.float64)[idx]
    if not np.all(np.isfinite(r)):
        raise ValueError("ratings of models with battles must be finite")
    p = _sigmoid_matrix((r - r.mean()) / RATING_PER_LOGIT)
    comps = _components(n > 0)
    hinv = _gauge_pinv(_laplacian(n * p * p.T), comps)
    if method == "hessian":
        c = hinv
    else:
        q = p.T  # 1 - p
        meat = _laplacian(s * q * q + s.T * p * p + t * (0.5 - p) ** 2)
        c = hinv @ meat @ hinv
        c = 0.5 * (c + c.T)
    cov[sub] = c * RATING_PER_LOGIT**2
    return cov


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def analytic_intervals(
    counts: AnyArray,
    ratings: FloatArray,
    *,
    level: float = 0.95,
    method: str = "sandwich",
    anchor: tuple[int, float] | None = None,
    squares: AnyArray | None = None,
) -> Interval:
    """``ratings +- z * SE`` from :func:`rating_covariance` (z = 1.96 at 95%).

    Pass the same ``anchor`` as used for ``ratings``: the standard errors are
    then those of the difference to the anchored model.  ``squares``: see
    :func:`rating_covariance`.
    """
    cov = rating_covariance(counts, ratings, method=method, squares=squares)
    if anchor is None:
        var = np.diag(cov).copy()
    else:
        i = int(anchor[0])
        var = np.diag(cov) + cov[i, i] - 2.0 * cov[:, i]
    se = np.sqrt(np.clip(var, 0.0, None))
    r = np.asarray(ratings, dtype=np.float64)
    z = _z(level)
    return Interval(r - z * se, r + z * se)


# --------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------


class _PairCells(NamedTuple):
    """Outcome cells pooled per unordered pair (i < j) of rated models."""

    idx: IndexArray  # rated model indices into the full K
    pi: IndexArray  # (P,) local index of i
    pj: IndexArray  # (P,) local index of j
    cells: FloatArray  # (P, 3) counts: i beat j, j beat i, tie or both-bad


def _pooled(counts: AnyArray, pc: _PairCells) -> FloatArray:
    """Any count-shaped array pooled in the layout of ``pc.cells``."""
    strict, ties = _pair_stats(counts)
    sub = np.ix_(pc.idx, pc.idx)
    s, t = strict[sub], ties[sub]
    return np.stack([s[pc.pi, pc.pj], s[pc.pj, pc.pi], t[pc.pi, pc.pj]], axis=1)


def _pair_cells(counts: AnyArray) -> _PairCells:
    strict, ties = _pair_stats(counts)
    n = strict + strict.T + ties
    idx = np.flatnonzero(n.sum(axis=1) > 0)
    sub = np.ix_(idx, idx)
    s, t, n = strict[sub], ties[sub], n[sub]
    pi, pj = np.nonzero(np.triu(n > 0, 1))
    cells = np.stack([s[pi, pj], s[pj, pi], t[pi, pj]], axis=1)
    return _PairCells(idx, pi, pj, cells)


def _reference_cells(
    counts: AnyArray, pc: _PairCells
) -> tuple[FloatArray, IndexArray, NDArray[np.bool_]]:
    """FastChat's unique (model_a, model_b, outcome) rows and where each one
    lands in the pooled pair layout ``pc.cells.ravel()``.

    FastChat codes model_b win = 0, tie / both-bad = 1, model_a win = 2 and
    sorts rows lexicographically (``np.unique(axis=0)``); only observed rows
    are kept.  Returns (weights, target) with ``target`` indices into the
    flattened ``(P, 3)`` pair cells, plus a mask of the rows with a < b.
    """
    c = _check_counts(counts)[np.ix_(pc.idx, pc.idx)]
    m = c.shape[0]
    ref = np.stack([c[:, :, B_WINS], c[:, :, TIE] + c[:, :, BOTH_BAD], c[:, :, A_WINS]], axis=2)
    ref[np.arange(m), np.arange(m)] = 0.0
    pair_of = np.full((m, m), -1)
    pair_of[pc.pi, pc.pj] = np.arange(pc.pi.size)
    pair_of[pc.pj, pc.pi] = np.arange(pc.pi.size)
    a, b, code = np.nonzero(ref > 0)  # C order == lexicographic (a, b, code)
    weights = ref[a, b, code]
    a_low = a < b
    # pooled layout: 0 = lower index won, 1 = higher index won, 2 = tie
    col = np.where(code == 1, 2, np.where((code == 2) == a_low, 0, 1))
    target = pair_of[a, b] * 3 + col
    return weights, target, a_low


def _draw_fast(rng: np.random.Generator, weights: FloatArray, total: int, rounds: int) -> IntArray:
    """Exact Multinomial(total, weights / weights.sum()) draws, ``(rounds, C)``.

    Poissonisation: independent Poisson(total * p_c) counts sum to M, and
    given M they are Multinomial(M, p).  Each round is then corrected to
    exactly ``total``: if M < total, add a Multinomial(total - M, p) sample
    (categorical draws); if M > total, drop M - total of the M items chosen
    uniformly without replacement.  Both corrections keep the multinomial
    law, so the result is exact; it costs one Poisson variate per cell
    instead of numpy's one binomial per cell.
    """
    p = weights / weights.sum()
    x = rng.poisson(p * total, size=(rounds, p.size))
    cum_p = np.cumsum(p)
    cum_p /= cum_p[-1]
    sums = x.sum(axis=1)
    for r in np.flatnonzero(sums != total):
        m = int(sums[r])
        if m < total:
            pos = np.searchsorted(cum_p, rng.random(total - m), side="right")
            x[r] += np.bincount(np.minimum(pos, p.size - 1), minlength=p.size)
        else:
            drop = rng.choice(m, size=m - total, replace=False)
            pos = np.searchsorted(np.cumsum(x[r]), drop, side="right")
            x[r] -= np.bincount(pos, minlength=p.size)
    return x


def _fit_rounds(
    pc: _PairCells,
    pooled: AnyArray,  # (rounds, P, 3) drawn counts, int or float
    beta_hat: FloatArray,
    precond: NDArray[np.floating[Any]],
    ridge: float,
    tol: float,
    max_sweeps: int,
) -> FloatArray:
    """Fit many bootstrap rounds at once.  ``pooled`` is ``(R, P, 3)``.

    Fixed-point iteration ``beta <- beta - grad(beta) @ H0^-1`` with the
    full-data Hessian H0 (a chord / simplified Newton method), batched over
    rounds; it converges to each round's exact optimum because only the
    gradient decides the fixed point.  Rounds that have not converged after
    ``max_sweeps`` are finished one by one with the damped Newton solver.
    """
    r_count = pooled.shape[0]
    m = beta_hat.size
    w = np.zeros((r_count, m, m))
    w[:, pc.pi, pc.pj] = pooled[:, :, 0] + 0.5 * pooled[:, :, 2]
    w[:, pc.pj, pc.pi] = pooled[:, :, 1] + 0.5 * pooled[:, :, 2]
    wrow = w.sum(axis=2)
    n = w + w.transpose(0, 2, 1)
    beta = np.repeat(beta_hat[None, :], r_count, axis=0)
    buf = np.empty_like(n)
    active = np.ones(r_count, dtype=bool)
    for _ in range(max_sweeps):
        e = np.exp(np.maximum(beta - beta.max(axis=1, keepdims=True), -600.0))
        np.add(e[:, :, None], e[:, None, :], out=buf)
        np.divide(n, buf, out=buf)
        grad = e * buf.sum(axis=2) - wrow + ridge * beta
        step = np.clip(grad @ precond, -_MAX_STEP, _MAX_STEP)
        beta -= step
        active = np.abs(step).max(axis=1) >= tol
        if not active.any():
            break
    for r in np.flatnonzero(active | ~np.all(np.isfinite(beta), axis=1)):
        beta[r] = _newton(n[r], w[r], beta_hat, ridge, tol, 200)
    centred: FloatArray = beta - beta.mean(axis=1, keepdims=True)
    return centred


def bootstrap_ratings(
    counts: AnyArray,
    rounds: int = 1000,
    seed: int = 0,
    *,
    ratings: FloatArray | None = None,
    anchor: tuple[int, float] | None = None,
    ridge: float = DEFAULT_RIDGE,
    sampler: str = "fast",
    workers: int | None = None,
    tol: float = 1e-7,
    squares: AnyArray | None = None,
) -> FloatArray:
    """Bootstrap rating samples, shape ``(rounds, K)`` (NaN columns for unrated).

    Each round draws Multinomial(N, observed cell frequencies) over the
    aggregated outcome cells and refits, warm-started from the full fit
    ``ratings`` (computed when not given; pass the ``fit_bt`` result of the
    same ``counts`` and ``ridge``).  Rounds are anchored like the ratings.

    ``sampler="fast"`` pools each unordered pair's cells (i won / j won /
    tie or both-bad, either side) and draws the multinomial by exact
    Poissonisation in independent per-chunk streams spawned from ``seed``,
    spread over ``workers`` threads (default: all CPUs).  The fit only sees
    these pooled sums, and a multinomial summed over groups of cells is the
    multinomial of the group sums, so the rounds have exactly the law of
    FastChat's.  ``sampler="reference"`` draws
    ``np.random.default_rng(seed).multinomial(N, w / w.sum(), size=rounds)``
    over FastChat's own cell list (unique (a, b, outcome) rows in
    ``np.unique`` order, tie and both-bad merged) and so reproduces
    ``compute_bootstrap_bt`` draw for draw when the model indices follow
    FastChat's ``pd.factorize`` order.  It is several times slower.
    Results do not depend on ``workers``.

    Weighted ``counts`` (sums of vote weights) need ``squares``, the sums of
    the squared weights: each pooled cell is then drawn as ``s * Poisson(W / s)``
    with ``s = squares / W``, which has the mean ``W`` and the variance
    ``squares`` of a Poisson bootstrap of the weighted votes (exact when a
    cell's votes share one weight), with the fast sampler only.
    """
    if sampler not in ("fast", "reference") or (squares is not None and sampler != "fast"):
        raise ValueError("sampler must be 'fast' or 'reference' (weighted counts: 'fast')")
    rounds = int(rounds)
    c = _check_counts(counts)
    k = c.shape[0]
    out = np.full((rounds, k), np.nan)
    if rounds <= 0:
        return out
    pc = _pair_cells(c)
    if pc.idx.size == 0:
        return out
    if ratings is None:
        ratings = fit_bt(c, ridge=ridge)
    beta_hat = np.asarray(ratings, dtype=np.float64)[pc.idx]
    if not np.all(np.isfinite(beta_hat)):
        raise ValueError("ratings of models with battles must be finite")
    beta_hat = (beta_hat - beta_hat.mean()) / RATING_PER_LOGIT

    m = pc.idx.size
    n_full = np.zeros((m, m))
    n_full[pc.pi, pc.pj] = pc.cells.sum(axis=1)
    n_full += n_full.T
    p = _sigmoid_matrix(beta_hat)
    h0 = _laplacian(n_full * p * p.T)
    h0[np.diag_indices(m)] += ridge
    h0 += max(float(h0.diagonal().mean()), 1e-12) / m
    precond = np.linalg.inv(h0)

    flat_cells = pc.cells.ravel()
    total = int(round(flat_cells.sum()))
    chunk = int(min(256, max(4, _CHUNK_ELEMENTS // (m * m))))
    starts = list(range(0, rounds, chunk))
    sizes = [min(chunk, rounds - s) for s in starts]
    n_pairs = pc.pi.size

    def fit_chunk(draws: AnyArray, target: IndexArray, lower: NDArray[np.bool_]) -> FloatArray:
        # ``lower`` splits the draws so that each part has distinct targets
        # (a pooled cell receives at most one row per orientation)
        if target.size == n_pairs * 3 and lower.all():
            pooled: AnyArray = draws  # every cell observed: the layouts coincide
        else:
            pooled = np.zeros((draws.shape[0], n_pairs * 3))
            pooled[:, target[lower]] += draws[:, lower]
            pooled[:, target[~lower]] += draws[:, ~lower]
        pooled = pooled.reshape(-1, n_pairs, 3)
        return _fit_rounds(pc, pooled, beta_hat, precond, ridge, tol, 60)

    n_workers = workers if workers else (os.cpu_count() or 1)
    n_workers = max(1, min(int(n_workers), len(starts)))
    results: list[FloatArray]
    if sampler == "fast":
        nz = np.flatnonzero(flat_cells > 0)
        weights = flat_cells[nz]
        every = np.ones(nz.size, dtype=bool)
        streams = np.random.SeedSequence(seed).spawn(len(starts))

        scale = None if squares is None else _pooled(squares, pc).ravel()[nz] / weights

        def job(i: int) -> FloatArray:
            rng = np.random.Generator(np.random.PCG64(streams[i]))
            if scale is not None:  # weighted votes: a scaled Poisson per cell (docstring)
                return fit_chunk(rng.poisson(weights / scale, size=(sizes[i], nz.size)) * scale, nz, every)
            return fit_chunk(_draw_fast(rng, weights, total, sizes[i]), nz, every)

        if n_workers == 1:
            results = [job(i) for i in range(len(starts))]
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                results = list(pool.map(job, range(len(starts))))
    else:
        weights, target, lower = _reference_cells(c, pc)
        rng = np.random.default_rng(seed)
        pvals = weights / weights.sum()
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [
                pool.submit(fit_chunk, rng.multinomial(total, pvals, size=size), target, lower)
                for size in sizes
            ]
            results = [f.result() for f in futures]

    beta = np.concatenate(results, axis=0)
    out[:, pc.idx] = INITIAL_RATING + RATING_PER_LOGIT * beta
    return _apply_anchor(out, anchor)


def bootstrap_intervals(
    counts: AnyArray,
    rounds: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    ratings: FloatArray | None = None,
    anchor: tuple[int, float] | None = None,
    ridge: float = DEFAULT_RIDGE,
    sampler: str = "fast",
    workers: int | None = None,
    squares: AnyArray | None = None,
) -> Interval:
    """Percentile bootstrap interval (2.5% / 97.5% at ``level=0.95``).

    See :func:`bootstrap_ratings`.  The point estimate to show next to it is
    the full-data :func:`fit_bt` result, not a bootstrap median.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    samples = bootstrap_ratings(
        counts,
        rounds,
        seed,
        ratings=ratings,
        anchor=anchor,
        ridge=ridge,
        sampler=sampler,
        workers=workers,
        squares=squares,
    )
    alpha = (1.0 - level) / 2.0
    lower, upper = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    return Interval(lower, upper)


# --------------------------------------------------------------------------
# rank, Elo
# --------------------------------------------------------------------------


def rank_ub(lower: FloatArray, upper: FloatArray, ranked: NDArray[np.bool_] | None = None) -> IntArray:
    """Rank (UB): 1 + number of models whose lower bound is strictly greater
    than this model's upper bound.  Models with a NaN bound, or left out by
    the mask ``ranked`` (e.g. provisional ones), get 0 and do not count
    against others."""
    lo = np.asarray(lower, dtype=np.float64)
    up = np.asarray(upper, dtype=np.float64)
    if lo.shape != up.shape or lo.ndim != 1:
        raise ValueError("lower and upper must be 1-d arrays of equal length")
    valid = np.isfinite(lo) & np.isfinite(up)
    if ranked is not None:
        valid &= np.asarray(ranked, dtype=bool)
    sorted_lo = np.sort(lo[valid])
    above = sorted_lo.size - np.searchsorted(sorted_lo, up, side="right")
    return np.where(valid, 1 + above, 0).astype(np.int64)


def elo_step(
    rating_a: float,
    rating_b: float,
    outcome: int,
    K: float = 4.0,
    base: float = 10.0,
    scale: float = 400.0,
) -> tuple[float, float]:
    """One online Elo update for a single vote: returns the new (R_A, R_B).

    Same arithmetic as one iteration of :func:`elo_online`, so applying it to
    every vote in order reproduces ``elo_online`` exactly.
    """
    if not 0 <= outcome < N_OUTCOMES:
        raise ValueError("unknown outcome code")
    ra = float(rating_a)
    rb = float(rating_b)
    alpha = math.log(base) / scale
    delta = float(K) * (float(SCORE_A[outcome]) - 1.0 / (1.0 + math.exp(alpha * (rb - ra))))
    return ra + delta, rb - delta


def elo_online(
    a_idx: AnyArray,
    b_idx: AnyArray,
    outcome: AnyArray,
    k_models: int,
    K: float = 4.0,
    base: float = 10.0,
    scale: float = 400.0,
    initial: float = 1000.0,
) -> FloatArray:
    """Online Elo over battles in the given (time) order; ``(k_models,)`` ratings.

    Expected score of A = 1 / (1 + base ** ((R_B - R_A) / scale)); A gains
    ``K * (score - expected)`` and B loses the same.  Sequential by nature:
    a plain Python loop over Python floats (about 0.3 us per battle).
    """
    a = np.asarray(a_idx)
    b = np.asarray(b_idx)
    o = np.asarray(outcome)
    if not (a.shape == b.shape == o.shape) or a.ndim != 1:
        raise ValueError("a_idx, b_idx and outcome must be 1-d arrays of equal length")
    if a.size and (o.min() < 0 or o.max() >= N_OUTCOMES):
        raise ValueError("unknown outcome code")
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= k_models):
        raise ValueError("model index out of range")
    alpha = math.log(base) / scale
    ratings = [float(initial)] * int(k_models)
    exp = math.exp
    k = float(K)
    step = 1 << 16  # convert to Python objects chunk by chunk: flat memory
    for start in range(0, a.size, step):
        stop = start + step
        for ia, ib, s in zip(
            a[start:stop].tolist(), b[start:stop].tolist(), SCORE_A[o[start:stop]].tolist(), strict=True
        ):
            ra = ratings[ia]
            rb = ratings[ib]
            delta = k * (s - 1.0 / (1.0 + exp(alpha * (rb - ra))))
            ratings[ia] = ra + delta
            ratings[ib] = rb - delta
    return np.array(ratings)


# --------------------------------------------------------------------------
# leaderboard
# --------------------------------------------------------------------------


@dataclass
class LeaderboardRow:
    model: str
    index: int
    rating: float
    ci_lower: float
    ci_upper: float
    rank: int | None
    votes: int
    elo_online: float | None = None
    provisional: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("rating", "ci_lower", "ci_upper", "elo_online"):
            if d[key] is not None and not math.isfinite(d[key]):
                d[key] = None
        return d


@dataclass
class LeaderboardTable:
    rows: list[LeaderboardRow]
    interval_method: str  # "bootstrap" or "analytic"
    bootstrap_rounds: int
    total_battles: int
    anchor: tuple[int, float] | None = None

    def to_dicts(self) -> list[dict[str, Any]]:
        return [row.to_dict() for row in self.rows]


def leaderboard_compute(
    counts: AnyArray,
    names: Sequence[str],
    *,
    bootstrap_rounds: int = 0,
    seed: int = 0,
    anchor: tuple[int, float] | None = None,
    elo: FloatArray | None = None,
    analytic_method: str = "sandwich",
    include_unrated: bool = False,
    workers: int | None = None,
    weighted: tuple[AnyArray, AnyArray] | None = None,
    min_votes: int = 0,
) -> LeaderboardTable:
    """Full leaderboard: BT rating, 95% interval, rank (UB), votes, sorted by
    rating descending (ties broken by name).

    ``bootstrap_rounds > 0`` uses :func:`bootstrap_intervals` (seeded),
    otherwise :func:`analytic_intervals`.  ``elo`` is an optional per-model
    online Elo vector (e.g. from :func:`elo_online`) copied into the rows.
    ``weighted=(sums, squares)`` fits the sums of the votes' weights instead
    of ``counts`` (see Weighted votes); ``counts`` still give the votes.  A
    model with fewer than ``min_votes`` votes is provisional: no rank, and it
    does not count in the ranks of the others.
    """
    c = _check_counts(counts)
    k = c.shape[0]
    if len(names) != k:
        raise ValueError("names must have one entry per model")
    fitted, squares = (c, None) if weighted is None else (_check_counts(weighted[0]), _check_counts(weighted[1]))
    if fitted.shape != c.shape or (squares is not None and squares.shape != c.shape):
        raise ValueError("weighted sums and squares must have the shape of counts")
    ratings = fit_bt(fitted, anchor=anchor)
    if bootstrap_rounds > 0:
        lower, upper = bootstrap_intervals(
            fitted, bootstrap_rounds, seed, ratings=ratings, anchor=anchor, workers=workers, squares=squares
        )
        method = "bootstrap"
    else:
        lower, upper = analytic_intervals(fitted, ratings, method=analytic_method, anchor=anchor, squares=squares)
        method = "analytic"
    votes = votes_per_model(c)
    established = votes >= min_votes
    ranks = rank_ub(lower, upper, established)
    elo_arr = None if elo is None else np.asarray(elo, dtype=np.float64)
    if elo_arr is not None and elo_arr.shape != (k,):
        raise ValueError("elo must have one entry per model")
    rows = []
    for i in range(k):
        rated = bool(np.isfinite(ratings[i]))
        if not rated and not include_unrated:
            continue
        rows.append(
            LeaderboardRow(
                model=str(names[i]),
                index=i,
                rating=float(ratings[i]),
                ci_lower=float(lower[i]),
                ci_upper=float(upper[i]),
                rank=int(ranks[i]) if rated and established[i] else None,
                votes=int(round(votes[i])),
                elo_online=None if elo_arr is None else float(elo_arr[i]),
                provisional=not established[i],
            )
        )
    rows.sort(key=lambda r: (not math.isfinite(r.rating), -np.nan_to_num(r.rating), r.model))
    return LeaderboardTable(
        rows=rows,
        interval_method=method,
        bootstrap_rounds=int(bootstrap_rounds) if bootstrap_rounds > 0 else 0,
        total_battles=int(round(c.sum())),
        anchor=anchor,
    )
