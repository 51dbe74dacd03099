"""Rigging benchmark: what it takes an attacker to move one model up a rank, with the arena's
defences on and off (a script; no database, no server).

    .venv/bin/python bench/rigging.py [--seed 0] [--honest 200] [--honest-votes 100]

The arena: 10 models 25 points apart (1250 … 1025), honest voters who vote as the true ratings
predict (30% ties), each casting --honest-votes votes on uniformly drawn pairs. The attacker wants
model M (5th of 10) to pass the 4th. It has k accounts; in each battle of M it recognises M from
its reply with accuracy p and votes for the side it takes for M (battles without M it leaves
unvoted). Its votes are drawn against opponents as the uniform draw gives them.

- Votes needed: the fewest of the attacker's M-battle votes after which the arena's Bradley–Terry
  fit (arena.ratings.fit_bt) puts M above the 4th, on the honest votes' counts plus the attacker's
  (expected outcomes, so the figure is the same on every run).
- Defences off (ARENA_ACCESS=open): one person may cast ARENA_VOTES_PER_DAY (500) a day; accounts
  needed = votes needed / 500 for a one-day attack.
- Defences on (accounts, detection, ARENA_ACCOUNT_VOTES_PER_DAY 200): the arena's own likelihood
  test (arena.detection) reads each account's votes. An attacker that keeps voting is flagged and
  every vote of that account on M's battles leaves the ratings; the best the attacker can do is
  to stop each account just before its flag. Its votes per account are then the mean number cast
  before the crossing (at most the account's daily cap), measured over 400 simulated accounts.
- Detection: the share of attacker accounts flagged within 50 of M's battles, and within 10;
  false positives: the share of honest voters ever flagged.

Targets: a loyal voter for M (M's predicted win chance ≈ 0.5) flagged within 10 of M's battles,
with ≤ 1% of honest voters flagged; with the defences on, moving M one rank takes ≥ 10× the
accounts it takes with them off.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arena import detection, ratings

K = 10
TRUE = np.linspace(1250, 1025, K)
M, ABOVE = 4, 3  # 0-based: the 5th model wants the 4th's place
TIES = 0.3
VOTES_PER_DAY_OPEN = 500
VOTES_PER_DAY_ACCOUNT = 200


def honest_votes(rng: np.random.Generator, voters: int, each: int) -> list[detection.CastVote]:
    out = []
    for v in range(voters):
        for i in range(each):
            a, b = (int(x) for x in rng.choice(K, 2, replace=False))
            p = detection.win_probability(TRUE[a], TRUE[b])
            outcome = ratings.TIE if rng.random() < TIES else (ratings.A_WINS if rng.random() < p else ratings.B_WINS)
            out.append(detection.CastVote(v * each + i, f"h{v}", a, b, outcome))
    return out


def counts_of(votes: list[detection.CastVote]) -> np.ndarray:
    counts = np.zeros((K, K, ratings.N_OUTCOMES))
    for v in votes:
        counts[v.model_a, v.model_b, v.outcome] += 1
    return counts


def votes_needed(honest: np.ndarray, accuracy: float) -> int | None:
    """Fewest attacker votes on M's battles (expected outcomes) that lift M above the model above it."""
    if accuracy <= 0.5:
        return None  # a coin-flip recogniser moves nothing on average

    def passes(n: int) -> bool:
        counts = honest.copy()
        for other in (m for m in range(K) if m != M):
            share = n / (K - 1)
            counts[M, other, ratings.A_WINS] += share * accuracy
            counts[M, other, ratings.B_WINS] += share * (1 - accuracy)
        fitted = ratings.fit_bt(counts)
        return bool(fitted[M] > fitted[ABOVE])

    hi = 1
    while not passes(hi):
        hi *= 2
        if hi > 10**7:
            return None
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi


def attacker_account(
    rng: np.random.Generator, rated: dict[int, float], accuracy: float, battles: int, tie_rate: float
) -> int | None:
    """The number of M's battles after which the account is flagged (None: not within `battles`)."""
    votes = []
    state = np.zeros(len(detection.LOYALTY_SHARES))
    for n in range(1, battles + 1):
        other = int(rng.choice([m for m in range(K) if m != M]))
        won = rng.random() < accuracy
        votes.append(detection.CastVote(n, "x", M, other, ratings.A_WINS if won else ratings.B_WINS))
        p = detection.win_probability(rated[M], rated[other])
        state = np.maximum(0.0, state + detection.loyalty_increments("won" if won else "lost", p, tie_rate))
        if state.max() >= detection.LOYALTY_THRESHOLD:
            return n
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--honest", type=int, default=200, help="honest voters")
    parser.add_argument("--honest-votes", type=int, default=100, help="votes per honest voter")
    parser.add_argument("--accounts", type=int, default=400, help="simulated attacker accounts per accuracy")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    honest = honest_votes(rng, args.honest, args.honest_votes)
    counts = counts_of(honest)
    fitted = ratings.fit_bt(counts)
    rated = {i: float(r) for i, r in enumerate(fitted)}
    tie_rate = float(counts[:, :, ratings.TIE].sum() / counts.sum())
    p_even = detection.win_probability(rated[M], float(np.mean([rated[m] for m in range(K) if m != M])))
    print(f"{args.honest} honest voters × {args.honest_votes} votes = {len(honest):,} votes; "
          f"model M = #{M + 1} ({rated[M]:.0f}), the one above it #{ABOVE + 1} ({rated[ABOVE]:.0f}); "
          f"M's predicted win chance against a random opponent {p_even:.2f}")

    # False positives: honest voters, each through the arena's own test on their whole history.
    by_voter: dict[str, list[detection.CastVote]] = {}
    for v in honest:
        by_voter.setdefault(v.voter, []).append(v)
    flagged = sum(bool(detection.loyal_pairs(vs, rated, tie_rate=tie_rate)) for vs in by_voter.values())
    fp = flagged / len(by_voter)
    print(f"honest voters flagged: {flagged} of {len(by_voter)} ({fp:.1%})")
    print()
    header = ("accuracy p", "votes to move M", "accounts (off)", "flagged ≤10 M-battles", "flagged ≤50",
              "median battles to flag", "votes/account (on)", "accounts (on)", "on / off")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    rows = []
    for accuracy in (1.0, 0.95, 0.9, 0.8, 0.7, 0.6):
        needed = votes_needed(counts, accuracy)
        runs = [attacker_account(rng, rated, accuracy, 50, tie_rate) for _ in range(args.accounts)]
        within10 = sum(1 for r in runs if r is not None and r <= 10) / len(runs)
        within50 = sum(1 for r in runs if r is not None) / len(runs)
        flagged_at = [r for r in runs if r is not None]
        median = float(np.median(flagged_at)) if flagged_at else math.nan
        # Longer runs for the per-account yield: stop each account just before its flag, or at its daily cap.
        longer = [attacker_account(rng, rated, accuracy, VOTES_PER_DAY_ACCOUNT, tie_rate)
                  for _ in range(args.accounts)]
        per_account = float(np.mean([(r - 1) if r is not None else VOTES_PER_DAY_ACCOUNT for r in longer]))
        off = math.ceil(needed / VOTES_PER_DAY_OPEN) if needed else None
        on = math.ceil(needed / per_account) if needed and per_account > 0 else None
        ratio = on / off if on and off else math.nan
        rows.append((accuracy, needed, off, within10, within50, median, per_account, on, ratio))
        print(f"{accuracy:.2f} | {needed if needed else '–'} | {off if off else '–'} | {within10:.0%} | "
              f"{within50:.0%} | {median:.0f} | {per_account:.1f} | {on if on else '–'} | {ratio:.0f}×")
    print()
    loyal = rows[0]
    print("Targets:")
    print(f"- loyal voter (p = 1) flagged within 10 of M's battles: {loyal[3]:.0%} of accounts "
          f"(median {loyal[5]:.0f} battles) — {'met' if loyal[3] >= 0.9 else 'NOT met'}")
    print(f"- honest voters flagged ≤ 1%: {fp:.1%} — {'met' if fp <= 0.01 else 'NOT met'}")
    for accuracy, _, off, _, _, _, _, on, ratio in rows:
        if off and on:
            print(f"- p = {accuracy:.2f}: accounts on/off {on}/{off} = {ratio:.0f}× — "
                  f"{'met' if ratio >= 10 else 'NOT met'} (≥ 10×)")


if __name__ == "__main__":
    main()
