"""Screening votes for rigging as they are counted (ARENA_VOTE_DETECTION): flags, never drops.

A flagged vote waits in the admin's review list (reasons shown) and stays out of the ratings
until an admin includes it (unless ARENA_RATINGS_INCLUDE_FLAGGED). The voter is never told.
Runs inside the counting transaction, on the batch it is about to count, so the vote path itself
does no detection work at all.
"""

from __future__ import annotations

from typing import NamedTuple

from django.conf import settings
from django.db.models import Q

from arena import detection, ratings
from arena.leaderboard import counts_load
from arena.models import Reply, Vote

TOO_FAST = "too_fast"
LOYAL = "loyal"  # "loyal:<model id>"


def voter_key(user_id: int | None, client_id: str) -> str:
    """Whom the likelihood test follows: the account where there is one, else the session."""
    return f"u{user_id}" if user_id is not None else f"c{client_id}"


class Screened(NamedTuple):
    held: set[int]  # the ids among those screened now waiting for review
    recount: bool  # votes already counted were flagged: they leave the ratings only by a recount


def votes_screen(*, vote_ids: list[int]) -> Screened:
    """Flag what detection finds among these (uncounted) votes and their voters' past votes."""
    if not vote_ids:
        return Screened(set(), False)
    reasons: dict[int, set[str]] = {}
    for vote_id in _too_fast(vote_ids):
        reasons.setdefault(vote_id, set()).add(TOO_FAST)
    for vote_id, model_id in _loyal(vote_ids).items():
        reasons.setdefault(vote_id, set()).add(f"{LOYAL}:{model_id}")
    if not reasons:
        return Screened(set(), False)
    recount = False
    pending = set()
    # Only votes no admin has decided on: a decision stands.
    for vote in Vote.objects.filter(id__in=list(reasons)).exclude(
        review__in=[Vote.Review.INCLUDED, Vote.Review.EXCLUDED]
    ):
        new = sorted(set(vote.flag_reasons) | reasons[vote.id])
        if new != vote.flag_reasons or vote.review != Vote.Review.PENDING:
            recount |= vote.counted
            Vote.objects.filter(id=vote.id).update(flag_reasons=new, review=Vote.Review.PENDING)
        pending.add(vote.id)
    return Screened(pending & set(vote_ids), recount)


def _too_fast(vote_ids: list[int]) -> list[int]:
    """Votes cast sooner than ARENA_VOTE_MIN_SECONDS after the slower reply of the last turn ended."""
    minimum = settings.ARENA_VOTE_MIN_SECONDS
    if minimum <= 0:
        return []
    cast_at = {battle_id: (vote_id, created) for vote_id, battle_id, created in Vote.objects.filter(
        id__in=vote_ids).values_list("id", "battle_id", "created_at")}
    last: dict = {}
    # The current attempt of each battle's last turn: the replies the vote judged.
    for battle_id, index, turn_attempt, attempt, finished in Reply.objects.filter(
        turn__battle_id__in=list(cast_at)
    ).values_list("turn__battle_id", "turn__index", "turn__attempt", "attempt", "finished_at"):
        if attempt != turn_attempt or finished is None:
            continue
        key = (index, finished)
        if battle_id not in last or key > last[battle_id]:
            last[battle_id] = key
    out = []
    for battle_id, (vote_id, created) in cast_at.items():
        if battle_id in last:
            seconds = (created - last[battle_id][1]).total_seconds()
            if detection.too_fast(seconds, minimum):
                out.append(vote_id)
    return out


def _loyal(vote_ids: list[int]) -> dict[int, int]:
    """Vote id → favoured model, over the whole history of the voters of `vote_ids`."""
    voters = list(Vote.objects.filter(id__in=vote_ids).values_list("user_id", "client_id"))
    accounts = {u for u, _ in voters if u is not None}
    sessions = {c for u, c in voters if u is None}
    history = (
        Vote.objects.filter(Q(user_id__in=accounts) | Q(user__isnull=True, client_id__in=sessions))
        .filter(battle__anonymous=True).exclude(review=Vote.Review.EXCLUDED)
        .order_by("id")
        .values_list("id", "user_id", "client_id", "battle__model_a_id", "battle__model_b_id", "outcome")
    )
    cast = [
        detection.CastVote(vote_id, voter_key(user, client), a, b, Vote.Outcome(outcome).code)
        for vote_id, user, client, a, b, outcome in history
    ]
    rated, tie_rate = _ratings_now()
    return detection.loyal_votes(cast, rated, tie_rate=tie_rate)


def _ratings_now() -> tuple[dict[int, float], float]:
    """The leaderboard's point ratings by model id, and its share of tie and both-bad votes."""
    loaded = counts_load()
    if not loaded.ids:
        return {}, detection.DEFAULT_TIE_RATE
    fitted = ratings.fit_bt(loaded.counts)
    total = loaded.counts.sum()
    ties = loaded.counts[:, :, [ratings.TIE, ratings.BOTH_BAD]].sum()
    by_id = {model_id: float(r) for model_id, r in zip(loaded.ids, fitted, strict=True) if r == r}
    return by_id, float(ties / total) if total else detection.DEFAULT_TIE_RATE
