"""Live text of streaming replies: a reply never shows text another reply left in Redis."""

import pytest
from django.db import connection

from arena import services
from arena.live import live_redis, live_text
from arena.selectors import battle_state_for_client

pytestmark = pytest.mark.django_db


def _reply_ids_restart_at(reply_id: int) -> None:
    """What a restored backup or a new database does to the ids: the next reply gets `reply_id` again."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('arena_reply', 'id'), %s, false)", [reply_id])


def test_a_new_reply_with_an_old_reply_s_id_shows_none_of_its_text(chat_models, alice):
    old = services.battle_start(client=alice, text="First run")
    old_reply = old.replies.get(side="a")
    old_job = services.reply_claim(reply_id=old_reply.id)
    live_redis().append(old_job.keys.text, "Tokens of the earlier installation")
    live_redis().set(old_job.keys.heartbeat, 1, ex=30)
    old.battle.delete()
    _reply_ids_restart_at(old_reply.id)

    new = services.battle_start(client=alice, text="Second run")
    new_reply = new.replies.get(side="a")
    assert new_reply.id == old_reply.id
    new_job = services.reply_claim(reply_id=new_reply.id)  # streaming, nothing received yet
    assert new_job.keys.text != old_job.keys.text and new_job.keys.heartbeat != old_job.keys.heartbeat

    state = battle_state_for_client(battle_id=new.battle_id, client=alice, live_text=live_text)
    assert state["turns"][0]["sides"]["a"]["text"] == ""
    live_redis().delete(old_job.keys.text, old_job.keys.heartbeat)


def test_a_queued_reply_reads_no_live_text(chat_models, alice):
    turn = services.battle_start(client=alice, text="Queued")
    read = []
    state = battle_state_for_client(
        battle_id=turn.battle_id, client=alice, live_text=lambda stream_id: read.append(stream_id) or "x"
    )
    assert read == [] and state["turns"][0]["sides"]["a"]["text"] == ""


def test_each_claim_of_a_reply_streams_under_keys_of_its_own(chat_models, alice):
    turn = services.battle_start(client=alice, text="Retried")
    reply = turn.replies.get(side="a")
    first = services.reply_claim(reply_id=reply.id)
    services.reply_requeue(reply_id=reply.id)  # a transient failure before any text
    second = services.reply_claim(reply_id=reply.id)
    assert first.keys != second.keys
