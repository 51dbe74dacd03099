"""Style-controlled Bradley–Terry (arena.style_ratings): the reference arena's numbers on the same
battles, intervals that cover a known truth at their nominal rate, and the conventions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from arena import ratings as R
from arena import style_ratings as S
from arena.battle_files import battles_arrays

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "style_reference.json").read_text())


def reference_rows():
    data = battles_arrays(DATA / "style_battles.jsonl", style=True)
    z = S.style_design(data.style_a, data.style_b)
    return data, S.style_rows(data.model_a, data.model_b, data.outcome, z, len(data.names))


def test_ratings_and_coefficients_agree_with_fastchat_s_compute_style_control():
    data, rows = reference_rows()
    fit = S.fit_style_bt(rows)
    for name, expected in REFERENCE["style_control"].items():
        assert fit.ratings[data.names.index(name)] == pytest.approx(expected, abs=0.5), name
    for feature, got in zip(S.FEATURES, fit.gamma, strict=True):
        expected = REFERENCE["coefficients"][feature]
        # 5% of the coefficient, or 1e-4 for one FastChat's own tolerance leaves near zero
        assert got == pytest.approx(expected, rel=0.05, abs=1e-4), feature


def test_style_control_changes_the_ranking_the_reference_s_plain_fit_gives():
    """The fixture's style matters: without it the order differs, as FastChat's compute_bt says."""
    data, rows = reference_rows()
    counts = R.counts_from_battles(data.model_a, data.model_b, data.outcome, len(data.names))
    plain = R.fit_bt(counts)
    for name, expected in REFERENCE["bt"].items():
        assert plain[data.names.index(name)] == pytest.approx(expected, abs=0.5), name
    styled = S.fit_style_bt(rows).ratings
    assert list(np.argsort(-plain)) != list(np.argsort(-styled))


def test_with_no_style_to_see_the_plain_fit_is_arena_ratings():
    rng = np.random.default_rng(3)
    k, n = 6, 3000
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    o = rng.integers(0, 4, n)
    rows = S.style_rows(a, b, o, np.zeros((n, 4)), k)
    fit = S.fit_style_bt(rows, reg=0.0)
    expected = R.fit_bt(R.counts_from_battles(a, b, o, k))
    np.testing.assert_allclose(fit.ratings, expected, atol=0.01)
    np.testing.assert_allclose(fit.gamma, 0.0, atol=1e-9)


def test_ratings_average_1000_models_without_battles_are_nan_and_an_anchor_shifts_all():
    data, rows = reference_rows()
    k = len(data.names) + 1  # one model that never played
    rows = rows._replace(n_models=k)
    fit = S.fit_style_bt(rows)
    assert math.isnan(fit.ratings[-1])
    assert np.nanmean(fit.ratings) == pytest.approx(1000.0, abs=1e-6)
    anchored = S.fit_style_bt(rows, anchor=(0, 1114.0))
    assert anchored.ratings[0] == pytest.approx(1114.0)
    np.testing.assert_allclose(anchored.ratings[:-1] - fit.ratings[:-1], 1114.0 - fit.ratings[0], atol=1e-9)


def test_a_column_that_never_varies_gets_no_coefficient():
    diff = S.style_differences(np.array([[10, 0, 1, 0], [20, 0, 3, 0]]), np.array([[5, 0, 1, 0], [30, 0, 1, 0]]))
    assert diff[0, 0] == pytest.approx(5 / 16)
    z = S.standardise(diff)
    np.testing.assert_allclose(z[:, 1], 0.0)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)


def _synthetic(rng, *, k=6, n=1500, gamma=(0.4, 0.15, 0.0, -0.2)):
    theta = rng.normal(0, 0.3, k)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    style_a = rng.poisson([300, 1, 4, 2], (n, 4))
    style_b = rng.poisson([300, 1, 4, 2], (n, 4))
    z = S.style_design(style_a, style_b)
    eta = math.log(10) * (theta[a] - theta[b]) + z @ np.array(gamma)
    o = np.where(rng.random(n) < 1 / (1 + np.exp(-eta)), R.A_WINS, R.B_WINS)
    return S.style_rows(a, b, o, z, k), np.array(gamma), theta


def test_analytic_intervals_cover_a_known_gamma_at_about_the_nominal_rate():
    rng = np.random.default_rng(11)
    covered, sims = np.zeros(4), 300
    for _ in range(sims):
        rows, gamma, _ = _synthetic(rng)
        fit = S.fit_style_bt(rows, reg=0.0)
        iv = S.analytic_style_intervals(rows, fit, reg=0.0)
        covered += (iv.gamma_lower <= gamma) & (gamma <= iv.gamma_upper)
    rate = covered / sims
    # 95% nominal; 300 draws put the binomial's 99% band at about ±3.3 points
    print("analytic coverage", rate)
    assert ((rate > 0.91) & (rate < 0.99)).all(), rate


def test_bootstrap_intervals_cover_a_known_gamma_at_about_the_nominal_rate():
    rng = np.random.default_rng(12)
    covered, sims = np.zeros(4), 80
    for _ in range(sims):
        rows, gamma, _ = _synthetic(rng, n=1200)
        fit = S.fit_style_bt(rows, reg=0.0)
        boot = S.bootstrap_style(rows, 200, int(rng.integers(1 << 30)), reg=0.0, fit=fit)
        iv = S.bootstrap_style_intervals(boot)
        covered += (iv.gamma_lower <= gamma) & (gamma <= iv.gamma_upper)
    rate = covered / sims
    print("bootstrap coverage", rate)
    assert ((rate > 0.85) & (rate <= 1.0)).all() and rate.mean() > 0.9, rate


def test_bootstrap_and_analytic_intervals_agree_on_a_large_sample():
    rows, _, _ = _synthetic(np.random.default_rng(5), n=20000)
    fit = S.fit_style_bt(rows)
    analytic = S.analytic_style_intervals(rows, fit)
    boot = S.bootstrap_style_intervals(S.bootstrap_style(rows, 300, 1, fit=fit))
    np.testing.assert_allclose(boot.upper - boot.lower, analytic.upper - analytic.lower, rtol=0.2)
    np.testing.assert_allclose(
        boot.gamma_upper - boot.gamma_lower, analytic.gamma_upper - analytic.gamma_lower, rtol=0.2
    )


def test_a_bootstrap_round_is_refitted_to_the_optimum_of_its_draw():
    """Each round's chord iterations end where a full Newton fit of the same weights does."""
    rows, _, _ = _synthetic(np.random.default_rng(8), n=3000)
    fit = S.fit_style_bt(rows)
    boot = S.bootstrap_style(rows, 3, 4, fit=fit, workers=1)
    seeds = np.random.SeedSequence(4).spawn(3)
    for i in range(3):
        draws = S._poisson_draws(np.random.default_rng(seeds[i]), rows.a.size)
        refit = S.fit_style_bt(rows._replace(weights=rows.weights * draws))
        np.testing.assert_allclose(boot.ratings[i], refit.ratings, atol=S.BOOTSTRAP_SETTLED_POINTS)
        np.testing.assert_allclose(boot.gamma[i], refit.gamma, atol=1e-4)


def test_the_bootstrap_depends_on_its_seed_not_on_its_threads():
    rows, _, _ = _synthetic(np.random.default_rng(9), n=800)
    one = S.bootstrap_style(rows, 12, 7, workers=1)
    two = S.bootstrap_style(rows, 12, 7, workers=2)
    other = S.bootstrap_style(rows, 12, 8, workers=2)
    np.testing.assert_array_equal(one.ratings, two.ratings)
    assert not np.allclose(one.ratings, other.ratings)


def test_poisson_draws_have_the_poisson_law():
    draws = S._poisson_draws(np.random.default_rng(0), 400_000)
    assert draws.mean() == pytest.approx(1.0, abs=0.01) and draws.var() == pytest.approx(1.0, abs=0.01)
    share = np.bincount(draws, minlength=4)[:4] / draws.size
    np.testing.assert_allclose(share, [math.exp(-1), math.exp(-1), math.exp(-1) / 2, math.exp(-1) / 6], atol=0.003)


def test_the_table_ranks_by_upper_bound_and_reports_each_coefficient():
    data, rows = reference_rows()
    table = S.style_leaderboard_compute(rows, data.names, min_votes=490)
    assert [c.feature for c in table.coefficients] == list(S.FEATURES)
    assert all(c.ci_lower < c.value < c.ci_upper for c in table.coefficients)
    ratings_sorted = [r.rating for r in table.rows]
    assert ratings_sorted == sorted(ratings_sorted, reverse=True)
    provisional = {r.model for r in table.rows if r.provisional}
    assert provisional == {r.model for r in table.rows if r.votes < 490} and provisional
    assert all(r.rank is None for r in table.rows if r.provisional)
    assert table.rows[0].rank == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"a": [0, 5]}, "model index out of range"),
        ({"outcome": [0, 7]}, "outcome code out of range"),
        ({"b": [0, 0]}, "cannot battle itself"),
        ({"z": [[np.nan] * 4, [0] * 4]}, "finite"),
        ({"weights": [1, -1]}, "weights"),
    ],
)
def test_bad_input_is_refused_with_its_reason(change, message):
    args = {"a": [0, 1], "b": [1, 0], "outcome": [0, 1], "z": [[0] * 4, [0] * 4], "weights": None} | change
    with pytest.raises(ValueError, match=message):
        S.style_rows(np.array(args["a"]), np.array(args["b"]), np.array(args["outcome"]), np.array(args["z"], float),
                     3, weights=None if args["weights"] is None else np.array(args["weights"], float))
