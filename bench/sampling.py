"""Pair sampling benchmark: how many votes each policy needs to learn known true ratings (a script;
no database, no server).

    .venv/bin/python bench/sampling.py [--quick] [--seeds 20] [--models 20,50]

The simulator (bench/sampling_sim.py): per seed, true ratings with the public leaderboard's spread
(SD ≈ 100 points), a third of votes ties; votes drawn by the arena's own policy code
(arena.sampling), the adaptive policy refreshed every 50 votes as the leaderboard refresh would;
after every 100 (250 at 50 models) votes the arena's fit and its sandwich intervals, plain and with
inverse-probability weights (eq. 7). Policies: uniform (what `weighted` is too while the admins'
weights are equal), the paper's eq. 9, and `adaptive` (Fisher-information gain of the fit).

Printed, averaged over the seeds (± standard error):
- votes until the mean 95% interval width of the ratings is ≤ TARGET_WIDTH points, and until the
  win matrix is that precise: the mean 95% width of the fitted P(i beats j) ≤ TARGET_WIN;
- coverage: how often a 95% interval holds the true rating (every model, every 1,000 votes);
- Kendall's tau between the fitted and the true order after 1,000 and 5,000 votes;
- the same for models that join an arena already running, with and without the new-model boost;
- what the best possible fixed allocation would save (it knows the true ratings): a bound on any
  policy;
- the policy's cost at 100 models: refreshing the gains, and one draw.

Target (issue 13): adaptive needs ≥ 30% fewer votes than uniform for the same mean interval width
(or else the same win-matrix precision), with coverage 93–97%.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import numpy as np
from sampling_sim import oracle_saving, simulate, votes_to

from arena import ratings as R
from arena import sampling as S

TARGET_WIDTH = 60.0  # mean 95% interval width, rating points
TARGET_WIN = 0.10  # mean 95% interval width of the fitted win probabilities
JOIN = (3, 3000)  # three of the 20 models join after 3,000 votes
BOOST_VOTES = 100  # the default ARENA_NEW_MODEL_BOOST_VOTES
ROWS = [("uniform", "uniform", "plain", S.EXPLORATION), ("eq. 9 (paper)", "eq9", "ipw", S.EXPLORATION),
        ("eq. 9", "eq9", "plain", S.EXPLORATION), ("adaptive", "adaptive", "plain", S.EXPLORATION),
        ("adaptive", "adaptive", "ipw", S.EXPLORATION)]
FIT_NAMES = {"plain": "plain", "ipw": "inverse-probability"}


def mean_se(values: list[float]) -> tuple[float, float, int]:
    """Mean and standard error of the finite values, and how many were not."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, len(values)
    se = statistics.stdev(finite) / math.sqrt(len(finite)) if len(finite) > 1 else 0.0
    return statistics.fmean(finite), se, len(values) - len(finite)


def votes_cell(values: list[float], baseline: float | None) -> tuple[str, float]:
    mean, se, missing = mean_se(values)
    text = f"{mean:,.0f} ± {se:,.0f}" + (f" ({missing} never)" if missing else "")
    if baseline is not None and math.isfinite(mean):
        text += f" ({(mean / baseline - 1) * 100:+.0f}%)"
    return text, mean


def fixed_table(models: list[int], seeds: int) -> dict[tuple[int, str, str], tuple[float, float, float]]:
    """Prints the table; returns {(models, policy, fit): (votes to width, to win matrix, coverage)}."""
    results = {}
    print("\n### Votes to learn the ratings (every model from the first vote)\n")
    print(f"Targets: mean 95% interval width ≤ {TARGET_WIDTH:.0f} points; win-matrix precision: mean 95% width of "
          f"the fitted P(i beats j) ≤ {TARGET_WIN:.2f}. {seeds} seeds. In brackets: against uniform.\n")
    print("| models | policy | fit | votes to width ≤ 60 | votes to win matrix ≤ 0.10 | coverage of 95% intervals "
          "| Kendall τ @ 1,000 | τ @ 5,000 |")
    print("|---|---|---|---|---|---|---|---|")
    for k in models:
        step = 100 if k <= 20 else 250
        budget = 8000 if k <= 20 else 20000
        checkpoints = list(range(step, budget + 1, step))
        base_width = base_win = None
        runs: dict[str, list] = {}
        for label, policy, fit, exploration in ROWS:
            if policy not in runs:
                runs[policy] = [simulate(k, policy, seed, budget, checkpoints, exploration=exploration)
                                for seed in range(seeds)]
            sims = runs[policy]
            to_width = [votes_to(r.width[fit], checkpoints, TARGET_WIDTH) for r in sims]
            width, mean_width = votes_cell(to_width, base_width)
            win, mean_win = votes_cell([votes_to(r.win[fit], checkpoints, TARGET_WIN) for r in sims], base_win)
            if policy == "uniform":
                base_width, base_win = mean_width, mean_win
            at = [checkpoints.index(n) for n in range(1000, budget + 1, 1000)]
            covered = np.concatenate([r.covered[fit][i] for r in sims for i in at])
            tau = [statistics.fmean(r.tau[fit][checkpoints.index(n)] for r in sims) for n in (1000, 5000)]
            print(f"| {k} | {label} | {FIT_NAMES[fit] if policy != 'uniform' else 'either (weights 1)'} | {width} "
                  f"| {win} | {covered.mean() * 100:.1f}% | {tau[0]:.3f} | {tau[1]:.3f} |", flush=True)
            results[(k, policy, fit)] = (mean_width, mean_win, float(covered.mean()))
    return results


def join_table(seeds: int) -> dict[tuple[str, int, float, str], float]:
    """Prints the table; returns {(policy, boost, exploration, fit): votes after joining}."""
    results = {}
    k, (n_new, at) = 20, JOIN
    print(f"\n### Models joining a running arena ({n_new} of {k} join after {at:,} votes)\n")
    print(f"Votes after they join until their mean 95% interval width ≤ {TARGET_WIDTH:.0f} points; boost: ×"
          f"{S.NEW_MODEL_BOOST:g} until {BOOST_VOTES} counted votes. {seeds} seeds. In brackets: against uniform, "
          "no boost, same fit.\n")
    print("| policy | boost | exploration | plain fit | inverse-probability fit "
          "| coverage, all models (plain / weighted) |")
    print("|---|---|---|---|---|---|")
    checkpoints = list(range(at + 100, at + 5001, 100))
    base: dict[str, float] = {}
    for policy, boost, exploration in (("uniform", 0, S.EXPLORATION), ("uniform", BOOST_VOTES, S.EXPLORATION),
                                       ("adaptive", 0, S.EXPLORATION), ("adaptive", BOOST_VOTES, S.EXPLORATION),
                                       ("adaptive", BOOST_VOTES, 0.10), ("adaptive", BOOST_VOTES, 0.50)):
        sims = [simulate(k, policy, seed, checkpoints[-1], checkpoints, join=JOIN, boost_votes=boost,
                         exploration=exploration) for seed in range(seeds)]
        cells, coverage = [], []
        for fit in ("plain", "ipw"):
            values = [votes_to(r.width[fit], checkpoints, TARGET_WIDTH) - at for r in sims]
            text, mean = votes_cell(values, base.get(fit))
            base.setdefault(fit, mean)
            results[(policy, boost, exploration, fit)] = mean
            cells.append(text)
            coverage.append(np.concatenate([r.covered[fit][i] for r in sims for i in (9, 19, 29, 39, 49)]).mean())
        shown = f"{exploration:.2f}" if policy == "adaptive" else "–"
        print(f"| {policy} | {'yes' if boost else 'no'} | {shown} | {cells[0]} | {cells[1]} "
              f"| {coverage[0] * 100:.1f}% / {coverage[1] * 100:.1f}% |", flush=True)
    return results


def oracle_lines(models: list[int]) -> dict[int, dict[str, float]]:
    """Prints the bound; returns {models: {metric: votes relative to uniform}}."""
    results = {}
    print("\n### The most any policy could save\n")
    print("The best fixed share of votes per pair, found knowing the true ratings, against uniform sampling "
          "(votes needed for the same precision; 5 seeds):\n")
    for k in models:
        found = [oracle_saving(k, seed) for seed in range(5)]
        width, win, pairs = (statistics.fmean(f[key] for f in found) for key in ("width", "win", "pairs"))
        results[k] = {"width": width, "win": win, "pairs": pairs}
        print(f"- {k} models: mean rating interval {(width - 1) * 100:+.1f}%, win matrix (fitted) "
              f"{(win - 1) * 100:+.1f}%, per-pair win rates (the paper's win matrix) {(pairs - 1) * 100:+.1f}%")
    return results


def verdict(fixed: dict, joined: dict, bound: dict[int, dict[str, float]]) -> None:
    """The figures against issue 13's target, in words."""
    print("\n### Against the target (≥ 30% fewer votes than uniform, coverage 93–97%)\n")
    for (k, policy, fit), (width, win, coverage) in fixed.items():
        if policy != "adaptive":
            continue
        base_width, base_win, _ = fixed[(k, "uniform", "plain")]
        print(f"- {k} models, adaptive, {FIT_NAMES[fit]} fit: {(width / base_width - 1) * 100:+.0f}% votes for the "
              f"interval width, {(win / base_win - 1) * 100:+.0f}% for the win matrix, coverage {coverage * 100:.1f}% "
              f"({'in' if 0.93 <= coverage <= 0.97 else 'OUTSIDE'} 93–97%)"
              + (f"; the best any policy could do: {(bound[k]['width'] - 1) * 100:+.0f}% / "
                 f"{(bound[k]['win'] - 1) * 100:+.0f}%" if k in bound else ""))
    base = joined[("uniform", 0, S.EXPLORATION, "plain")]
    for fit in ("plain", "ipw"):
        got = joined[("adaptive", BOOST_VOTES, S.EXPLORATION, fit)]
        print(f"- models joining, adaptive with the boost, {FIT_NAMES[fit]} fit: {(got / base - 1) * 100:+.0f}% votes "
              "for the newcomers' interval width against uniform without it")
    met = any(w / fixed[(k, "uniform", "plain")][0] <= 0.7 or n / fixed[(k, "uniform", "plain")][1] <= 0.7
              for (k, policy, _), (w, n, _) in fixed.items() if policy == "adaptive")
    why = "; no allocation could meet it here (the bound above)" if bound else " (the bound: run without --quick)"
    print(f"- target with every model from the first vote: {'met' if met else 'NOT met'}" + ("" if met else why))


def timing_lines() -> None:
    k, votes = 100, 50_000
    rng = np.random.default_rng(0)
    a = rng.integers(0, k, votes)
    counts = R.counts_from_battles(a, (a + rng.integers(1, k, votes)) % k, rng.integers(0, 4, votes), k)
    weights = np.ones(k)

    def median_ms(fn, repeat: int) -> tuple[float, float]:
        """Median and fastest wall milliseconds (the fastest is the cost with nothing else running on
        the machine; CPU time would count numpy's idle BLAS threads spinning)."""
        fn()
        wall = []
        for _ in range(repeat):
            started = time.perf_counter()
            fn()
            wall.append(time.perf_counter() - started)
        return statistics.median(wall) * 1000, min(wall) * 1000

    refresh = median_ms(lambda: S.pair_gains(counts), 200)
    gains = S.pair_gains(counts)
    draw_rng = random.Random(0)
    draw = median_ms(lambda: S.pair_draw(S.pair_probabilities("adaptive", weights, gains), draw_rng), 1000)
    print(f"\n### Cost at {k} models ({votes:,} votes; median / fastest of 200 and 1,000 runs)\n")
    print(f"- refresh (Bradley–Terry fit + every pair's gain, with each leaderboard refresh): "
          f"{refresh[0]:.2f} / {refresh[1]:.2f} ms")
    print(f"- one draw (probabilities of the {k * (k - 1) // 2:,} pairs from the cached gains + the draw): "
          f"{draw[0]:.2f} / {draw[1]:.2f} ms")
    print(f"- target ≤ 5 ms each: {'met' if max(refresh[0], draw[0]) <= 5 else 'NOT met'} (median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 seeds, 20 models, no oracle")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--models", default="20,50")
    args = parser.parse_args()
    seeds = 6 if args.quick else args.seeds
    models = [20] if args.quick else [int(m) for m in args.models.split(",")]
    started = time.perf_counter()
    print(f"## Pair sampling (bench/sampling.py; {seeds} seeds)")
    timing_lines()
    fixed = fixed_table(models, seeds)
    joined = join_table(seeds)
    bound = {} if args.quick else oracle_lines(models)
    verdict(fixed, joined, bound)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
