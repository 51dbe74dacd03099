"""Battle, turn, reply and vote services on PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from arena import services
from arena.live import live_redis, model_failures_key
from arena.services import replies
from arena.errors import ArenaError, NoModelsAvailable, NotAllowed, NotFound, RateLimited
from arena.models import Battle, ChatModel, Reply, Turn, Vote

pytestmark = pytest.mark.django_db


def finish_turn(turn: Turn, text_a="Answer A", text_b="Answer B"):
    for reply in turn.replies.filter(attempt=turn.attempt):
        Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
        services.reply_finish(reply_id=reply.id, text=text_a if reply.side == "a" else text_b, token_count=3)


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


def test_it_never_draws_disabled_unhealthy_or_zero_weight_models(chat_models, alice, devserver_urls):
    ChatModel.objects.create(name="off", endpoint_url=devserver_urls[0], enabled=False)
    ChatModel.objects.create(name="sick", endpoint_url=devserver_urls[0], healthy=False)
    ChatModel.objects.create(name="zero", endpoint_url=devserver_urls[0], weight=0)
    for _ in range(10):
        battle = services.battle_start(client=alice, text="Hello").battle
        assert {battle.model_a.name, battle.model_b.name} == {"zephyr-7b-beta", "mistral-7b-instruct"}


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
    finish_turn(turn, text_a="A says one", text_b="B says one")
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
    finish_turn(first, text_a="A1 old", text_b="B1 old")
    first = services.turn_regenerate(battle_id=first.battle_id, client=alice)  # a second attempt
    finish_turn(first, text_a="A1", text_b="B1")
    second = services.turn_submit(battle_id=first.battle_id, client=alice, text="Q2")
    finish_turn(second, text_a="A2", text_b="B2")
    cache.clear()  # the turn rate limit
    third = services.turn_submit(battle_id=first.battle_id, client=alice, text="Q3")
    job_b = services.reply_claim(reply_id=third.replies.get(side="b").id)
    assert [m["content"] for m in job_b.request.messages] == ["Q1", "B1", "Q2", "B2", "Q3"]


def test_only_the_owner_can_use_a_battle(chat_models, alice, mallory):
    turn = services.battle_start(client=alice, text="Mine")
    finish_turn(turn)
    for call in (
        lambda: services.turn_submit(battle_id=turn.battle_id, client=mallory, text="hi"),
        lambda: services.turn_regenerate(battle_id=turn.battle_id, client=mallory),
        lambda: services.vote_cast(battle_id=turn.battle_id, client=mallory, outcome="a"),
    ):
        with pytest.raises(NotFound):
            call()
    assert not Vote.objects.exists()


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
    finish_turn(turn)
    vote = services.vote_cast(battle_id=turn.battle_id, client=alice, outcome=outcome)
    assert Vote.objects.get(id=vote.id).outcome == outcome


def test_exactly_one_vote_per_battle(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    finish_turn(turn)
    services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="a")
    with pytest.raises(NotAllowed):
        services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="b")
    # And the database itself refuses a second row, whatever the code path.
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(battle_id=turn.battle_id, outcome="b", client_id="x")
    assert Vote.objects.filter(battle_id=turn.battle_id).count() == 1


def test_an_unknown_outcome_is_refused(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    finish_turn(turn)
    with pytest.raises(ArenaError, match="Unknown vote"):
        services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="c")


def test_no_turn_or_regenerate_after_the_vote(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    finish_turn(turn)
    services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="tie")
    with pytest.raises(NotAllowed):
        services.turn_submit(battle_id=turn.battle_id, client=alice, text="more")
    with pytest.raises(NotAllowed):
        services.turn_regenerate(battle_id=turn.battle_id, client=alice)


def test_regenerate_reruns_both_sides_as_a_new_attempt(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    finish_turn(turn)
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


def test_reply_finish_stores_once(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    reply = turn.replies.get(side="a")
    assert services.reply_finish(reply_id=reply.id, text="x") is False  # not streaming yet
    Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
    assert services.reply_finish(reply_id=reply.id, text="first", token_count=1, ttft_ms=5, duration_ms=9) is True
    assert services.reply_finish(reply_id=reply.id, text="second") is False
    reply.refresh_from_db()
    assert (reply.text, reply.status, reply.ttft_ms, reply.duration_ms) == ("first", "done", 5, 9)


def test_the_sweep_fails_replies_no_worker_will_finish(chat_models, alice):
    from django.utils import timezone

    turn = services.battle_start(client=alice, text="Q")
    a, b = turn.replies.get(side="a"), turn.replies.get(side="b")
    now = timezone.now()
    assert services.replies_sweep(now=now) == 0  # fresh replies are left alone
    # a: a worker took it and died (no heartbeat); b: a worker is streaming it (heartbeat alive).
    job_a, job_b = services.reply_claim(reply_id=a.id), services.reply_claim(reply_id=b.id)
    Reply.objects.filter(id__in=[a.id, b.id]).update(started_at=now - timedelta(minutes=1))
    live_redis().set(job_b.keys.heartbeat, 1, ex=30)
    assert job_a.keys.heartbeat != job_b.keys.heartbeat
    assert services.replies_sweep(now=now) == 1
    a.refresh_from_db(), b.refresh_from_db()
    assert a.status == "failed" and "worker" in a.failure_reason and "Regenerate" in a.failure_reason
    assert b.status == "streaming"
    live_redis().delete(job_b.keys.heartbeat)


def test_the_sweep_fails_replies_nobody_picked_up(chat_models, alice):
    from django.utils import timezone

    turn = services.battle_start(client=alice, text="Q")
    later = timezone.now() + timedelta(seconds=121)
    assert services.replies_sweep(now=later) == 2
    assert set(turn.replies.values_list("status", flat=True)) == {"failed"}
    assert "No worker" in turn.replies.first().failure_reason


def test_repeated_generation_failures_mark_a_model_unhealthy_until_the_window_passes(chat_models):
    model = chat_models[0]
    assert services.model_failure_record(model_id=model.id, error="overloaded") is False
    assert services.model_failure_record(model_id=model.id, error="overloaded") is False
    assert services.model_failure_record(model_id=model.id, error="overloaded") is True
    model.refresh_from_db()
    assert model.healthy is False and "overloaded" in model.last_error
    services.model_health_record(model_id=model.id, healthy=True)  # /health alone doesn't clear it
    model.refresh_from_db()
    assert model.healthy is False
    live_redis().delete(model_failures_key(model.id))  # the window passed
    services.model_health_record(model_id=model.id, healthy=True, info={"model_id": "z"})
    model.refresh_from_db()
    assert model.healthy is True and model.server_info == {"model_id": "z"}


def test_identity_mentions_in_replies_flag_the_vote(chat_models, alice):
    turn = services.battle_start(client=alice, text="Are you ChatGPT?")  # the prompt doesn't count
    finish_turn(turn, text_a="Sure, here you go.", text_b="Fine.")
    vote = services.vote_cast(battle_id=turn.battle_id, client=alice, outcome="a")
    assert vote.identity_flagged is False
    turn2 = services.battle_start(client=alice, text="Who made you?")
    finish_turn(turn2, text_a="I was trained by OpenAI.", text_b="No idea.")
    assert services.vote_cast(battle_id=turn2.battle_id, client=alice, outcome="a").identity_flagged is True


@override_settings(ARENA_BATTLES_PER_MINUTE=2)
def test_battles_per_minute_are_limited(chat_models, alice):
    services.battle_start(client=alice, text="1")
    services.battle_start(client=alice, text="2")
    with pytest.raises(RateLimited):
        services.battle_start(client=alice, text="3")


@override_settings(ARENA_MAX_TURNS=1)
def test_turns_per_battle_are_limited(chat_models, alice):
    turn = services.battle_start(client=alice, text="1")
    finish_turn(turn)
    with pytest.raises(NotAllowed, match="at most 1 turns"):
        services.turn_submit(battle_id=turn.battle_id, client=alice, text="2")


def test_a_reply_with_characters_postgres_cannot_store_is_still_stored(chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    reply = turn.replies.get(side="a")
    Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
    assert services.reply_finish(reply_id=reply.id, text="a\x00b\ud800c") is True
    reply.refresh_from_db()
    assert reply.status == "done" and reply.text == "ab?c"


def test_a_failure_s_kind_is_stored_shown_and_carried_to_the_next_attempt(
    chat_models, alice, monkeypatch, django_capture_on_commit_callbacks
):
    from arena.selectors import battle_state_for_client

    published = []
    monkeypatch.setattr(replies, "group_publish", lambda group, event: published.append(event))
    turn = services.battle_start(client=alice, text="Q")
    a, b = (turn.replies.get(side=s) for s in "ab")
    Reply.objects.filter(id__in=[a.id, b.id]).update(status=Reply.Status.STREAMING)
    with django_capture_on_commit_callbacks(execute=True):
        services.reply_finish(reply_id=a.id, text="", failure="Down.", failure_kind="unavailable")
        services.reply_finish(reply_id=b.id, text="", failure="Too long.", failure_kind="too_long")
    assert Reply.objects.get(id=b.id).failure_kind == "too_long"
    assert [(e["failure_kind"], e["retryable"]) for e in published] == [("unavailable", True), ("too_long", False)]
    sides = battle_state_for_client(battle_id=turn.battle_id, client=alice)["turns"][-1]["sides"]
    assert (sides["a"]["failure_kind"], sides["a"]["retryable"]) == ("unavailable", True)
    assert (sides["b"]["failure_kind"], sides["b"]["retryable"]) == ("too_long", False)

    # Retrying side A copies side B forward with its kind: the page still knows B can't be retried.
    services.turn_regenerate(battle_id=turn.battle_id, client=alice, side="a")
    carried = Reply.objects.get(turn=turn, side="b", attempt=1)
    assert carried.status == Reply.Status.FAILED and carried.failure_kind == "too_long"
    # A reply that ends well stores no kind.
    fresh = Reply.objects.get(turn=turn, side="a", attempt=1)
    Reply.objects.filter(id=fresh.id).update(status=Reply.Status.STREAMING)
    services.reply_finish(reply_id=fresh.id, text="Fine", failure_kind="ignored")
    assert Reply.objects.get(id=fresh.id).failure_kind == ""


def test_the_second_side_to_finish_says_the_battle_may_go_on(
    chat_models, alice, monkeypatch, django_capture_on_commit_callbacks
):
    published = []
    monkeypatch.setattr(replies, "group_publish", lambda group, event: published.append(event))
    turn = services.battle_start(client=alice, text="Q")
    with django_capture_on_commit_callbacks(execute=True):
        finish_turn(turn)
    first, second = (event["controls"] for event in published)
    assert not first["may_vote"] and not first["may_send"]
    assert first["hint"].startswith("Both models are still answering")
    assert second == {"may_send": True, "may_vote": True, "may_regenerate": True, "may_retry": [], "hint": ""}


@pytest.mark.django_db(transaction=True)
def test_two_sides_finishing_at_once_still_open_the_vote(chat_models, alice, monkeypatch):
    """Each finish locks the battle first, so the later one sees the earlier one's reply."""
    import threading

    from django.db import connection

    published = []
    monkeypatch.setattr(replies, "group_publish", lambda group, event: published.append(event))
    for _ in range(5):
        published.clear()
        turn = services.battle_start(client=alice, text="Q")
        ids = list(turn.replies.values_list("id", flat=True))
        Reply.objects.filter(id__in=ids).update(status=Reply.Status.STREAMING)
        barrier = threading.Barrier(2)

        def finish(reply_id):
            try:
                barrier.wait()
                services.reply_finish(reply_id=reply_id, text="Answer", token_count=1)
            finally:
                connection.close()

        threads = [threading.Thread(target=finish, args=(reply_id,)) for reply_id in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(event["controls"]["may_vote"] for event in published) == [False, True]
