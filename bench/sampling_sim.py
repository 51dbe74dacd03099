"""The voting simulator behind bench/sampling.py: known true ratings, votes drawn by a policy,
the leaderboard's fit and intervals measured against the truth as the votes come in.

Truth (per seed): generating ratings drawn from a normal with SD `SPREAD`; a vote is a tie (or
both-bad) with probability `TIES`, otherwise side A wins with the Bradley–Terry chance. With ties
as half a win that is not quite a Bradley–Terry model, so the true ratings are what the arena's
fit converges to under uniform sampling (the fit of the expected counts; the paper's estimand):
their SD is about 100 points, the spread of the public leaderboard.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena import ratings as R
from arena import sampling as S

SPREAD = 220.0  # SD of the generating ratings (points)
TIES = 1 / 3
Z = 1.959964


@dataclass
class Truth:
    win: np.ndarray  # P(row beats column | the vote is decisive)
    target: np.ndarray  # true ratings: the uniform-sampling limit of the fit


def truth_draw(k: int, rng: np.random.Generator) -> Truth:
    r = rng.normal(0.0, SPREAD, k)
    win = 1.0 / (1.0 + 10.0 ** ((r[None, :] - r[:, None]) / 400.0))
    expected = np.zeros((k, k, 4))
    expected[:, :, R.A_WINS] = (1 - TIES) * win
    expected[:, :, R.B_WINS] = (1 - TIES) * (1 - win)
    expected[:, :, R.TIE] = TIES
    expected[np.arange(k), np.arange(k)] = 0.0
    return Truth(win, R.fit_bt(expected * 1e6))


def eq9_probabilities(n_pair: np.ndarray, score: np.ndarray, square: np.ndarray, exploration: float) -> np.ndarray:
    """The paper's eq. 9 over the upper-triangle pairs: P ∝ sqrt(v/n) − sqrt(v/(n+1)), v the
    variance of the pair's outcome so far (a pseudo-vote of variance 1/4 added, and n = 1 for a
    pair without votes), mixed with a uniform floor as the adaptive policy is."""
    n = np.maximum(n_pair, 1.0)
    mean = score / n
    var = (np.clip(square - n_pair * mean**2, 0.0, None) + 0.25) / (n_pair + 1.0)
    gain = np.sqrt(var / n) - np.sqrt(var / (n + 1.0))
    uniform = np.full(gain.size, 1.0 / gain.size)
    return (1.0 - exploration) * gain / gain.sum() + exploration * uniform


@dataclass
class Run:
    """One seed under one policy: the metrics at each checkpoint, for both fits."""

    checkpoints: list[int]
    width: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "ipw": []})
    win: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "ipw": []})
    covered: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"plain": [], "ipw": []})
    tau: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "ipw": []})


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    i, j = np.triu_indices(x.size, 1)
    return float(np.mean(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])))


def measure(counts: np.ndarray, squares: np.ndarray, truth: Truth, mask: np.ndarray | None = None):
    """(mean 95% width of the ratings of the models in `mask` (default all), mean 95% width of
    P(i beats j), which true ratings the intervals cover, Kendall tau) of the sandwich fit."""
    r = R.fit_bt(counts)
    cov = R.rating_covariance(counts, r, squares=squares)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    mask = np.ones(r.size, dtype=bool) if mask is None else mask
    beta = (r - np.nanmean(r)) / R.RATING_PER_LOGIT
    p = 1.0 / (1.0 + np.exp(-(beta[:, None] - beta[None, :])))
    d = np.diag(cov)
    sd_diff = np.sqrt(np.clip(d[:, None] + d[None, :] - 2 * cov, 0.0, None)) / R.RATING_PER_LOGIT
    i, j = np.triu_indices(r.size, 1)
    win_width = float(np.mean(2 * Z * (p * p.T * sd_diff)[i, j]))
    covered = np.abs(r - truth.target) <= Z * se
    return float(np.mean(2 * Z * se[mask])), win_width, covered, kendall_tau(r, truth.target)


def simulate(
    k: int, policy: str, seed: int, votes: int, checkpoints: list[int], *, refresh: int = 50,
    exploration: float = S.EXPLORATION, join: tuple[int, int] | None = None, boost_votes: int = 0,
) -> Run:
    """`votes` votes under `policy` ("uniform", "adaptive" or "eq9"), the policy refreshed every
    `refresh` votes (the arena refreshes it with the leaderboard, after each burst of votes).
    `join=(n, at)`: n models join after `at` votes (the width is then theirs only)."""
    rng = np.random.default_rng(seed)
    truth = truth_draw(k, rng)
    iu, ju = np.triu_indices(k, 1)
    counts, sums, squares = (np.zeros((k, k, 4)) for _ in range(3))
    n_pair, score, square = (np.zeros(iu.size) for _ in range(3))
    active = np.ones(k, dtype=bool)
    late = np.zeros(k, dtype=bool)
    if join is not None:
        late[rng.choice(k, join[0], replace=False)] = True
        active[late] = False
    run = Run(checkpoints)
    todo = list(checkpoints)
    cast = 0
    while cast < votes:
        if join is not None and cast >= join[1]:
            active[:] = True
        on = np.flatnonzero(active)
        votes_of = R.votes_per_model(counts)[on]
        weights = S.boosted_weights(np.ones(on.size), votes_of, boost_votes if cast else 0)
        if policy == "eq9":
            pick = active[iu] & active[ju]
            p_pairs = np.zeros(iu.size)
            p_pairs[pick] = eq9_probabilities(n_pair[pick], score[pick], square[pick], exploration)
        else:
            gains = S.pair_gains(counts[np.ix_(on, on)]) if policy == "adaptive" else None
            p_on = S.pair_probabilities(policy, weights, gains, exploration=exploration)
            p_full = np.zeros((k, k))
            p_full[np.ix_(on, on)] = p_on
            p_pairs = p_full[iu, ju]
        batch = min(refresh, votes - cast)
        pairs = rng.choice(iu.size, size=batch, p=p_pairs / p_pairs.sum())
        w = 1.0 / (np.count_nonzero(p_pairs) * p_pairs[pairs])
        swap = rng.random(batch) < 0.5
        a, b = np.where(swap, ju[pairs], iu[pairs]), np.where(swap, iu[pairs], ju[pairs])
        u = rng.random(batch)
        decisive_a = rng.random(batch) < truth.win[a, b]
        o = np.where(u < TIES * 0.75, R.TIE, np.where(u < TIES, R.BOTH_BAD, np.where(decisive_a, R.A_WINS, R.B_WINS)))
        np.add.at(counts, (a, b, o), 1.0)
        np.add.at(sums, (a, b, o), w)
        np.add.at(squares, (a, b, o), w * w)
        x = R.SCORE_A[o]
        x = np.where(swap, 1.0 - x, x)  # the score of the pair's lower index, for eq. 9
        np.add.at(n_pair, pairs, 1.0)
        np.add.at(score, pairs, x)
        np.add.at(square, pairs, x * x)
        cast += batch
        while todo and cast >= todo[0]:
            todo.pop(0)
            mask = late if join is not None else None
            for fit, (c, s2) in (("plain", (counts, counts)), ("ipw", (sums, squares))):
                width, win, covered, tau = measure(c, s2, truth, mask)
                run.width[fit].append(width)
                run.win[fit].append(win)
                run.covered[fit].append(covered)
                run.tau[fit].append(tau)
    return run


def votes_to(values: list[float], checkpoints: list[int], target: float) -> float:
    """Votes at which a decreasing metric first reaches `target` (linear between checkpoints);
    NaN if it never does."""
    for n, (before, now) in enumerate(zip([math.inf, *values], values, strict=False)):
        if now <= target:
            if n == 0 or not math.isfinite(before):
                return float(checkpoints[n])
            return checkpoints[n - 1] + (checkpoints[n] - checkpoints[n - 1]) * (before - target) / (before - now)
    return math.nan


# --- the best any allocation could do, knowing the truth --------------------------------------


def _laplacian_of(k: int, iu: np.ndarray, ju: np.ndarray, w: np.ndarray) -> np.ndarray:
    lap = np.zeros((k, k))
    lap[iu, ju] = -w
    lap[ju, iu] = -w
    lap[np.arange(k), np.arange(k)] = -lap.sum(axis=1)
    return lap


def oracle_saving(k: int, seed: int, iterations: int = 1500) -> dict[str, float]:
    """Votes the best fixed share of votes per pair needs, relative to uniform, for the same mean
    rating width, win-matrix width (the fit's) and per-pair win-rate width (the paper's win
    matrix: each pair's own votes), given the true ratings (exponentiated-gradient descent)."""
    truth = truth_draw(k, np.random.default_rng(seed))
    iu, ju = np.triu_indices(k, 1)
    beta = (truth.target - truth.target.mean()) / R.RATING_PER_LOGIT
    p = 1.0 / (1.0 + np.exp(-(beta[iu] - beta[ju])))
    s = truth.win[iu, ju]
    info = p * (1 - p)
    meat = (1 - TIES) * s * (1 - p) ** 2 + (1 - TIES) * (1 - s) * p**2 + TIES * (0.5 - p) ** 2
    m = iu.size

    def quadratic(a: np.ndarray) -> np.ndarray:
        return a[iu, iu] + a[ju, ju] - a[iu, ju] - a[ju, iu]

    def objective(share: np.ndarray, metric: str) -> tuple[float, np.ndarray]:
        h_inv = np.linalg.pinv(_laplacian_of(k, iu, ju, share * info))
        middle = _laplacian_of(k, iu, ju, share * meat)
        cov = h_inv @ middle @ h_inv
        if metric == "width":
            value, weight = float(np.sqrt(np.diag(cov)).mean()), np.diag(0.5 / np.sqrt(np.diag(cov))) / k
        else:
            sd = np.sqrt(np.clip(quadratic(cov), 1e-300, None))
            value, weight = float(np.mean(info * sd)), _laplacian_of(k, iu, ju, info * 0.5 / sd) / m
        inner = h_inv @ weight @ h_inv
        outer = h_inv @ middle @ inner
        gradient = -info * quadratic(outer + outer.T) + meat * quadratic(inner)
        return value, gradient

    out = {}
    for metric in ("width", "win"):
        share = np.full(m, 1.0 / m)
        uniform_value, _ = objective(share, metric)
        best = uniform_value
        for _ in range(iterations):
            value, gradient = objective(share, metric)
            best = min(best, value)
            share *= np.exp(-0.05 * gradient / np.abs(gradient).max())
            share /= share.sum()
        out[metric] = (best / uniform_value) ** 2  # widths shrink as 1 / sqrt(votes)
    # Per-pair win rates: width_a ∝ sqrt(v_a / n_a); the best n_a ∝ v_a^(1/3).
    v = (1 - TIES) * s + TIES / 4 - ((1 - TIES) * s + TIES / 2) ** 2
    out["pairs"] = float(np.sum(v ** (1 / 3)) ** 3 / (m * np.sum(np.sqrt(v)) ** 2))
    return out
