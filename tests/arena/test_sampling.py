"""Tests for arena.sampling (pure numpy; no Django, no database)."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arena import ratings as R
from arena import sampling as S


# Pure math: these no-op fixtures replace the suite-wide autouse ones (Redis, cache), as in
# test_ratings.py, so the module also runs with ``-p no:django``.
@pytest.fixture(scope="session", autouse=True)
def _redis_clean():
    yield


@pytest.fixture(autouse=True)
def _cache_clear():
    yield


def some_counts(k: int, votes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, k, votes)
    b = (a + rng.integers(1, k, votes)) % k
    return R.counts_from_battles(a, b, rng.integers(0, 4, votes), k)


def upper_pairs(p: np.ndarray) -> np.ndarray:
    return p[np.triu_indices(p.shape[0], 1)]


@pytest.mark.parametrize("policy", S.POLICIES)
def test_probabilities_sum_to_one_and_never_pair_a_model_with_itself(policy):
    weights = [1.0, 2.0, 0.5, 1.0, 3.0]
    p = S.pair_probabilities(policy, weights, S.pair_gains(some_counts(5, 200, 1)))
    assert p.sum() == pytest.approx(1.0)
    assert np.all(np.diag(p) == 0) and np.all(np.tril(p) == 0)  # one entry per unordered pair
    assert np.all(upper_pairs(p) > 0)


@pytest.mark.parametrize("policy", S.POLICIES)
def test_a_model_without_weight_is_never_drawn(policy):
    weights = [1.0, 0.0, 1.0, 1.0]
    p = S.pair_probabilities(policy, weights, S.pair_gains(some_counts(4, 100, 2)))
    assert p[1, :].sum() == 0 and p[:, 1].sum() == 0
    rng = random.Random(0)
    drawn = {side for _ in range(500) for side in S.pair_draw(p, rng)[:2]}
    assert drawn == {0, 2, 3}


@pytest.mark.parametrize("policy", S.POLICIES)
def test_fewer_than_two_weighted_models_cannot_be_paired(policy):
    with pytest.raises(ValueError, match="two models"):
        S.pair_probabilities(policy, [0.0, 1.0, 0.0], np.ones((3, 3)))


def test_adaptive_keeps_the_exploration_floor_for_every_pair():
    counts = some_counts(6, 2000, 3)
    counts[0, 1] += 5000  # one pair far better known than the rest: its gain is tiny
    weights = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 0.5])
    p = S.pair_probabilities("adaptive", weights, S.pair_gains(counts), exploration=0.25)
    uniform = S.pair_probabilities("uniform", weights)
    assert np.all(upper_pairs(p) >= 0.25 * upper_pairs(uniform) - 1e-15)
    assert p[0, 1] < 0.3 * uniform[0, 1]  # and the floor is what that pair is left with, nearly


@pytest.mark.parametrize("policy", ["uniform", "adaptive"])
def test_admin_weights_multiply_a_pairs_chance(policy):
    weights = np.array([1.0, 3.0, 1.0, 0.5])
    equal_gains = np.ones((4, 4)) - np.eye(4)
    p = S.pair_probabilities(policy, weights, equal_gains)
    assert p[1, 2] / p[0, 2] == pytest.approx(3.0)
    assert p[0, 3] / p[0, 2] == pytest.approx(0.5)

def test_with_unequal_gains_the_weights_multiply_both_parts_of_the_mix():
    weights = np.array([1.0, 3.0, 1.0, 0.5])
    gains = S.pair_gains(some_counts(4, 300, 4))
    i, j = np.triu_indices(4, 1)
    both = weights[i] * weights[j]
    expected = 0.75 * both * gains[i, j] / (both * gains[i, j]).sum() + 0.25 * both / both.sum()
    p = S.pair_probabilities("adaptive", weights, gains, exploration=0.25)
    np.testing.assert_allclose(upper_pairs(p), expected)
    assert not np.allclose(expected, both / both.sum(), rtol=0.05)  # the gains do matter here


def test_weighted_is_the_reference_draw_first_by_weight_then_among_the_rest():
    w = np.array([1.0, 2.0, 3.0])
    p = S.pair_probabilities("weighted", w)
    # P({0, 1}) = P(0 first) P(1 | 0) + P(1 first) P(0 | 1)
    assert p[0, 1] == pytest.approx(1 / 6 * 2 / 5 + 2 / 6 * 1 / 4)
    assert p[1, 2] == pytest.approx(2 / 6 * 3 / 4 + 3 / 6 * 2 / 3)


def test_the_draw_follows_the_probabilities_records_them_and_shuffles_sides():
    p = S.pair_probabilities("adaptive", [1.0, 1.0, 1.0, 2.0], S.pair_gains(some_counts(4, 60, 5)))
    rng = random.Random(7)
    draws = [S.pair_draw(p, rng) for _ in range(20_000)]
    seen = np.zeros((4, 4))
    for d in draws:
        assert d.probability == pytest.approx(p[min(d.a, d.b), max(d.a, d.b)])
        assert d.pairs == 6
        seen[min(d.a, d.b), max(d.a, d.b)] += 1
    np.testing.assert_allclose(upper_pairs(seen) / len(draws), upper_pairs(p), atol=0.01)
    first_is_lower = np.mean([d.a < d.b for d in draws])
    assert 0.48 < first_is_lower < 0.52


def test_a_model_nobody_voted_on_has_the_largest_gains_and_gains_shrink_with_votes():
    counts = some_counts(5, 1000, 6)
    counts = np.pad(counts, ((0, 1), (0, 1), (0, 0)))  # model 5: no votes
    g = S.pair_gains(counts)
    assert np.all(np.isfinite(g)) and np.all(np.diag(g) == 0) and np.allclose(g, g.T)
    assert g[5, :5].min() > g[:5, :5].max()
    more = counts.copy()
    more[0, 1, R.TIE] += 400
    assert S.pair_gains(more)[0, 1] < g[0, 1]


def test_new_models_get_the_boost_until_the_threshold():
    boosted = S.boosted_weights([1.0, 2.0, 1.0], [0, 10, 100], threshold=50)
    np.testing.assert_allclose(boosted, [S.NEW_MODEL_BOOST, 2 * S.NEW_MODEL_BOOST, 1.0])
    np.testing.assert_allclose(S.boosted_weights([1.0, 2.0], [0, 0], threshold=0), [1.0, 2.0])


def test_a_vote_weighs_one_over_its_pairs_chance_relative_to_uniform():
    assert S.vote_weight(0.1, 10) == pytest.approx(1.0)
    assert S.vote_weight(0.05, 10) == pytest.approx(2.0)
    assert S.vote_weight(None, 10) == S.vote_weight(0.1, None) == S.vote_weight(0.0, 10) == 1.0


# --- the inverse-probability fit on adaptive data --------------------------------------------

K = 5
TIE = 0.3
# Not a Bradley–Terry truth: a cycle (each model beats the next more often than its rating says)
# on top of a spread of ratings, so the fit's answer depends on which pairs are compared how often.
_RATINGS = np.array([60.0, 30.0, 0.0, -30.0, -60.0]) * np.log(10) / 400
_CYCLE = 0.8 * (np.eye(K, k=1) + np.eye(K, k=1 - K)) - 0.8 * (np.eye(K, k=-1) + np.eye(K, k=K - 1))
WIN = 1 / (1 + np.exp(-(_RATINGS[:, None] - _RATINGS[None, :] + _CYCLE)))  # among decisive votes


def uniform_target() -> np.ndarray:
    """What the fit converges to under uniform sampling: the fit of the expected counts."""
    expected = np.zeros((K, K, 4))
    expected[:, :, R.A_WINS] = (1 - TIE) * WIN
    expected[:, :, R.B_WINS] = (1 - TIE) * (1 - WIN)
    expected[:, :, R.TIE] = TIE
    expected[np.arange(K), np.arange(K)] = 0
    return R.fit_bt(expected * 1e6)


def adaptive_votes(seed: int, votes: int = 3000, refresh: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Votes drawn by the adaptive policy (refreshed every `refresh` votes, unequal admin weights):
    (counts, sums of inverse-probability weights)."""
    rng, outcomes = random.Random(seed), np.random.default_rng(seed)
    counts, weighted = np.zeros((K, K, 4)), np.zeros((K, K, 4))
    for _ in range(votes // refresh):
        p = S.pair_probabilities("adaptive", [4.0, 1.0, 1.0, 1.0, 1.0], S.pair_gains(counts))
        for _ in range(refresh):
            d = S.pair_draw(p, rng)
            tie = outcomes.random() < TIE
            o = R.TIE if tie else (R.A_WINS if outcomes.random() < WIN[d.a, d.b] else R.B_WINS)
            counts[d.a, d.b, o] += 1
            weighted[d.a, d.b, o] += S.vote_weight(d.probability, d.pairs)
    return counts, weighted


def test_the_inverse_probability_fit_is_unbiased_on_adaptive_data():
    target = uniform_target()
    runs = [adaptive_votes(seed) for seed in range(24)]
    plain = np.array([R.fit_bt(c) for c, _ in runs])
    weighted = np.array([R.fit_bt(w) for _, w in runs])
    se = weighted.std(axis=0) / np.sqrt(len(runs))
    assert np.all(np.abs(weighted.mean(axis=0) - target) < np.maximum(4 * se, 3.0))
    # The unweighted fit of the same votes answers another question (the design's): the test
    # tells the two apart.
    assert np.max(np.abs(plain.mean(axis=0) - target)) > 10.0


def test_module_imports_without_django():
    root = Path(__file__).resolve().parents[2]
    code = "import sys, arena.sampling; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
