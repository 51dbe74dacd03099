"""Turns finished the way a worker finishes them, for tests that need no model."""

from arena import services
from arena.models import Reply, Turn


def finish_turn(turn: Turn, text_a="Answer A", text_b="Answer B"):
    for reply in turn.replies.filter(attempt=turn.attempt):
        Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
        services.reply_finish(reply_id=reply.id, text=text_a if reply.side == "a" else text_b, token_count=3)


def vote_uncounted(client, outcome, text_a="Answer A", text_b="Answer B"):
    turn = services.battle_start(client=client, text="Q")
    finish_turn(turn, text_a=text_a, text_b=text_b)
    return services.vote_cast(battle_id=turn.battle_id, client=client, outcome=outcome), turn.battle


def vote(client, outcome, text_a="Answer A", text_b="Answer B"):
    """A vote, then the counting the live refresh task does."""
    cast = vote_uncounted(client, outcome, text_a=text_a, text_b=text_b)
    services.votes_count_pending()
    return cast
