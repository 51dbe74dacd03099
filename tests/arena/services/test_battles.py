"""Battles and turns (arena.services.battles) on PostgreSQL."""

import pytest
from django.test import override_settings

from arena import services
from arena.errors import ArenaError, NoModelsAvailable, NotAllowed, NotFound
from arena.models import Battle, ChatModel, Reply, Vote
from tests.finished import turn_finish

pytestmark = pytest.mark.django_db


def test_it_pairs_two_different_enabled_models(chat_models, alice):
    seen = set()
    for _ in range(20):
        turn = services.battle_start(client=alice, text="Hello")
        battle = turn.battle
        assert battle.model_a_id != battle.model_b_id
        seen.add(battle.model_a.name)
        assert {r.side for r in turn.replies.all()} == {"a", "b"}
        assert all(r.status == Reply.Status.QUEUED for r in turn.replies.all())
        Battle.objects.filter(id=battle.id).delete()
        from django.core.cache import cache

        cache.clear()
    assert seen == {"zephyr-7b-beta", "mistral-7b-instruct"}  # sides are randomised

@pytest.mark.parametrize("policy", ["uniform", "weighted", "adaptive"])
@override_settings(ARENA_BATTLES_PER_MINUTE=1000)
def test_it_never_draws_disabled_unhealthy_or_zero_weight_models(chat_models, alice, devserver_urls, policy):
    ChatModel.objects.create(name="third", endpoint_url=devserver_urls[1], template="chatml")
    ChatModel.objects.create(name="off", endpoint_url=devserver_urls[0], enabled=False)
    ChatModel.objects.create(name="sick", endpoint_url=devserver_urls[0], healthy=False)
    ChatModel.objects.create(name="zero", endpoint_url=devserver_urls[0], weight=0)
    seen = set()
    with override_settings(ARENA_SAMPLING=policy):
        for _ in range(40):
            battle = services.battle_start(client=alice, text="Hello").battle
            assert battle.model_a_id != battle.model_b_id
            seen |= {battle.model_a.name, battle.model_b.name}
    assert seen == {"zephyr-7b-beta", "mistral-7b-instruct", "third"}


@pytest.mark.parametrize("policy", ["uniform", "weighted", "adaptive"])
@override_settings(ARENA_BATTLES_PER_MINUTE=1000)
def test_each_battle_records_the_chance_its_pair_was_drawn_with(chat_models, alice, devserver_urls, policy):
    from arena import sampling
    from arena.selectors import models_drawable, pairing_current

    ChatModel.objects.create(name="third", endpoint_url=devserver_urls[1], template="chatml", weight=3)
    with override_settings(ARENA_SAMPLING=policy):
        for _ in range(10):
            battle = services.battle_start(client=alice, text="Hello").battle
            candidates = models_drawable()
            state = pairing_current()
            ids = [m.id for m in candidates]
            weights = sampling.boosted_weights([m.weight for m in candidates], [0] * 3, threshold=1)
            p = sampling.pair_probabilities(policy, weights, state.gains_for(ids))
            i, j = sorted((ids.index(battle.model_a_id), ids.index(battle.model_b_id)))
            assert battle.draw_probability == pytest.approx(p[i, j])
            assert battle.draw_pairs == 3

def test_it_says_so_when_fewer_than_two_models_are_available(chat_models, alice):
    ChatModel.objects.filter(name="zephyr-7b-beta").update(healthy=False)
    with pytest.raises(NoModelsAvailable):
        services.battle_start(client=alice, text="Hello")
    assert Battle.objects.count() == 0

@pytest.mark.parametrize("text", ["", "   ", None, 42, "x" * 30_001])
def test_it_rejects_bad_prompts_without_creating_anything(chat_models, alice, text):
    with pytest.raises(ArenaError):
        services.battle_start(client=alice, text=text)
    assert Battle.objects.count() == 0

def test_a_second_turn_waits_for_the_first_and_sees_the_conversation(chat_models, alice):
    turn = services.battle_start(client=alice, text="First question")
    with pytest.raises(NotAllowed):
        services.turn_submit(battle_id=turn.battle_id, client=alice, text="Too soon")
    turn_finish(turn, text_a="A says one", text_b="B says one")
    second = services.turn_submit(battle_id=turn.battle_id, client=alice, text="Second question")
    assert second.index == 1
    reply_a = second.replies.get(side="a")
    job = services.reply_claim(reply_id=reply_a.id)
    assert [m["content"] for m in job.request.messages] == ["First question", "A says one", "Second question"]
    assert job.request.endpoint_url == reply_a.model.endpoint_url
    assert services.reply_claim(reply_id=reply_a.id) is None  # claimed once only

def test_a_later_turn_sees_each_sides_current_answers_in_order(chat_models, alice):
    from django.core.cache import cache

    first = services.battle_start(client=alice, text="Q1")
    turn_finish(first, text_a="A1 old", text_b="B1 old")
    first = services.turn_regenerate(battle_id=first.battle_id, client=alice)  # a second attempt
    turn_finish(first, text_a="A1", text_b="B1")
    second = services.turn_submit(battle_id=first.battle_id, client=alice, text="Q2")
    turn_finish(second, text_a="A2", text_b="B2")
    cache.clear()  # the turn rate limit
    third = services.turn_submit(battle_id=first.battle_id, client=alice, text="Q3")
    job_b = services.reply_claim(reply_id=third.replies.get(side="b").id)
    assert [m["content"] for m in job_b.request.messages] == ["Q1", "B1", "Q2", "B2", "Q3"]

def test_only_the_owner_can_use_a_battle(chat_models, alice, mallory):
    turn = services.battle_start(client=alice, text="Mine")
    turn_finish(turn)
    for call in (
        lambda: services.turn_submit(battle_id=turn.battle_id, client=mallory, text="hi"),
        lambda: services.turn_regenerate(battle_id=turn.battle_id, client=mallory),
        lambda: services.vote_cast(battle_id=turn.battle_id, client=mallory, outcome="a"),
    ):
        with pytest.raises(NotFound):
            call()
    assert not Vote.objects.exists()

def test_no_turn_or_regenerate_after_the_vote(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    turn_finish(turn)
    services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="tie")
    with pytest.raises(NotAllowed):
        services.turn_submit(battle_id=turn.battle_id, client=alice, text="more")
    with pytest.raises(NotAllowed):
        services.turn_regenerate(battle_id=turn.battle_id, client=alice)

def test_regenerate_reruns_both_sides_as_a_new_attempt(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    turn_finish(turn)
    turn = services.turn_regenerate(battle_id=turn.battle_id, client=alice)
    assert turn.attempt == 1
    current = turn.replies.filter(attempt=1)
    assert {r.side for r in current} == {"a", "b"} and all(r.status == Reply.Status.QUEUED for r in current)
    assert turn.replies.filter(attempt=0).count() == 2  # old answers kept for audit

def test_retrying_one_failed_side_keeps_the_other_answer(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    a, b = turn.replies.get(side="a"), turn.replies.get(side="b")
    Reply.objects.filter(id__in=[a.id, b.id]).update(status=Reply.Status.STREAMING)
    services.reply_finish(reply_id=a.id, text="", failure="The model server is overloaded")
    services.reply_finish(reply_id=b.id, text="Good answer")
    turn = services.turn_regenerate(battle_id=turn.battle_id, client=alice, side="a")
    current = {r.side: r for r in turn.replies.filter(attempt=turn.attempt)}
    assert current["a"].status == Reply.Status.QUEUED
    assert current["b"].status == Reply.Status.DONE and current["b"].text == "Good answer"

@override_settings(ARENA_MAX_TURNS=1)
def test_turns_per_battle_are_limited(chat_models, alice):
    turn = services.battle_start(client=alice, text="1")
    turn_finish(turn)
    with pytest.raises(NotAllowed, match="at most 1 turns"):
        services.turn_submit(battle_id=turn.battle_id, client=alice, text="2")


def test_model_changes_apply_to_the_next_battle_without_restart(chat_models, alice):
    from arena import services

    ChatModel.objects.filter(name="zephyr-7b-beta").update(enabled=False)
    with pytest.raises(Exception, match="Not enough models"):
        services.battle_start(client=alice, text="hi")
    ChatModel.objects.filter(name="zephyr-7b-beta").update(enabled=True)
    assert services.battle_start(client=alice, text="hi").battle_id
