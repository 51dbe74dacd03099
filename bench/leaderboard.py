"""Leaderboard math benchmark (a script, not a test).

    .venv/bin/python bench/leaderboard.py [--quick] [--rounds N] [--no-e2e]

For seeded synthetic battles with known true ratings, at (30 models, 100k
votes), (100, 1M) and (200, 3M), it prints wall time and memory of each step
of arena.ratings, each against its target with the ratio figure/target:

  counts    collapse battle rows into the (K, K, 4) count array
  fit       Bradley–Terry fit from the counts (cold start)
  boot      1000-round bootstrap from the counts (given the fit)
  fit+boot  both, timed together (target: <= 1 s at 100 models / 1M votes)
  elo       online Elo over the rows in time order
  analytic  sandwich intervals
  live      one vote: counts_add + warm-started refit + analytic intervals,
            median over repeated single-vote updates (target: <= 50 ms)

Memory is the tracemalloc peak of the step (numpy buffers and Python
objects allocated during the step, above what was allocated before it),
measured in a second pass so that tracing does not slow the timed pass.
The last line per size also gives the process peak RSS (getrusage
ru_maxrss), which includes the interpreter, numpy and the synthetic rows.
The memory target (<= 500 MB at 3M votes) is checked against the largest
step peak plus the rows themselves.

--quick runs the two smaller sizes only and fewer live updates.

Style control (arena.style_ratings), at (30 models, 100k votes) and (100, 1M),
from battles drawn with answer styles (a length that differs by model,
markdown counts) and a known γ:

  style fit        the joint ratings + γ fit from the battle rows
  style analytic   sandwich intervals of ratings and γ
  style boot       100-round bootstrap (FastChat's default for style control)
  style fit+boot   both, timed together (target: <= 2 s at 100 models / 1M votes)

--style-only runs just these.

At the end, ``time_leaderboard_command`` (the end-to-end hook) writes 1M
battles in FastChat's clean_battle JSON-lines schema to a temp dir and times
``python manage.py leaderboard --battles FILE --json`` from the repo root, as it runs (without
Django set up, config/standalone.py) and through Django's own management, best and median of five
runs each, and checks both print the same leaderboard (target: <= 1.6 s end to end).
``--e2e-only`` runs just that.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arena import ratings as R  # noqa: E402 - importable only once ROOT is on sys.path
from arena import style_ratings as S  # noqa: E402

SIZES = [(30, 100_000), (100, 1_000_000), (200, 3_000_000)]
MB = 1024 * 1024

# (step, size) -> (seconds target, MB target); None = no target
TIME_TARGETS = {
    ("fit+boot", (100, 1_000_000)): 1.0,
    ("live", (30, 100_000)): 0.050,
    ("live", (100, 1_000_000)): 0.050,
    ("live", (200, 3_000_000)): 0.050,
}
MEMORY_TARGET_MB = {(200, 3_000_000): 500.0}
STYLE_SIZES = [(30, 100_000), (100, 1_000_000)]
STYLE_TARGETS = {("style fit+boot", (100, 1_000_000)): 2.0}
TRUE_GAMMA = np.array([0.25, 0.03, 0.02, 0.03])  # the public arena's published order of magnitude


def synthetic_battles(k: int, n: int, seed: int = 0, tie: float = 0.3):
    """Seeded battles from a BT model with ties (true ratings sd 120).

    P(tie or both-bad) = 2 * tie * min(s, 1 - s) for s = P_BT(A beats B); the
    rest is split so that A's expected score is exactly s.  Returns int16/int8
    index arrays, the outcome codes and the centred true ratings.
    """
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 120.0, k)
    a = np.empty(n, dtype=np.int16)
    b = np.empty(n, dtype=np.int16)
    o = np.empty(n, dtype=np.int8)
    step = 1 << 20
    for start in range(0, n, step):
        m = min(step, n - start)
        aa = rng.integers(0, k, m)
        bb = rng.integers(0, k - 1, m)
        bb += bb >= aa
        s = 1.0 / (1.0 + 10.0 ** ((true[bb] - true[aa]) / 400.0))
        p_tie = 2.0 * tie * np.minimum(s, 1.0 - s)
        p_a = s - p_tie / 2.0
        u = rng.random(m)
        a[start : start + m] = aa
        b[start : start + m] = bb
        o[start : start + m] = np.select(
            [u < p_a, u < p_a + p_tie * 2 / 3, u < p_a + p_tie],
            [R.A_WINS, R.TIE, R.BOTH_BAD],
            default=R.B_WINS,
        )
    return a, b, o, true - true.mean() + 1000.0


def traced(fn):
    """Run fn under tracemalloc; return (result, peak MB above the start)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, (peak - base) / MB


def timed(fn, repeat: int = 1):
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best


def live_updates(counts, ratings, a, b, o, n_updates):
    counts = counts.copy()
    times = []
    r = ratings
    for i in range(n_updates):
        t0 = time.perf_counter()
        R.counts_add(counts, int(a[i]), int(b[i]), int(o[i]))
        r = R.fit_bt(counts, init=r)
        R.analytic_intervals(counts, r)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.max(times))


def fmt_target(value: float, target: float | None, unit: str) -> str:
    if target is None:
        return ""
    ok = "ok" if value <= target else "OVER"
    return f"target {target:g} {unit}  ratio {value / target:5.2f}  {ok}"


def bench_size(k: int, n: int, rounds: int, n_updates: int, memory: bool) -> dict:
    print(f"\n== {k} models, {n:,} votes, {rounds} bootstrap rounds ==")
    a, b, o, true = synthetic_battles(k, n, seed=k)
    rows_mb = (a.nbytes + b.nbytes + o.nbytes) / MB
    ai, bi = a.astype(np.int64), b.astype(np.int64)

    counts, t_counts = timed(lambda: R.counts_from_battles(ai, bi, o, k), repeat=3)
    ratings, t_fit = timed(lambda: R.fit_bt(counts), repeat=3)
    _, t_boot = timed(lambda: R.bootstrap_intervals(counts, rounds, 0, ratings=ratings))

    def fit_and_boot():
        r = R.fit_bt(counts)
        return r, R.bootstrap_intervals(counts, rounds, 0, ratings=r)

    (_, (blo, bup)), t_fitboot = timed(fit_and_boot, repeat=2)
    elo, t_elo = timed(lambda: R.elo_online(a, b, o, k))
    (alo, aup), t_an = timed(lambda: R.analytic_intervals(counts, ratings), repeat=5)
    live_med, live_max = live_updates(counts, ratings, a, b, o, n_updates)

    mem = {}
    if memory:
        for name, fn in [
            ("counts", lambda: R.counts_from_battles(ai, bi, o, k)),
            ("fit", lambda: R.fit_bt(counts)),
            ("boot", lambda: R.bootstrap_intervals(counts, rounds, 0, ratings=ratings)),
            ("elo", lambda: R.elo_online(a, b, o, k)),
            ("analytic", lambda: R.analytic_intervals(counts, ratings)),
            ("live", lambda: live_updates(counts, ratings, a, b, o, 5)),
        ]:
            mem[name] = traced(fn)[1]
        mem["fit+boot"] = max(mem["fit"], mem["boot"])

    figures = [
        ("counts", t_counts),
        ("fit", t_fit),
        ("boot", t_boot),
        ("fit+boot", t_fitboot),
        ("elo", t_elo),
        ("analytic", t_an),
        ("live", live_med),
    ]
    for name, secs in figures:
        target = TIME_TARGETS.get((name, (k, n)))
        label = f"{secs * 1e3:9.1f} ms"
        extra = f"  (max {live_max * 1e3:.1f} ms over {n_updates})" if name == "live" else ""
        mem_s = f"  peak {mem[name]:7.1f} MB" if name in mem else ""
        print(f"  {name:9s}{label}{mem_s}  {fmt_target(secs, target, 's')}{extra}")

    err = ratings - true
    cover_an = float(np.mean((alo <= true) & (true <= aup)))
    cover_bs = float(np.mean((blo <= true) & (true <= bup)))
    width_ratio = float(np.median((aup - alo) / (bup - blo)))
    print(
        f"  accuracy: rmse vs truth {np.sqrt(np.mean(err**2)):.2f} pts, "
        f"mean 95% width {np.mean(bup - blo):.1f} pts, analytic/bootstrap width "
        f"{width_ratio:.3f}, truth inside: analytic {cover_an:.2f}, bootstrap {cover_bs:.2f}, "
        f"elo-vs-truth corr {np.corrcoef(elo, true)[0, 1]:.3f}"
    )
    if memory:
        step_peak = max(mem.values())
        total = step_peak + rows_mb
        target = MEMORY_TARGET_MB.get((k, n))
        print(
            f"  memory: rows {rows_mb:.0f} MB (int16/int8), largest step peak {step_peak:.1f} MB, "
            f"rows + step {total:.0f} MB {fmt_target(total, target, 'MB')}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  process peak RSS so far (ru_maxrss): {rss:.0f} MB")
    return {"fit+boot": t_fitboot, "live": live_med}


def synthetic_style_battles(k: int, n: int, seed: int = 0):
    """Battles whose outcome depends on the two models and on their answers' style (decisive
    only: the truth is then the model fitted). Returns the fit's rows and the true ratings."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 120.0, k)
    verbosity = rng.normal(0.0, 0.4, k)  # some models write longer
    a = rng.integers(0, k, n)
    b = rng.integers(0, k - 1, n)
    b += b >= a

    def answers(m):
        tokens = rng.lognormal(5.5 + verbosity[m], 0.6)
        return np.column_stack([tokens, rng.poisson(0.6, n), rng.poisson(2.0 + verbosity[m].clip(-1, 1), n),
                                rng.poisson(1.2, n)])

    z = S.style_design(answers(a), answers(b))
    eta = np.log(10) * (true[a] - true[b]) / 400 + z @ TRUE_GAMMA
    o = np.where(rng.random(n) < 1 / (1 + np.exp(-eta)), R.A_WINS, R.B_WINS)
    return S.style_rows(a, b, o, z, k), true - true.mean() + 1000.0


def bench_style(k: int, n: int, rounds: int) -> dict:
    print(f"\n== style control: {k} models, {n:,} votes, {rounds} bootstrap rounds ==")
    rows, true = synthetic_style_battles(k, n, seed=k)
    fit, t_fit = timed(lambda: S.fit_style_bt(rows), repeat=3)
    analytic, t_an = timed(lambda: S.analytic_style_intervals(rows, fit), repeat=3)
    _, t_boot = timed(lambda: S.bootstrap_style(rows, rounds, 0, fit=fit))

    def fit_and_boot():
        f = S.fit_style_bt(rows)
        return f, S.bootstrap_style_intervals(S.bootstrap_style(rows, rounds, 0, fit=f))

    (_, boot), t_both = timed(fit_and_boot, repeat=2)
    for name, secs in [("style fit", t_fit), ("style analytic", t_an), ("style boot", t_boot),
                       ("style fit+boot", t_both)]:
        target = STYLE_TARGETS.get((name, (k, n)))
        print(f"  {name:15s}{secs * 1e3:9.1f} ms  {fmt_target(secs, target, 's')}")
    err = fit.ratings - true
    inside = lambda lo, hi, x: float(np.mean((lo <= x) & (x <= hi)))  # noqa: E731
    print(
        f"  accuracy: rating rmse vs truth {np.sqrt(np.mean(err**2)):.2f} pts; gamma {np.round(fit.gamma, 4)} "
        f"(truth {TRUE_GAMMA}); truth inside 95%: ratings analytic {inside(analytic.lower, analytic.upper, true):.2f}, "
        f"bootstrap {inside(boot.lower, boot.upper, true):.2f}; gamma analytic "
        f"{inside(analytic.gamma_lower, analytic.gamma_upper, TRUE_GAMMA):.2f}, bootstrap "
        f"{inside(boot.gamma_lower, boot.gamma_upper, TRUE_GAMMA):.2f}; "
        f"bootstrap/analytic width {np.median((boot.upper - boot.lower) / (analytic.upper - analytic.lower)):.3f}"
    )
    return {"style fit+boot": t_both}


# --------------------------------------------------------------------------
# end-to-end hook: `manage.py leaderboard --battles FILE --json`
# --------------------------------------------------------------------------


def write_clean_battles_jsonl(path: str | os.PathLike, n: int = 1_000_000, k: int = 100, seed: int = 0) -> None:
    """Write n battles in FastChat's clean_battle schema, one JSON object a line:
    {"model_a": ..., "model_b": ..., "winner": "model_a"|"model_b"|"tie"|
    "tie (bothbad)", "tstamp": float}."""
    a, b, o, _ = synthetic_battles(k, n, seed=seed)
    names = [f"model-{i:03d}" for i in range(k)]
    winners = R.OUTCOME_NAMES
    t0 = 1_700_000_000.0
    with open(path, "w", encoding="utf-8") as f:
        step = 1 << 16
        for start in range(0, n, step):
            lines = [
                f'{{"model_a": "{names[x]}", "model_b": "{names[y]}", '
                f'"winner": "{winners[z]}", "tstamp": {t0 + (start + i) * 0.5:.3f}}}\n'
                for i, (x, y, z) in enumerate(
                    zip(
                        a[start : start + step].tolist(),
                        b[start : start + step].tolist(),
                        o[start : start + step].tolist(),
                        strict=True,
                    )
                )
            ]
            f.writelines(lines)


E2E_TARGET_S = 1.6  # end to end on the 1M-line file: 25x FastChat's reference on the same file
E2E_RUNS = 5


def _command_run(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """One run: the finished process, its wall time and its CPU time (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def time_leaderboard_command(path: str | os.PathLike, runs: int = E2E_RUNS) -> float | None:
    """HOOK: time `python manage.py leaderboard --battles PATH --json` from the repo root, as it
    runs (without Django set up) and through Django (`--settings` leaves it to Django's own
    management), `runs` times each, interleaved; checks both print the same leaderboard.
    Prints "skipped" and returns None when manage.py is absent."""
    manage = ROOT / "manage.py"
    if not manage.exists():
        print("  e2e manage.py leaderboard: skipped (no manage.py)")
        return None
    cmd = [sys.executable, "manage.py", "leaderboard", "--battles", str(path), "--json"]
    ways = {"standalone": cmd, "through Django": [*cmd, "--settings", "config.settings"]}
    walls: dict[str, list[float]] = {way: [] for way in ways}
    cpus: dict[str, list[float]] = {way: [] for way in ways}
    outputs: dict[str, str] = {}
    for _ in range(runs):
        for way, command in ways.items():
            proc, wall, cpu = _command_run(command)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                said = " | ".join(tail)
                print(f"  e2e manage.py leaderboard ({way}): exit {proc.returncode} after {wall:.2f} s: {said}")
                return None
            walls[way].append(wall)
            cpus[way].append(cpu)
            outputs[way] = proc.stdout
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for way in ways:
        best, median = min(walls[way]), float(np.median(walls[way]))
        print(
            f"  e2e manage.py leaderboard --json, {way}: wall best {best:.2f} s / median {median:.2f} s "
            f"{fmt_target(best, E2E_TARGET_S, 's') if way == 'standalone' else ''}, "
            f"CPU best {min(cpus[way]):.2f} s ({runs} runs)"
        )
    same = outputs["standalone"] == outputs["through Django"]
    print(
        f"  same output both ways: {'yes' if same else 'NO'} ({len(outputs['standalone']):,} bytes); "
        f"child peak RSS {child_rss:.0f} MB"
    )
    return min(walls["standalone"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two smaller sizes, fewer live updates")
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds (default 1000)")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument("--no-e2e", action="store_true", help="skip the manage.py leaderboard hook")
    parser.add_argument("--style-rounds", type=int, default=100, help="style-control bootstrap rounds (default 100)")
    parser.add_argument("--style-only", action="store_true", help="only the style-control figures")
    parser.add_argument("--e2e-only", action="store_true", help="only the manage.py leaderboard hook")
    args = parser.parse_args()
    if args.style_only:
        for k, n in STYLE_SIZES:
            bench_style(k, n, args.style_rounds)
        return

    sizes = SIZES[:2] if args.quick else SIZES
    n_updates = 20 if args.quick else 50
    print(
        f"numpy {np.__version__}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}; "
        "times are wall clock (best of a few runs where repeated)"
    )
    for k, n in [] if args.e2e_only else sizes:
        bench_size(k, n, args.rounds, n_updates, memory=not args.no_memory)
    for k, n in [] if args.e2e_only else STYLE_SIZES[:1] if args.quick else STYLE_SIZES:
        bench_style(k, n, args.style_rounds)

    if not args.no_e2e:
        print("\n== end to end ==")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "clean_battles.jsonl"
            t0 = time.perf_counter()
            write_clean_battles_jsonl(path)
            print(f"  wrote 1,000,000 battles ({path.stat().st_size / MB:.0f} MB) in {time.perf_counter() - t0:.1f} s")
            time_leaderboard_command(path)


if __name__ == "__main__":
    main()
