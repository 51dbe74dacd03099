"""Limits, each refused over the websocket with a code and a message a person can act on; client
addresses (X-Forwarded-For only from trusted proxies) and that no raw address is stored."""

from __future__ import annotations

import re

import pytest
import redis
from channels.db import database_sync_to_async
from django.apps import apps
from django.conf import settings
from django.test import override_settings

from arena import services
from arena.clients import client_identity, client_ip
from arena.models import Battle, Vote
from tests.finished import battle_finished, turn_finish
from tests.websockets import frames_until, identity_of, new_session_key, ws_connect, ws_join, ws_receive, ws_send

pytestmark = pytest.mark.django_db(transaction=True)


async def prompt(comm, text="Hello", battle=None) -> dict:
    await ws_send(comm, {"action": "prompt", "battle": battle, "text": text})
    return await ws_receive(comm, 10)


def assert_refused(frame: dict, code: str, words: str) -> None:
    assert frame["type"] == "error", frame
    assert frame["code"] == code, frame
    assert re.search(words, frame["message"]), frame["message"]


@override_settings(ARENA_BATTLES_PER_MINUTE=2)
async def test_battles_per_minute_per_session_and_per_address(chat_models, no_generation):
    first = await ws_connect(await new_session_key(), ip="198.51.100.7")
    second = await ws_connect(await new_session_key(), ip="198.51.100.7")  # new session, same address
    elsewhere = await ws_connect(await new_session_key(), ip="198.51.100.8")
    try:
        assert (await prompt(first))["type"] == "state"
        assert (await prompt(first))["type"] == "state"
        assert_refused(await prompt(first), "rate_limited", r"starting battles too quickly; wait a minute")
        assert_refused(await prompt(second), "rate_limited", r"too quickly")  # a fresh cookie doesn't help
        assert (await prompt(elsewhere))["type"] == "state"  # the limit is per client, not global
    finally:
        for comm in (first, second, elsewhere):
            await comm.disconnect()
    assert await database_sync_to_async(Battle.objects.count)() == 3


@override_settings(ARENA_VOTES_PER_DAY=1)
async def test_votes_per_day(chat_models, no_generation):
    key = await new_session_key()
    battles = [str((await database_sync_to_async(battle_finished)(identity_of(key))).battle_id) for _ in range(2)]
    comm = await ws_connect(key)
    try:
        await ws_join(comm, battles[0])
        await ws_send(comm, {"action": "vote", "battle": battles[0], "outcome": "a"})
        assert (await ws_receive(comm, 10))["type"] == "revealed"
        await ws_join(comm, battles[1])
        await ws_send(comm, {"action": "vote", "battle": battles[1], "outcome": "a"})
        assert_refused(await ws_receive(comm, 10), "rate_limited", r"today's vote limit")
    finally:
        await comm.disconnect()
    assert await database_sync_to_async(Vote.objects.count)() == 1


@override_settings(ARENA_PROMPT_MAX_CHARS=100)
async def test_prompt_length(chat_models, no_generation):
    comm = await ws_connect(await new_session_key())
    try:
        assert_refused(await prompt(comm, "x" * 101), "invalid", r"too long \(101 characters; the limit is 100\)")
        assert (await prompt(comm, "x" * 100))["type"] == "state"
    finally:
        await comm.disconnect()
    assert await database_sync_to_async(Battle.objects.count)() == 1


@override_settings(ARENA_MAX_TURNS=2)
async def test_turns_per_battle(chat_models, no_generation):
    key = await new_session_key()

    @database_sync_to_async
    def two_turns() -> str:
        client = identity_of(key)
        turn = battle_finished(client)
        turn_finish(services.turn_submit(battle_id=turn.battle_id, client=client, text="Second"))
        return str(turn.battle_id)

    battle_id = await two_turns()
    comm = await ws_connect(key)
    try:
        await ws_join(comm, battle_id)
        assert_refused(await prompt(comm, "Third", battle=battle_id), "not_allowed",
                       r"at most 2 turns; vote or start a new round")
    finally:
        await comm.disconnect()


@override_settings(ARENA_TURNS_PER_MINUTE=1)
async def test_prompts_and_regenerations_per_minute(chat_models, no_generation):
    key = await new_session_key()
    battle_id = str((await database_sync_to_async(battle_finished)(identity_of(key))).battle_id)
    comm = await ws_connect(key)
    try:
        await ws_join(comm, battle_id)
        await ws_send(comm, {"action": "regenerate", "battle": battle_id, "side": None})
        assert (await ws_receive(comm, 10))["type"] == "state"
        await database_sync_to_async(lambda: turn_finish(Battle.objects.get(id=battle_id).turns.get()))()
        await ws_send(comm, {"action": "regenerate", "battle": battle_id, "side": None})
        answer = (await frames_until(comm, lambda f, _: f["type"] not in ("done", "failed")))[-1]
        assert_refused(answer, "rate_limited", r"regenerating too quickly")
    finally:
        await comm.disconnect()


# --- the client's address ---------------------------------------------------------------------


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8", "fd00::/8"])
@pytest.mark.parametrize("peer, forwarded, expected", [
    ("203.0.113.5", None, "203.0.113.5"),
    ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # not a proxy of ours: its header is ignored
    ("10.1.2.3", "198.51.100.9", "198.51.100.9"),  # our proxy: the client it saw
    ("10.1.2.3", "1.2.3.4, 198.51.100.9, 10.0.0.2", "198.51.100.9"),  # spoofed left part ignored
    ("10.1.2.3", "10.9.9.9, 10.0.0.2", "10.9.9.9"),  # every hop ours: the leftmost
    ("fd00::1", "2001:db8::7", "2001:db8::7"),
    ("10.1.2.3", "", "10.1.2.3"),
    ("10.1.2.3", "not-an-ip", "not-an-ip"),  # hashed like any other; never trusted as a proxy
    (None, "1.2.3.4", ""),
])
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(peer, forwarded, expected):
    assert client_ip(peer, forwarded) == expected


@override_settings(TRUSTED_PROXIES=[])
def test_with_no_trusted_proxies_the_header_is_always_ignored():
    assert client_ip("10.1.2.3", "198.51.100.9") == "10.1.2.3"


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
async def test_the_consumer_hashes_the_forwarded_address_and_stores_no_raw_ip(chat_models, no_generation):
    raw_ip = "198.51.100.77"
    key = await new_session_key()
    comm = await ws_connect(key, ip="10.0.0.5", headers=[(b"x-forwarded-for", raw_ip.encode())])
    spoofer = await ws_connect(await new_session_key(), ip="203.0.113.50",
                               headers=[(b"x-forwarded-for", raw_ip.encode())])
    try:
        first = await prompt(comm, "Hello from behind the proxy")
        spoofed = await prompt(spoofer, "Hello with a forged header")
    finally:
        await comm.disconnect()
        await spoofer.disconnect()
    battle = await database_sync_to_async(Battle.objects.get)(id=first["state"]["battle"])
    assert battle.ip_hash == client_identity(session_key=key, ip=raw_ip).ip_hash
    assert re.fullmatch(r"[0-9a-f]{32}", battle.ip_hash) and raw_ip not in battle.ip_hash
    forged = await database_sync_to_async(Battle.objects.get)(id=spoofed["state"]["battle"])
    assert forged.ip_hash == client_identity(session_key="x", ip="203.0.113.50").ip_hash

    @database_sync_to_async
    def everything_stored() -> str:
        rows = []
        for model in apps.get_models():
            rows += [repr(values) for values in model.objects.values_list()]
        store = redis.Redis.from_url(settings.REDIS_URL)
        for key_name in store.scan_iter():
            rows.append(repr(key_name))
            if store.type(key_name) == b"string":
                rows.append(repr(store.get(key_name)))
        return "\n".join(rows)

    stored = await everything_stored()
    assert battle.ip_hash in stored  # the scan does see the battles and their hashes
    for address in (raw_ip, "10.0.0.5", "203.0.113.50"):
        assert address not in stored, f"{address} is stored somewhere"
