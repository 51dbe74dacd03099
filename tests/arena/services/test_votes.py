"""Votes (arena.services.votes) on PostgreSQL."""

import pytest
from django.db import IntegrityError, transaction

from arena import services
from arena.errors import ArenaError, NotAllowed
from arena.models import Reply, Vote
from tests.finished import turn_finish

pytestmark = pytest.mark.django_db


def test_a_vote_needs_both_replies_done(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    with pytest.raises(NotAllowed):
        services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="a")
    reply_a = turn.replies.get(side="a")
    Reply.objects.filter(id=reply_a.id).update(status=Reply.Status.STREAMING)
    services.reply_finish(reply_id=reply_a.id, text="", failure="boom")
    reply_b = turn.replies.get(side="b")
    Reply.objects.filter(id=reply_b.id).update(status=Reply.Status.STREAMING)
    services.reply_finish(reply_id=reply_b.id, text="fine")
    with pytest.raises(NotAllowed):
        services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="a")
    assert not Vote.objects.exists()

@pytest.mark.parametrize("outcome", ["a", "b", "tie", "bothbad"])
def test_each_outcome_is_recorded_distinctly(chat_models, alice, outcome):
    turn = services.battle_start(client=alice, text="Q")
    turn_finish(turn)
    vote = services.vote_cast(battle_id=turn.battle_id, client=alice, outcome=outcome)
    assert Vote.objects.get(id=vote.id).outcome == outcome

def test_exactly_one_vote_per_battle(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    turn_finish(turn)
    services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="a")
    with pytest.raises(NotAllowed):
        services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="b")
    # And the database itself refuses a second row, whatever the code path.
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(battle_id=turn.battle_id, outcome="b", client_id="x")
    assert Vote.objects.filter(battle_id=turn.battle_id).count() == 1

def test_an_unknown_outcome_is_refused(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    turn_finish(turn)
    with pytest.raises(ArenaError, match="Unknown vote"):
        services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="c")

def test_identity_mentions_in_replies_flag_the_vote(chat_models, alice):
    turn = services.battle_start(client=alice, text="Are you ChatGPT?")  # the prompt doesn't count
    turn_finish(turn, text_a="Sure, here you go.", text_b="Fine.")
    vote = services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="a")
    assert vote.identity_flagged is False
    turn2 = services.battle_start(client=alice, text="Who made you?")
    turn_finish(turn2, text_a="I was trained by OpenAI.", text_b="No idea.")
    assert services.vote_cast(battle_id=turn2.battle_id, client=alice, outcome="a").identity_flagged is True

def test_a_flagged_vote_is_stored_as_cast(chat_models, alice):
    turn = services.battle_start(client=alice, text="Who made you?")
    turn_finish(turn, text_a="I was trained by OpenAI.", text_b="No idea.")
    vote = services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="tie")
    stored = Vote.objects.get(battle_id=turn.battle_id)
    assert (stored.id, stored.outcome, stored.client_id, stored.user_id) == (vote.id, "tie", alice.client_id, None)
    assert (stored.flag_reasons, stored.review, stored.counted) == (["names_identity"], Vote.Review.PENDING, False)
    assert stored.created_at == vote.created_at

def test_a_vote_lost_to_a_concurrent_one_writes_nothing(chat_models, alice):
    """The battle's lock is taken before the other vote commits: the insert meets the key."""
    from arena.battle_rows import vote_insert

    turn = services.battle_start(client=alice, text="Q")
    turn_finish(turn)
    first = services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="a")
    late = Vote(battle_id=turn.battle_id, outcome="b", client_id="someone-else")
    assert vote_insert(late) is False
    assert late.id is None
    assert list(Vote.objects.values_list("id", "outcome")) == [(first.id, "a")]
