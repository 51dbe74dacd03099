"""Battles finished the way a worker finishes them, and voted on, for tests that need no model."""

from __future__ import annotations

from arena import services
from arena.clients import ClientIdentity
from arena.models import Reply, Turn


def turn_finish(turn: Turn, text_a: str = "Answer A", text_b: str = "Answer B", failure: dict | None = None) -> None:
    """Finish the current attempt of both sides as a worker would (`failure`: side -> reason)."""
    failure = failure or {}
    for reply in turn.replies.filter(attempt=Turn.objects.get(id=turn.id).attempt):
        Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
        text = text_a if reply.side == "a" else text_b
        services.reply_finish(reply_id=reply.id, text=text, token_count=3, failure=failure.get(reply.side))


def battle_finished(client: ClientIdentity, text: str = "Question", **kwargs) -> Turn:
    turn = services.battle_start(client=client, text=text)
    turn_finish(turn, **kwargs)
    return turn


def vote_uncounted(client, outcome, text_a="Answer A", text_b="Answer B"):
    turn = services.battle_start(client=client, text="Q")
    turn_finish(turn, text_a=text_a, text_b=text_b)
    return services.vote_cast(battle_id=turn.battle_id, client=client, outcome=outcome), turn.battle


def vote(client, outcome, text_a="Answer A", text_b="Answer B"):
    """A vote, then the counting the live refresh task does and the battle's traits, which the
    counting queues for a worker once committed."""
    cast = vote_uncounted(client, outcome, text_a=text_a, text_b=text_b)
    services.votes_count_pending()
    services.battle_traits_store(battle_ids=[cast[1].id])
    return cast
