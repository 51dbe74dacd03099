"""Vote integrity: one vote per battle under concurrency, only the owner's, only when both
replies are done, and no model name reaches the browser before it."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test import Client

from arena import services
from arena.errors import NotAllowed
from arena.models import Battle, Reply, Vote
from tests.finished import battle_finished, turn_finish
from tests.websockets import (
    both_finished,
    frames_until,
    identity_of,
    new_session_key,
    state_of,
    ws_connect,
    ws_join,
    ws_receive,
    ws_send,
)

pytestmark = pytest.mark.django_db(transaction=True)

FIGURES: dict[str, str] = {}


def test_fifty_concurrent_vote_casts_store_exactly_one_vote(chat_models, alice, no_generation, capsys):
    turn = battle_finished(alice)
    attempts = 50
    barrier = threading.Barrier(attempts)
    outcomes: list[object] = []
    lock = threading.Lock()

    def cast(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            try:
                services.vote_cast(battle_id=turn.battle_id, client=alice, outcome=["a", "b", "tie", "bothbad"][i % 4])
                result: object = "stored"
            except Exception as exc:  # noqa: BLE001 - every outcome is counted below
                result = exc
            with lock:
                outcomes.append(result)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=cast, args=(i,)) for i in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    stored = [o for o in outcomes if o == "stored"]
    refused = [o for o in outcomes if isinstance(o, NotAllowed)]
    others = [o for o in outcomes if o != "stored" and not isinstance(o, NotAllowed)]
    assert others == [], f"unexpected errors: {others[:3]}"
    assert len(stored) == 1 and len(refused) == attempts - 1
    assert Vote.objects.filter(battle_id=turn.battle_id).count() == 1
    FIGURES["services.vote_cast, 50 threads at one barrier"] = (
        f"{attempts} attempts -> {Vote.objects.filter(battle_id=turn.battle_id).count()} row, {len(refused)} NotAllowed"
    )
    with capsys.disabled():
        print(f"\nconcurrent votes: {FIGURES['services.vote_cast, 50 threads at one barrier']}")


async def test_twenty_sockets_of_one_session_voting_at_once_store_one_vote(chat_models, no_generation, capsys):
    key = await new_session_key()
    turn = await database_sync_to_async(battle_finished)(identity_of(key))
    battle_id = str(turn.battle_id)
    sockets = [await ws_connect(key) for _ in range(20)]
    try:
        for comm in sockets:
            await ws_join(comm, battle_id)
        await asyncio.gather(*(
            ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "a"}) for comm in sockets
        ))

        async def answers(comm) -> list[dict]:
            got = []
            while not await comm.receive_nothing(timeout=1.5):
                got.append(await ws_receive(comm))
            return got

        per_socket = await asyncio.gather(*(answers(comm) for comm in sockets))
    finally:
        await asyncio.gather(*(comm.disconnect() for comm in sockets))
    errors = [f for frames in per_socket for f in frames if f["type"] == "error"]
    assert all(e["code"] == "not_allowed" and "already has a vote" in e["message"] for e in errors), errors
    assert len(errors) == 19, "every socket but one is told the battle already has a vote"
    assert all([f["type"] for f in frames].count("revealed") == 1 for frames in per_socket)
    rows = await database_sync_to_async(Vote.objects.filter(battle_id=battle_id).count)()
    assert rows == 1
    FIGURES["websocket, 20 sockets of one session"] = f"20 attempts -> {rows} row, {len(errors)} not_allowed"
    with capsys.disabled():
        print(f"\nconcurrent votes: {FIGURES['websocket, 20 sockets of one session']}")


async def test_another_session_cannot_vote_even_from_the_same_address(chat_models, no_generation):
    owner_key = await new_session_key()
    turn = await database_sync_to_async(battle_finished)(identity_of(owner_key, "192.0.2.10"))
    intruder = await ws_connect(await new_session_key(), ip="192.0.2.10")
    try:
        # It can't follow the battle, and a vote naming it directly is refused too.
        await ws_send(intruder, {"action": "join", "battle": str(turn.battle_id)})
        assert (await ws_receive(intruder, 5))["code"] == "not_found"
        await ws_send(intruder, {"action": "vote", "battle": str(turn.battle_id), "outcome": "a"})
        assert (await ws_receive(intruder, 5))["type"] == "error"
    finally:
        await intruder.disconnect()
    assert not await database_sync_to_async(Vote.objects.exists)()


@pytest.mark.parametrize("state", ["queued", "one side streaming", "one side failed"])
async def test_no_vote_before_both_replies_are_done(chat_models, no_generation, state):
    key = await new_session_key()
    client = identity_of(key)

    @database_sync_to_async
    def prepare() -> str:
        turn = services.battle_start(client=client, text="Question")
        if state == "one side streaming":
            reply = turn.replies.get(side="a")
            Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
            services.reply_finish(reply_id=reply.id, text="done")
            Reply.objects.filter(turn=turn, side="b").update(status=Reply.Status.STREAMING)
        elif state == "one side failed":
            turn_finish(turn, failure={"b": "The model server can't be reached."})
        return str(turn.battle_id)

    battle_id = await prepare()
    comm = await ws_connect(key)
    try:
        snapshot = await ws_join(comm, battle_id)
        assert snapshot["controls"]["may_vote"] is False
        await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "b"})
        error = await ws_receive(comm, 5)
        assert error["type"] == "error" and error["code"] == "not_allowed" and "both replies" in error["message"]
    finally:
        await comm.disconnect()
    assert not await database_sync_to_async(Vote.objects.exists)()


ANONYMOUS_PAGES = ["/", "/admin/login/", "/admin/", "/healthz", "/no-such-page/", "/admin/arena/chatmodel/"]


def names_in(text: str, names: list[str]) -> list[str]:
    lowered = text.lower()
    return [n for n in names if n.lower() in lowered]


def pages_as_anonymous() -> dict[str, str]:
    client = Client()
    return {path: client.get(path, follow=True).content.decode() for path in ANONYMOUS_PAGES}


async def test_model_names_reach_the_browser_only_with_the_reveal(chat_models, celery_worker_process):
    names = [m.name for m in chat_models] + [m.name.split("-")[0] for m in chat_models]  # also "zephyr", "mistral"
    pages = await database_sync_to_async(pages_as_anonymous)()
    for path, html in pages.items():
        assert names_in(html, names) == [], f"{path} names a model"

    key = await new_session_key()
    comm = await ws_connect(key)
    try:
        await ws_send(comm, {"action": "prompt", "battle": None, "text": "Tell me about rivers"})
        frames = await frames_until(comm, both_finished)
        battle_id = state_of(frames)["battle"]
        frames.append(await ws_join(comm, battle_id))  # a reconnect's snapshot, before the vote
        for frame in frames:
            assert names_in(json.dumps(frame), names) == [], f"a frame names a model: {frame}"
        await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "tie"})
        reveal = await ws_receive(comm, 10)
        after = await ws_join(comm, battle_id)
    finally:
        await comm.disconnect()
    battle = await database_sync_to_async(Battle.objects.select_related("model_a", "model_b").get)(id=battle_id)
    assert reveal["type"] == "revealed"
    assert (reveal["model_a"], reveal["model_b"]) == (battle.model_a.name, battle.model_b.name)
    assert after["reveal"]["model_a"] == battle.model_a.name and after["reveal"]["model_b"] == battle.model_b.name


def test_zz_vote_figures(capsys):
    if len(FIGURES) < 2:
        pytest.skip("run the whole module to get the figures")
    assert all(" -> 1 row" in figure for figure in FIGURES.values())
    with capsys.disabled():
        print("\n\nConcurrent votes (attempts vs rows):")
        for what, figure in FIGURES.items():
            print(f"  {what}: {figure}")
