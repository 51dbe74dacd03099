"""Replies as the generation task drives them (arena.services.replies) on PostgreSQL."""
from datetime import timedelta

import pytest

from arena import services
from arena.live import live_redis
from arena.models import Reply
from arena.services import replies
from tests.finished import turn_finish

pytestmark = pytest.mark.django_db


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
        turn_finish(turn)
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

        def finish(reply_id, barrier=barrier):
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
