"""A judge model's leaderboard, and how far its verdicts agree with people's votes.

The judge's votes are rated with the same math as the people's (`leaderboard_snapshot`), from
counts made on the fly: a judge's battles number in the thousands, not millions, and are never
in the `PairCount` table unless ARENA_RATINGS_INCLUDE_JUDGED mixes them into the people's.

Agreement is measured, as the MT-Bench paper measures human–GPT-4 agreement, on the items both
have judged: a prompt (the same user messages) and a pair of models. Each person's vote on such
an item is one comparison with the judge's verdict on it, which combines the judge's two orders:
their verdict when they agree, a tie when they disagree (the paper counts an inconsistent pair as
a tie), the one verdict when the other order is invalid. "Both are bad" is a tie.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from arena import ratings
from arena.agreement import TIE, agreement_report
from arena.leaderboard import Counts, leaderboard_snapshot
from arena.models import JUDGE_MODEL_PREFIX, Battle, ChatModel, Turn, Vote
from arena.verdicts import verdict_swapped

_Key = tuple[tuple[str, ...], int, int]  # (the user's messages, lower model id, higher model id)


def judges_known() -> list[str]:
    """Every judge model that has voted ("model:<name>"), in name order."""
    return sorted(
        Battle.objects.filter(judge__startswith=JUDGE_MODEL_PREFIX, vote__isnull=False)
        .values_list("judge", flat=True).distinct()
    )


def judge_counts(judge: str) -> Counts:
    """The judge's votes as the leaderboard's counts, its online Elo in vote order."""
    rows = list(
        Vote.objects.filter(battle__judge=judge, battle__anonymous=True)
        .order_by("created_at", "id").values_list("battle__model_a_id", "battle__model_b_id", "outcome")
    )
    ids = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {model_id: i for i, model_id in enumerate(ids)}
    a = np.array([index[r[0]] for r in rows], dtype=np.int64)
    b = np.array([index[r[1]] for r in rows], dtype=np.int64)
    o = np.array([Vote.Outcome(r[2]).code for r in rows], dtype=np.int64)
    counts = ratings.counts_from_battles(a, b, o, len(ids)).astype(np.float64)
    names = dict(ChatModel.objects.filter(id__in=ids).values_list("id", "name"))
    elo = ratings.elo_online(a, b, o, len(ids)) if ids else np.zeros(0)
    return Counts(ids, [names[i] for i in ids], counts, counts.copy(), counts.copy(), elo)


def _oriented(verdict: str, model_a: int, model_b: int) -> str:
    """A verdict seen with the lower model id as A; "both are bad" is a tie."""
    verdict = TIE if verdict == Vote.Outcome.BOTHBAD else verdict
    return verdict if model_a < model_b else verdict_swapped(verdict)


def _prompts_of(battle_ids: list) -> dict:
    turns: dict = defaultdict(list)
    for battle_id, prompt in Turn.objects.filter(battle_id__in=battle_ids).order_by("index").values_list(
        "battle_id", "prompt"
    ):
        turns[battle_id].append(prompt)
    return {battle_id: tuple(prompts) for battle_id, prompts in turns.items()}


def judge_items(judge: str) -> dict[_Key, str]:
    """The judge's verdict on each (prompt, pair) it judged, both orders combined."""
    votes = list(Vote.objects.filter(battle__judge=judge).values_list(
        "battle_id", "battle__model_a_id", "battle__model_b_id", "outcome"
    ))
    prompts = _prompts_of([v[0] for v in votes])
    seen: dict[_Key, set[str]] = defaultdict(set)
    for battle_id, a, b, outcome in votes:
        seen[(prompts.get(battle_id, ()), min(a, b), max(a, b))].add(_oriented(outcome, a, b))
    return {key: verdicts.pop() if len(verdicts) == 1 else TIE for key, verdicts in seen.items()}


def agreement_with_humans(judge: str) -> dict:
    """{"with_ties", "without_ties"} (items, agreement, kappa) over people's votes on what the judge judged."""
    items = judge_items(judge)
    first_prompts = {key[0][0] for key in items if key[0]}
    human = list(
        Vote.objects.countable().exclude(battle__judge__startswith=JUDGE_MODEL_PREFIX)
        .filter(battle__turns__index=0, battle__turns__prompt__in=first_prompts)
        .values_list("battle_id", "battle__model_a_id", "battle__model_b_id", "outcome")
    ) if first_prompts else []
    prompts = _prompts_of([v[0] for v in human])
    pairs = []
    for battle_id, a, b, outcome in human:
        judged = items.get((prompts.get(battle_id, ()), min(a, b), max(a, b)))
        if judged is not None:
            pairs.append((_oriented(outcome, a, b), judged))
    return agreement_report(pairs)


def judge_leaderboard(judge: str) -> dict:
    """The leaderboard payload of the judge's votes, with its agreement with people's votes."""
    payload = leaderboard_snapshot(loaded=judge_counts(judge), cached_intervals=False)
    payload["judge"] = judge
    payload["agreement"] = agreement_with_humans(judge)
    return payload
