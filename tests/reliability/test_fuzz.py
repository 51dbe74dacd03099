"""Fuzzing the websocket and the HTTP routes: malformed, oversize and random input gets a clean
answer, never a closed socket or a 5xx. The number of cases run is printed by the last test."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena.consumers import ACTIONS
from tests.websockets import new_session_key, ws_connect, ws_receive

pytestmark = pytest.mark.django_db(transaction=True)

CASES: Counter = Counter()
FUZZ = settings(
    max_examples=300, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what a browser (or anyone) might send --------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
anything = st.one_of(json_values, st.just(str(uuid.uuid4())), st.text(alphabet="\x00\ud7ff\ufffd<>\"'&", max_size=20))
frame_dicts = st.fixed_dictionaries(
    {},
    optional={
        "action": st.one_of(st.sampled_from(ACTIONS), anything),
        "battle": st.one_of(st.none(), st.just("BATTLE"), anything),
        "outcome": st.one_of(st.sampled_from(["a", "b", "tie", "bothbad", "A", ""]), anything),
        "side": st.one_of(st.sampled_from(["a", "b", None, "c"]), anything),
        "text": st.one_of(st.text(max_size=200), st.text(alphabet="\x00 ab<>", max_size=20), anything),
    },
)
deep = st.integers(min_value=1, max_value=200_000).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n])
)
huge = st.integers(min_value=100_000, max_value=300_000).flatmap(
    lambda n: st.sampled_from([
        "x" * n,
        json.dumps({"action": "prompt", "battle": None, "text": "y" * n}),
        json.dumps({"action": "join", "battle": "z" * n}),
    ])
)
text_frames = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    frame_dicts.map(json.dumps),
    deep,
    huge,
    st.sampled_from([
        "1" * 5000, "1e999999", "NaN", '"\\ud800"', '{"action": "new_round", "action": "vote"}',
        '{"action": "prompt", "battle": null, "text": "lone \\ud800 surrogate"}',
        '{"action": "prompt", "battle": null, "text": "nul \\u0000 byte"}',
        '{"action": "join", "battle": "\\u0000"}',
    ]),
)
frames = st.one_of(
    text_frames.map(lambda t: ("text", t)), st.binary(min_size=0, max_size=2000).map(lambda b: ("bytes", b))
)


@pytest.fixture
async def socket(chat_models, no_generation):
    comm = await ws_connect(await new_session_key())
    # A real battle to aim at: "BATTLE" in a frame is replaced by its id.
    await comm.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "Hello"}))
    comm.battle_id = (await ws_receive(comm, 10))["state"]["battle"]
    yield comm
    await comm.disconnect()


@override_settings(ARENA_BATTLES_PER_MINUTE=100_000, ARENA_TURNS_PER_MINUTE=100_000)
@FUZZ
@given(frame=frames)
async def test_every_frame_gets_one_answer_and_the_socket_stays_open(socket, frame):
    kind, payload = frame
    if kind == "text":
        payload = payload.replace('"BATTLE"', json.dumps(socket.battle_id))
        await socket.send_input({"type": "websocket.receive", "text": payload})
    else:
        await socket.send_input({"type": "websocket.receive", "bytes": payload})
    answer = await ws_receive(socket, 10)  # fails if the server closed the socket instead
    # Then a sentinel: its answer must come next, so the frame had exactly one answer.
    await socket.send_input({"type": "websocket.receive", "text": '{"action": "new_round"}'})
    sentinel = await ws_receive(socket, 10)
    CASES["websocket frames"] += 1
    assert answer["type"] in ("error", "state"), answer
    if answer["type"] == "error":
        assert answer["code"] and isinstance(answer["message"], str) and answer["message"], answer
    assert sentinel == {"type": "state", "state": None}, f"{answer} was followed by {sentinel}"


@pytest.mark.parametrize("text", ["nul \x00 byte", "lone \ud800 surrogate", "\udfff"])
async def test_a_prompt_postgres_cannot_store_is_refused_not_fatal(socket, text):
    await socket.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": text}))
    answer = await ws_receive(socket, 10)
    assert answer["type"] == "error" and answer["code"] == "invalid" and "can't be stored" in answer["message"]
    await socket.send_to(text_data='{"action": "new_round"}')
    assert await ws_receive(socket, 10) == {"type": "state", "state": None}


async def test_after_the_fuzz_the_socket_still_answers(socket):
    for payload in ("\x00" * 10, "[" * 100_000, "x" * 300_000):
        await socket.send_input({"type": "websocket.receive", "text": payload})
        assert (await ws_receive(socket, 10))["type"] == "error"
    await socket.send_input({"type": "websocket.receive", "text": '{"action": "new_round"}'})
    assert await ws_receive(socket, 10) == {"type": "state", "state": None}
    assert await socket.receive_nothing(timeout=0.2)


# --- HTTP -----------------------------------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"])
paths = st.tuples(
    st.sampled_from(["/", "/healthz", "/admin/login/", "/admin/", "/static/arena/arena.js", "/ws/arena/"]),
    st.one_of(st.just(""), st.text(max_size=30)),
    st.one_of(st.just(""), st.text(max_size=60).map(lambda q: "?" + q)),
).map(lambda parts: parts[0] + parts[1].replace("?", "").replace("#", "") + parts[2])
bodies = st.one_of(
    st.just(b""), st.binary(max_size=5000), json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["username", "password", "next", "csrfmiddlewaretoken", "x"]),
                    st.text(max_size=100), max_size=5)
    .map(lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode()),
)
content_types = st.sampled_from([
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "application/json",
    "text/plain", "application/octet-stream", "multipart/form-data",
])
hosts = st.sampled_from(["localhost", "127.0.0.1", "evil.example", "localhost:8000", "[::1]", "a" * 300])


@FUZZ
@given(method=methods, path=paths, body=bodies, content_type=content_types, host=hosts, csrf=st.booleans())
def test_http_never_answers_5xx(method, path, body, content_type, host, csrf):
    client = Client(enforce_csrf_checks=csrf)  # an unhandled exception would be raised here
    answer = client.generic(method, path, data=body, content_type=content_type, HTTP_HOST=host)
    CASES["HTTP requests"] += 1
    assert answer.status_code < 500, f"{method} {path!r} -> {answer.status_code}"


def test_zz_fuzz_case_counts(capsys):
    if len(CASES) < 2:
        pytest.skip("run the whole module to count the cases")
    assert all(n >= 100 for n in CASES.values()), CASES
    with capsys.disabled():
        print(f"\n\nFuzz cases run: {dict(CASES)}")
