"""Battles and their turns: starting one, following up, regenerating, deleting."""

from __future__ import annotations

import functools
import random
import uuid

from django.conf import settings
from django.db import transaction

from arena import queue, sampling
from arena.clients import ClientIdentity
from arena.errors import ArenaError, NoModelsAvailable, NotAllowed
from arena.models import Battle, Reply, Turn, Vote
from arena.rules import regenerate_refusal, send_refusal
from arena.selectors import battle_get_for_client, battle_now, models_drawable_weights, pairing_current
from arena.services.counting import leaderboard_rebuild_schedule
from arena.services.limits import rate_limit
from arena.text import prompt_clean

_rng = random.SystemRandom()

# A reply's own fields, which a new attempt starts afresh; everything else is copied forward.
_REPLY_FIELDS_NOT_COPIED = {"id", "turn", "attempt", "created_at", "stream_id"}


@transaction.atomic
def battle_start(*, client: ClientIdentity, text: object) -> Turn:
    """A new battle between two different drawable models (sides at random) and its first turn."""
    prompt = prompt_clean(text)
    rate_limit(
        "battle", client, limit=settings.ARENA_BATTLES_PER_MINUTE, window_seconds=60,
        message="You're starting battles too quickly; wait a minute and try again.",
    )
    candidates = models_drawable_weights()
    try:
        draw = _pair_draw(candidates)
    except ValueError:
        raise NoModelsAvailable(
            "Not enough models are available right now (at least two healthy ones are needed). "
            "Please try again later."
        ) from None
    battle = Battle.objects.create(
        model_a_id=candidates[draw.a][0], model_b_id=candidates[draw.b][0], client_id=client.client_id,
        ip_hash=client.ip_hash, draw_probability=draw.probability, draw_pairs=draw.pairs,
    )
    turn = Turn.objects.create(battle=battle, index=0, prompt=prompt)
    _replies_queue(turn, sides=("a", "b"))
    return turn


def _pair_draw(candidates: list[tuple[int, float]]) -> sampling.Draw:
    """Two of the candidates, (id, weight) each, by ARENA_SAMPLING (ValueError with fewer than two)."""
    policy = settings.ARENA_SAMPLING
    state = pairing_current()
    ids = [model_id for model_id, _ in candidates]
    weights = sampling.boosted_weights(
        [weight for _, weight in candidates], [state.votes.get(i, 0) for i in ids], settings.ARENA_NEW_MODEL_BOOST_VOTES
    )
    gains = state.gains_for(ids) if policy == "adaptive" else None
    return sampling.pair_draw(sampling.pair_probabilities(policy, weights, gains), _rng)


@transaction.atomic
def turn_submit(*, battle_id: uuid.UUID | str, client: ClientIdentity, text: object) -> Turn:
    """Add a user message to a battle and queue both sides' replies."""
    prompt = prompt_clean(text)
    battle = battle_get_for_client(battle_id=battle_id, client=client, for_update=True)
    now = battle_now(battle)
    if refusal := send_refusal(now):
        raise NotAllowed(refusal)
    rate_limit(
        "turn", client, limit=settings.ARENA_TURNS_PER_MINUTE, window_seconds=60,
        message="You're sending prompts too quickly; wait a minute and try again.",
    )
    index = 0 if now.turn_index is None else now.turn_index + 1
    turn = Turn.objects.create(battle=battle, index=index, prompt=prompt)
    _replies_queue(turn, sides=("a", "b"))
    return turn


@transaction.atomic
def turn_regenerate(*, battle_id: uuid.UUID | str, client: ClientIdentity, side: str | None = None) -> Turn:
    """Re-run the last turn: both sides, or only `side` when that side failed."""
    if side is not None and side not in ("a", "b"):
        raise ArenaError("side must be 'a' or 'b'.")
    battle = battle_get_for_client(battle_id=battle_id, client=client, for_update=True)
    if refusal := regenerate_refusal(battle_now(battle), side):
        raise NotAllowed(refusal)
    rate_limit(
        "turn", client, limit=settings.ARENA_TURNS_PER_MINUTE, window_seconds=60,
        message="You're regenerating too quickly; wait a minute and try again.",
    )
    turn = battle.turns.order_by("-index").first()
    if turn is None:  # regenerate_refusal has said so already; this keeps the type checker honest
        raise NotAllowed("Nothing to regenerate yet.")
    turn.attempt += 1
    turn.save(update_fields=["attempt"])
    if side is None:
        _replies_queue(turn, sides=("a", "b"))
    else:
        # Keep the other side's answer: copied forward into the new attempt unchanged.
        other = Reply.objects.get(turn=turn, attempt=turn.attempt - 1, side="b" if side == "a" else "a")
        _reply_copy_forward(other, attempt=turn.attempt)
        _replies_queue(turn, sides=(side,))
    return turn


def _reply_copy_forward(reply: Reply, *, attempt: int) -> Reply:
    copied = {
        field.attname: getattr(reply, field.attname)
        for field in Reply._meta.concrete_fields
        if field.name not in _REPLY_FIELDS_NOT_COPIED
    }
    return Reply.objects.create(turn_id=reply.turn_id, attempt=attempt, **copied)


def _replies_queue(turn: Turn, *, sides: tuple[str, ...]) -> None:
    battle = turn.battle
    models = {"a": battle.model_a_id, "b": battle.model_b_id}
    replies = Reply.objects.bulk_create([  # one INSERT for both sides
        Reply(turn=turn, side=side, attempt=turn.attempt, model_id=models[side]) for side in sides
    ])
    transaction.on_commit(functools.partial(queue.replies_generate_queue, [reply.id for reply in replies]))


@transaction.atomic
def battles_delete(*, battle_ids: list[uuid.UUID]) -> int:
    """Delete battles (their turns, replies and vote with them); recount if a vote went too."""
    had_votes = Vote.objects.filter(battle_id__in=battle_ids).exists()
    _, per_model = Battle.objects.filter(id__in=battle_ids).delete()
    if had_votes:
        transaction.on_commit(leaderboard_rebuild_schedule)
    return per_model.get(Battle._meta.label, 0)
