"""The arena websocket through the routed ASGI app, the Redis channel layer and a real worker."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from arena.models import Battle, ChatModel, Vote
from config.asgi import application
from tests.helpers import slow_models_serving
from tests.websockets import ORIGIN, both_finished, frames_until, new_session_key, ws_connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

async def test_a_socket_without_a_session_is_closed():
    communicator = WebsocketCommunicator(application, "/ws/arena/", headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert not connected or (await communicator.receive_output())["type"] == "websocket.close"
    await communicator.disconnect()


async def test_a_foreign_origin_is_refused():
    key = await new_session_key()
    communicator = WebsocketCommunicator(
        application, "/ws/arena/",
        headers=[(b"origin", b"http://evil.example"), (b"cookie", f"sessionid={key}".encode())],
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame",
    ["not json", "[]", "42", '{"action": "explode"}', '{"no": "action"}', '{"action": "vote", "battle": 7}',
     '{"action": "join", "battle": "not-a-uuid"}', '{"action": "regenerate"}', "x" * 200_000, '[[[[[[[[[[[['],
)
async def test_malformed_frames_get_an_error_frame_and_the_socket_survives(frame):
    comm = await ws_connect(await new_session_key())
    await comm.send_to(text_data=frame)
    reply = json.loads(await comm.receive_from(timeout=5))
    assert reply["type"] == "error" and reply["message"]
    await comm.send_to(text_data=json.dumps({"action": "new_round"}))
    assert json.loads(await comm.receive_from(timeout=5)) == {"type": "state", "state": None}
    await comm.disconnect()


async def test_binary_frames_get_an_error_frame():
    comm = await ws_connect(await new_session_key())
    await comm.send_to(bytes_data=b"\x00\x01")
    assert json.loads(await comm.receive_from(timeout=5))["type"] == "error"
    await comm.disconnect()


async def test_an_oversize_prompt_is_refused_with_a_clear_message(chat_models):
    comm = await ws_connect(await new_session_key())
    await comm.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "x" * 30_001}))
    reply = json.loads(await comm.receive_from(timeout=5))
    assert reply["type"] == "error" and "too long" in reply["message"]
    assert await sync_to_async(Battle.objects.count)() == 0
    await comm.disconnect()


async def test_a_full_battle_streams_votes_and_reveals(chat_models, celery_worker_process):
    comm = await ws_connect(await new_session_key())
    await comm.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "Tell me about rivers"}))
    frames = await frames_until(comm, both_finished)
    state = frames[0]
    assert state["type"] == "state"
    battle_id = state["state"]["battle"]
    raw = json.dumps(frames)
    assert "zephyr" not in raw and "mistral" not in raw  # no name before the vote
    for side in ("a", "b"):
        deltas = [f for f in frames if f["type"] == "delta" and f["side"] == side]
        done = next(f for f in frames if f["type"] == "done" and f["side"] == side)
        assert deltas, "replies must stream"
        streamed = ""
        for d in deltas:
            assert d["offset"] == len(streamed)  # in order, no gap, no duplicate
            streamed += d["text"]
        assert streamed == done["text"] and done["token_count"] > 0 and done["ttft_ms"] is not None
    texts = {f["side"]: f["text"] for f in frames if f["type"] == "done"}
    assert texts["a"] != texts["b"]  # two different models

    await comm.send_to(text_data=json.dumps({"action": "vote", "battle": battle_id, "outcome": "bothbad"}))
    reveal = json.loads(await comm.receive_from(timeout=5))
    assert reveal["type"] == "revealed" and reveal["outcome"] == "bothbad"
    assert {reveal["model_a"], reveal["model_b"]} == {"zephyr-7b-beta", "mistral-7b-instruct"}
    await comm.send_to(text_data=json.dumps({"action": "vote", "battle": battle_id, "outcome": "a"}))
    again = json.loads(await comm.receive_from(timeout=5))
    assert again["type"] == "error" and again["code"] == "not_allowed"
    assert await sync_to_async(Vote.objects.filter(battle_id=battle_id).count)() == 1
    await comm.disconnect()


async def test_a_vote_on_replies_another_tab_has_replaced_is_refused_with_the_fresh_state(
    chat_models, celery_worker_process
):
    key = await new_session_key()
    first = await ws_connect(key)
    await first.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "Tell me about rivers"}))
    battle_id = (await frames_until(first, both_finished))[0]["state"]["battle"]
    # The same person's second tab (same session) follows the battle too, showing turn 0.
    second = await ws_connect(key)
    await second.send_to(text_data=json.dumps({"action": "join", "battle": battle_id}))
    assert json.loads(await second.receive_from(timeout=5))["type"] == "state"
    await first.send_to(text_data=json.dumps({"action": "prompt", "battle": battle_id, "text": "And lakes?"}))
    await frames_until(first, both_finished)

    # Both of turn 1's replies are done, so vote_cast alone would take it: the frame says what was shown.
    await second.send_to(text_data=json.dumps(
        {"action": "vote", "battle": battle_id, "outcome": "a", "turn": 0, "attempt": 0}))
    frames = await frames_until(second, lambda f, _: f["type"] == "error")
    state = next(f for f in frames if f["type"] == "state")["state"]
    assert [t["prompt"] for t in state["turns"]] == ["Tell me about rivers", "And lakes?"]
    assert frames[-1]["code"] == "stale" and frames[-1]["action"] == "vote"
    assert await sync_to_async(Vote.objects.count)() == 0
    for bad in ({"turn": "1", "attempt": 0}, {"turn": 1, "attempt": True}, {"turn": -1, "attempt": 0}, {"turn": 1}):
        await second.send_to(text_data=json.dumps({"action": "vote", "battle": battle_id, "outcome": "a", **bad}))
        assert json.loads(await second.receive_from(timeout=5))["code"] == "invalid"
    # The turn it shows now: counted.
    await second.send_to(text_data=json.dumps(
        {"action": "vote", "battle": battle_id, "outcome": "a", "turn": 1, "attempt": 0}))
    frames = await frames_until(second, lambda f, _: f["type"] in ("revealed", "error"))
    assert frames[-1]["type"] == "revealed"
    assert await sync_to_async(Vote.objects.count)() == 1
    await first.disconnect()
    await second.disconnect()


@pytest.fixture
def slow_models(db):
    """Models slow enough (25 tokens/s) that a reconnect surely lands mid-stream."""
    with slow_models_serving(tokens_per_second=25, max_new_tokens=60) as models:
        yield models


async def test_a_reconnecting_browser_gets_the_text_so_far_without_gap_or_duplicate(slow_models, celery_worker_process):
    key = await new_session_key()
    comm = await ws_connect(key)
    # A long reply, so the reconnect lands mid-stream.
    await comm.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "Write a long essay on tea"}))
    frames = await frames_until(comm, lambda f, fs: sum(x["type"] == "delta" for x in fs) >= 4)
    battle_id = frames[0]["state"]["battle"]
    await comm.disconnect()

    comm = await ws_connect(key)  # same session: the same person after a network blip
    await comm.send_to(text_data=json.dumps({"action": "join", "battle": battle_id}))
    frames = await frames_until(comm, both_finished)
    snapshot = frames[0]["state"]["turns"][0]["sides"]
    assert any(snapshot[s]["status"] == "streaming" and snapshot[s]["text"] for s in ("a", "b")), "not mid-stream"
    text = {s: snapshot[s]["text"] for s in ("a", "b")}
    finished = {s for s in ("a", "b") if snapshot[s]["status"] == "done"}
    for f in frames[1:]:
        if f["type"] == "delta":
            have = len(text[f["side"]])
            assert f["offset"] <= have, "a gap"
            text[f["side"]] += f["text"][have - f["offset"]:]
        elif f["type"] == "done":
            assert text[f["side"]] == f["text"]
            finished.add(f["side"])
    assert finished == {"a", "b"}
    await comm.disconnect()


async def test_another_session_cannot_join_or_vote(chat_models, celery_worker_process):
    owner = await ws_connect(await new_session_key())
    await owner.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "Hi"}))
    frames = await frames_until(owner, both_finished)
    battle_id = frames[0]["state"]["battle"]
    intruder = await ws_connect(await new_session_key())
    await intruder.send_to(text_data=json.dumps({"action": "join", "battle": battle_id}))
    assert json.loads(await intruder.receive_from(timeout=5))["code"] == "not_found"
    await intruder.send_to(text_data=json.dumps({"action": "vote", "battle": battle_id, "outcome": "a"}))
    assert json.loads(await intruder.receive_from(timeout=5))["type"] == "error"
    assert await intruder.receive_nothing(timeout=0.3)
    assert await sync_to_async(Vote.objects.count)() == 0
    await owner.disconnect()
    await intruder.disconnect()


async def test_an_intruder_joining_a_streaming_battle_gets_none_of_it(slow_models, celery_worker_process):
    owner = await ws_connect(await new_session_key())
    await owner.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "Write a long essay on tea"}))
    frames = await frames_until(owner, lambda f, fs: f["type"] == "delta")
    battle_id = frames[0]["state"]["battle"]
    intruder = await ws_connect(await new_session_key())
    await intruder.send_to(text_data=json.dumps({"action": "join", "battle": battle_id}))
    assert json.loads(await intruder.receive_from(timeout=5))["code"] == "not_found"
    # The battle goes on streaming; none of its deltas reach the intruder's socket.
    await frames_until(owner, lambda f, fs: sum(x["type"] == "delta" for x in fs) >= 5)
    assert await intruder.receive_nothing(timeout=0.5)
    await owner.disconnect()
    await intruder.disconnect()


@pytest.mark.parametrize("battle_id", ["not-a-battle", "{12345678-1234-5678-1234-567812345678}", "x" * 300])
async def test_joining_something_that_is_no_battle_id_is_not_found(battle_id):
    comm = await ws_connect(await new_session_key())
    await comm.send_to(text_data=json.dumps({"action": "join", "battle": battle_id}))
    frame = json.loads(await comm.receive_from(timeout=5))
    assert (frame["type"], frame["code"]) == ("error", "not_found")
    await comm.disconnect()


@pytest.fixture
def small_context_models(db):
    """Two models whose servers take at most 64 tokens, prompt and reply together."""
    from devserver import DevServerConfig, serve_in_thread

    configs = [
        DevServerConfig(
            model_id=name, time_to_first_token=0, tokens_per_second=0, max_input_tokens=48, max_total_tokens=64
        )
        for name in ("small-1", "small-2")
    ]
    with serve_in_thread(configs[0]) as url_1, serve_in_thread(configs[1]) as url_2:
        yield [
            ChatModel.objects.create(name=name, endpoint_url=url, template="zephyr", parameters={"max_new_tokens": 16})
            for name, url in (("small-1", url_1), ("small-2", url_2))
        ]


async def test_a_prompt_over_the_models_token_limit_fails_once_with_a_clear_reason(
    small_context_models, celery_worker_process
):
    import urllib.request

    from arena.live import live_redis, model_failures_key

    comm = await ws_connect(await new_session_key())
    await comm.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "tea " * 100}))
    frames = await frames_until(comm, both_finished)
    failed = {f["side"]: f["reason"] for f in frames if f["type"] == "failed"}
    assert set(failed) == {"a", "b"}
    for reason in failed.values():
        assert reason.startswith("This conversation is too long for this model (")
        assert "it accepts 48, keeping room for a 16-token reply). Start a new battle with a shorter prompt." in reason
    # The page is told a retry can't help, live and in a snapshot.
    for frame in (f for f in frames if f["type"] == "failed"):
        assert frame["retryable"] is False and frame["failure_kind"] == "too_long"
    await comm.send_to(text_data=json.dumps({"action": "join", "battle": frames[0]["state"]["battle"]}))
    sides = json.loads(await comm.receive_from(timeout=5))["state"]["turns"][0]["sides"]
    for side in sides.values():
        assert side["status"] == "failed" and side["retryable"] is False and side["failure_kind"] == "too_long"
    await comm.disconnect()
    # Permanent, so not retried (one request per server), and no mark against the servers' health.
    for model in small_context_models:
        metrics = await sync_to_async(
            lambda url=model.endpoint_url: urllib.request.urlopen(f"{url}/metrics").read().decode()
        )()
        assert "tgi_request_count 1\n" in metrics
        await sync_to_async(model.refresh_from_db)()
        assert model.healthy and model.last_error == ""
        assert await sync_to_async(lambda m=model: live_redis().get(model_failures_key(m.id)))() is None
