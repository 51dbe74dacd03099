"""Votes: the one vote of a battle, and deleting votes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction

from arena import events, metrics
from arena.battle_rows import vote_insert
from arena.clients import ClientIdentity
from arena.errors import ArenaError, NotAllowed
from arena.models import Vote
from arena.publish import group_publish
from arena.rules import controls_closed, vote_refusal
from arena.selectors import battle_now, battle_replies_summary, battle_row_for_client
from arena.services.counting import leaderboard_rebuild_schedule, leaderboard_refresh_schedule
from arena.services.limits import rate_limit


@transaction.atomic
def vote_cast(
    *, battle_id: uuid.UUID | str, client: ClientIdentity, outcome: object, turn_seen: tuple[int, int] | None = None
) -> Vote:
    """Record the one vote of a battle and reveal the models; the one-to-one key forbids a second.

    `turn_seen`: the (turn index, attempt) the voter's page showed. If another tab of the battle
    has sent a follow-up or regenerated since, the vote would judge replies this page never
    showed: refused with code "stale".
    """
    if not isinstance(outcome, str) or outcome not in Vote.Outcome.values:
        raise ArenaError(f"Unknown vote {outcome!r}; use one of {', '.join(Vote.Outcome.values)}.")
    # A vote committed while this waited for the lock isn't in the joined row; the insert below
    # then fails on the one-to-one key, with the same answer.
    battle = battle_row_for_client(battle_id=battle_id, client=client, for_update=True)
    replies = battle_replies_summary(battle)
    now = battle_now(battle, summary=replies, voted=battle.voted)
    # Checked under the battle's lock, which turn_submit and turn_regenerate take too.
    if not now.voted and turn_seen is not None and replies.last_turn != turn_seen:
        raise ArenaError("The replies changed in another tab; here they are now. Read them, then vote.", code="stale")
    if refusal := vote_refusal(now):
        raise NotAllowed(refusal)
    # An account's own cap is on the votes it may have counted in a day; its office's address
    # takes ARENA_ADDRESS_SHARERS times the per-session cap.
    account = client.user_id is not None
    rate_limit(
        "vote", client, window_seconds=86_400,
        limit=settings.ARENA_ACCOUNT_VOTES_PER_DAY if account else settings.ARENA_VOTES_PER_DAY,
        address_limit=settings.ARENA_VOTES_PER_DAY * settings.ARENA_ADDRESS_SHARERS if account else None,
        message="You've reached today's vote limit; thank you, and come back tomorrow.",
    )
    flagged = replies.names_identity
    vote = Vote(
        battle_id=battle.id, outcome=outcome, client_id=client.client_id, user_id=client.user_id,
        identity_flagged=flagged, flag_reasons=["names_identity"] if flagged else [],
        review=Vote.Review.PENDING if flagged else Vote.Review.NONE,
    )
    if not vote_insert(vote):
        raise NotAllowed("This battle already has a vote.")
    # Counted in batches by the refresh task (which takes only countable votes), not here:
    # counting locks both models' rows, which would queue every vote on a popular pair.
    transaction.on_commit(leaderboard_refresh_schedule)
    transaction.on_commit(metrics.VOTES_CAST.labels(flagged=str(vote.identity_flagged).lower()).inc)
    reveal: events.BattleRevealed = {
        "type": "battle.revealed",
        "battle": str(battle.id),
        "outcome": vote.outcome,
        "model_a": battle.model_a_name,
        "model_b": battle.model_b_name,
        "controls": controls_closed(),
    }
    transaction.on_commit(lambda: group_publish(events.battle_group(battle.id), reveal))
    return vote


@transaction.atomic
def votes_delete(*, vote_ids: list[int]) -> int:
    """Delete votes and take them out of the leaderboard; returns how many were deleted.

    A counted vote is in the pair counts and moved its models' online Elo, which later votes built
    on, so only a recount removes it: a full rebuild is queued once the deletion commits.
    """
    deleted, _ = Vote.objects.filter(id__in=vote_ids).delete()
    if deleted:
        transaction.on_commit(leaderboard_rebuild_schedule)
    return deleted


@transaction.atomic
def votes_review(*, vote_ids: list[int], include: bool) -> int:
    """An admin's decision on flagged votes: included ones count, excluded ones never do. The
    leaderboard is recounted once the decision commits (a counted vote may leave it)."""
    decided = Vote.objects.filter(id__in=vote_ids).exclude(review=Vote.Review.NONE).update(
        review=Vote.Review.INCLUDED if include else Vote.Review.EXCLUDED
    )
    if decided:
        transaction.on_commit(leaderboard_rebuild_schedule)
    return decided
