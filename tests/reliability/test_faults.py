"""Model-server faults through the real worker: one side misbehaves, the other is healthy.

Every battle here runs on a worker of its own (its own queue, `ARENA_STALL_SECONDS` short), with
a healthy dev server on one side and a dev server whose faults are switched at runtime on the
other. The user must see a `failed` frame with a sentence they can act on, in bounded time; the
healthy side must finish; the vote must wait; a per-side retry must repair the battle once the
model server is well again. The faulty model is served over each protocol in turn (TGI's
`/generate_stream`, OpenAI's `/v1/chat/completions` from the same dev server), and the same
faults must read the same to the user; a few rows only the OpenAI protocol has (a refused API
key, a content filter, a 429's Retry-After) follow. The table of what the user saw is printed by
the last test.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import requests
from channels.db import database_sync_to_async

from arena.live import live_redis, model_failures_key
from arena.models import Battle, ChatModel, Reply, Vote
from arena.tasks import models_probe
from devserver import DevServerConfig, serve_in_thread
from tests.helpers import free_port
from tests.reliability.helpers import dedicated_worker, devserver_requests, fault_set, tasks_route_to
from tests.websockets import new_session_key, state_of, ws_connect, ws_receive, ws_send

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "reliability-faults"
STALL_SECONDS = 3
PROMPT = "Tell me about rivers and lakes"
# Backoff of the worker's transient retries: 1 + 2 + 4 s, then the failure is shown.
RETRY_BACKOFF = 1 + 2 + 4

PROTOCOLS = ("tgi", "openai")

# (protocol, row) -> what the user saw; "done": the faulty side finished well (no failed frame).
MATRIX: dict[tuple[str, str], dict] = {}


@pytest.fixture(scope="module")
def fault_worker(django_db_setup, live_logs):
    with dedicated_worker(live_logs, "faults", QUEUE, ARENA_STALL_SECONDS=str(STALL_SECONDS)) as proc:
        yield proc


@pytest.fixture(scope="module")
def servers():
    healthy = DevServerConfig(model_id="healthy-model", time_to_first_token=0.05, tokens_per_second=150)
    faulty = DevServerConfig(model_id="faulty-model", time_to_first_token=0.05, tokens_per_second=150, stall_seconds=60)
    with serve_in_thread(healthy) as healthy_url, serve_in_thread(faulty) as faulty_url:
        yield SimpleNamespace(healthy=healthy_url, faulty=faulty_url)


def faulty_endpoint(protocol: str, url: str) -> str:
    """The faulty model's endpoint: TGI's base URL, or what an OpenAI client takes as its base URL."""
    return f"{url}/v1" if protocol == "openai" else url


@pytest.fixture(params=PROTOCOLS)
def protocol(request) -> str:
    """How the faulty model is served; a test parametrizing `protocol` itself overrides this."""
    return request.param


@pytest.fixture
def models(transactional_db, servers, fault_worker, monkeypatch, protocol):
    tasks_route_to(monkeypatch, QUEUE)
    fault_set(servers.faulty, None)
    yield SimpleNamespace(
        healthy=ChatModel.objects.create(
            name="healthy-model", endpoint_url=servers.healthy, template="zephyr", timeout_seconds=20
        ),
        faulty=ChatModel.objects.create(
            name="faulty-model", protocol=protocol, endpoint_url=faulty_endpoint(protocol, servers.faulty),
            served_model="faulty-model" if protocol == "openai" else "", template="chatml", timeout_seconds=20,
        ),
    )
    fault_set(servers.faulty, None)


@dataclass(frozen=True)
class Case:
    name: str  # the row of the matrix
    reason: str  # what the failed frame's reason must say (regex)
    bound: float  # seconds from the prompt to the failed frame
    fault: str | None = None  # the dev server's runtime fault, for every request until cleared
    refused: bool = False  # the model's endpoint is a closed port
    model_timeout: int | None = None  # the model's total timeout, for the stall-past-timeout case
    partial: bool = False  # text was streamed before the failure (and is kept)


CASES = [
    Case("connection refused", r"can't be reached", RETRY_BACKOFF + 8, refused=True),
    Case("overload (overloaded event, persistent)", r"overloaded", RETRY_BACKOFF + 8, fault="overload"),
    Case("overload (HTTP 429, persistent)", r"overloaded", RETRY_BACKOFF + 8, fault="overload-http"),
    Case("HTTP 500 error page (persistent)", r"answered HTTP 500", RETRY_BACKOFF + 8, fault="http-500"),
    Case("error event mid-stream", r"failed while generating.*out of memory", 6, fault="error-mid-stream",
         partial=True),
    Case("stream cut, no final event", r"ended the reply before finishing", 6, fault="cut", partial=True),
    Case("connection dropped mid-stream", r"connection to the model server was lost", 6, fault="drop", partial=True),
    Case(f"stall ({STALL_SECONDS} s stall limit)", rf"stopped sending for {STALL_SECONDS} s", STALL_SECONDS + 5,
         fault="stall", partial=True),
    Case("stall past the model's total timeout (2 s)", r"took too long", 2 + 5, fault="stall", model_timeout=2,
         partial=True),
]
# Faults only the OpenAI protocol has (TGI's routes ignore these modes).
OPENAI_CASES = [
    Case("error event mid-stream, TGI Messages API's shape", r"failed while generating.*out of memory", 6,
         fault="error-mid-stream-tgi", partial=True),
]
FAILING_SIDE_CASES = [(p, c) for p in PROTOCOLS for c in CASES] + [("openai", c) for c in OPENAI_CASES]
TRANSIENT = ("overload", "overload-http")
CONTENT_FILTER = "content filter after 3 tokens"
UNAUTHORIZED = "API key refused (HTTP 401)"
RETRY_AFTER = "HTTP 429 with Retry-After: 3, once (transient)"


async def timed_frames_until(comm, predicate, started: float, timeout: float = 30.0) -> list[dict]:
    """Frames, each with `_t`: seconds since `started` when it arrived."""
    frames: list[dict] = []
    while True:
        try:
            frame = await ws_receive(comm, timeout)
        except TimeoutError:
            raise AssertionError(f"no frame for {timeout} s; so far: {frames}") from None
        frame["_t"] = time.monotonic() - started
        frames.append(frame)
        if predicate(frame, frames):
            return frames


def finished(frames, side=None, attempt=0) -> set[str]:
    return {
        f["side"] for f in frames
        if f["type"] in ("done", "failed") and f["attempt"] == attempt and (side is None or f["side"] == side)
    }


def is_a_sentence(reason: str) -> bool:
    return (
        reason.startswith("The ") and "model" in reason and len(reason) < 240 and "\n" not in reason
        and not re.search(r"Traceback|\b[A-Z]\w+(Error|Exception)\b|<html", reason)
    )


def side_of(battle_id: str, model: ChatModel) -> str:
    battle = Battle.objects.get(id=battle_id)
    return "a" if battle.model_a_id == model.id else "b"


async def prompt_until_both_end(comm, faulty: ChatModel) -> tuple[list[dict], str, str]:
    """Start a battle and read until both sides ended: (timed frames, battle id, the faulty side)."""
    started = time.monotonic()
    await ws_send(comm, {"action": "prompt", "battle": None, "text": PROMPT})
    frames = await timed_frames_until(comm, lambda f, fs: finished(fs) >= {"a", "b"}, started)
    battle_id = state_of(frames)["battle"]
    return frames, battle_id, await database_sync_to_async(side_of)(battle_id, faulty)


def failures_counted(model: ChatModel) -> int:
    return int(live_redis().get(model_failures_key(model.id)) or 0)


@pytest.mark.parametrize("protocol, case", FAILING_SIDE_CASES, ids=[f"{p}: {c.name}" for p, c in FAILING_SIDE_CASES])
async def test_a_failing_side_is_shown_refused_for_voting_and_repaired_by_a_retry(protocol, case, models, servers):
    with contextlib.ExitStack() as cleanup:
        if case.refused:
            port = free_port()  # nothing listens here until the fault is cleared
            refused_url = faulty_endpoint(protocol, f"http://127.0.0.1:{port}")
            await database_sync_to_async(ChatModel.objects.filter(id=models.faulty.id).update)(endpoint_url=refused_url)
        if case.model_timeout:
            await database_sync_to_async(ChatModel.objects.filter(id=models.faulty.id).update)(
                timeout_seconds=case.model_timeout
            )
        if case.fault:
            fault_set(servers.faulty, case.fault, after_tokens=3)  # no count: it outlasts every retry

        comm = await ws_connect(await new_session_key())
        try:
            frames, battle_id, bad = await prompt_until_both_end(comm, models.faulty)
            good = "b" if bad == "a" else "a"

            failed = [f for f in frames if f["type"] == "failed"]
            assert [f["side"] for f in failed] == [bad], f"only the faulty side fails: {failed}"
            reason = failed[0]["reason"]
            assert re.search(case.reason, reason), reason
            assert is_a_sentence(reason), f"not a clear sentence: {reason!r}"
            assert failed[0]["_t"] <= case.bound, f"the failure took {failed[0]['_t']:.1f} s (bound {case.bound} s)"
            done = [f for f in frames if f["type"] == "done"]
            assert [f["side"] for f in done] == [good] and done[0]["text"]
            streamed = "".join(f["text"] for f in frames if f["type"] == "delta" and f["side"] == bad)
            assert failed[0]["text"] == streamed, "what was shown before the failure is kept"
            assert bool(streamed) == case.partial

            stored = await database_sync_to_async(
                lambda: {r.side: r for r in Reply.objects.filter(turn__battle_id=battle_id)}
            )()
            assert stored[bad].status == Reply.Status.FAILED and stored[bad].failure_reason == reason
            assert stored[good].status == Reply.Status.DONE

            await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "a"})
            refusal = await ws_receive(comm, 10)
            assert refusal["type"] == "error" and refusal["code"] == "not_allowed", refusal
            counted = await database_sync_to_async(failures_counted)(models.faulty)

            # The model server recovers; retrying only the failed side completes the battle.
            if case.refused:
                cleanup.enter_context(serve_in_thread(
                    DevServerConfig(model_id="faulty-model", time_to_first_token=0.05, tokens_per_second=150), port=port
                ))
            if case.model_timeout:
                await database_sync_to_async(ChatModel.objects.filter(id=models.faulty.id).update)(timeout_seconds=20)
            fault_set(servers.faulty, None)
            retry_started = time.monotonic()
            await ws_send(comm, {"action": "regenerate", "battle": battle_id, "side": bad})
            frames = await timed_frames_until(comm, lambda f, fs: finished(fs, bad, attempt=1), retry_started)
            state = state_of(frames)
            assert state["turns"][0]["attempt"] == 1
            assert state["turns"][0]["sides"][good]["status"] == "done"  # the healthy answer is kept
            assert state["turns"][0]["sides"][good]["text"] == done[0]["text"]
            retried = [f for f in frames if f["type"] in ("done", "failed")]
            assert [(f["type"], f["side"]) for f in retried] == [("done", bad)], retried
            await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "tie"})
            reveal = await ws_receive(comm, 10)
            assert reveal["type"] == "revealed"
            assert await database_sync_to_async(Vote.objects.filter(battle_id=battle_id).count)() == 1
        finally:
            await comm.disconnect()

    MATRIX[(protocol, case.name)] = {
        "saw": f"failed after {failed[0]['_t']:.1f} s: {reason}" + (" (partial text kept)" if case.partial else ""),
        "done": False,
        "other": "done",
        "vote": "refused (not_allowed) until the retry, then accepted",
        "counted": f"yes ({counted})" if counted else "no",
    }


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_a_transient_overload_is_retried_unseen(fault, protocol, models, servers):
    fault_set(servers.faulty, fault, count=2)  # the first two requests are refused, the third served
    before = devserver_requests(servers.faulty)
    comm = await ws_connect(await new_session_key())
    try:
        frames, battle_id, bad = await prompt_until_both_end(comm, models.faulty)
        assert not [f for f in frames if f["type"] in ("failed", "error")], "the user saw the overload"
        done = {f["side"]: f for f in frames if f["type"] == "done"}
        assert set(done) == {"a", "b"} and done[bad]["text"]
        assert devserver_requests(servers.faulty) - before == 3, "refused twice, then served"
        assert requests.get(f"{servers.faulty}/__devserver__/fault", timeout=5).json()["fault"] is None
        # Backoff: the retries waited (1 s, then 2 s) before asking again.
        assert done[bad]["_t"] >= 1 + 2
        counted = await database_sync_to_async(failures_counted)(models.faulty)
        assert counted == 0, "a retried overload is not a failed generation"
        await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "a"})
        assert (await ws_receive(comm, 10))["type"] == "revealed"
    finally:
        await comm.disconnect()
    MATRIX[(protocol, f"{fault} ×2 (transient)")] = {
        "saw": f"done after {done[bad]['_t']:.1f} s, no failed frame (3 requests: 2 refused, 1 served)",
        "done": True,
        "other": "done",
        "vote": "accepted",
        "counted": "no",
    }


async def test_repeated_generation_failures_mark_the_model_unhealthy_until_they_expire(models, servers):
    fault_set(servers.faulty, "cut", after_tokens=2)
    comm = await ws_connect(await new_session_key())
    try:
        await ws_send(comm, {"action": "prompt", "battle": None, "text": PROMPT})
        frames = await timed_frames_until(comm, lambda f, fs: finished(fs) >= {"a", "b"}, time.monotonic())
        battle_id = state_of(frames)["battle"]
        bad = await database_sync_to_async(side_of)(battle_id, models.faulty)
        for attempt in (1, 2):  # the user retries the failing side twice more
            await ws_send(comm, {"action": "regenerate", "battle": battle_id, "side": bad})
            frames = await timed_frames_until(comm, lambda f, fs, n=attempt: finished(fs, bad, n), time.monotonic())
            assert [f["type"] for f in frames if f["type"] in ("done", "failed")] == ["failed"]
        model = await database_sync_to_async(ChatModel.objects.get)(id=models.faulty.id)
        assert not model.healthy
        assert model.last_error.startswith("3 failed generations recently")
        assert "ended the reply before finishing" in model.last_error

        # A new battle can't draw it; with one healthy model left, there is no pair to draw.
        await ws_send(comm, {"action": "new_round"})
        await ws_receive(comm, 5)
        await ws_send(comm, {"action": "prompt", "battle": None, "text": PROMPT})
        error = await ws_receive(comm, 5)
        assert error["type"] == "error" and error["code"] == "no_models" and error["message"]

        # The server answers its probe, but the probe keeps it out while the failures are recent.
        await database_sync_to_async(models_probe)()
        model = await database_sync_to_async(ChatModel.objects.get)(id=models.faulty.id)
        assert not model.healthy and "generations failed recently" in model.last_error
    finally:
        await comm.disconnect()


@pytest.mark.parametrize("protocol", ["openai"])
async def test_a_429_s_retry_after_is_honoured_before_retrying(protocol, models, servers):
    # The backoff alone would ask again after 1 s; the server asks for 3.
    config = DevServerConfig(model_id="faulty-model", time_to_first_token=0.05, tokens_per_second=150, retry_after=3)
    with serve_in_thread(config) as url:
        await database_sync_to_async(ChatModel.objects.filter(id=models.faulty.id).update)(
            endpoint_url=faulty_endpoint(protocol, url)
        )
        fault_set(url, "overload-http", count=1)
        comm = await ws_connect(await new_session_key())
        try:
            frames, battle_id, bad = await prompt_until_both_end(comm, models.faulty)
            assert not [f for f in frames if f["type"] in ("failed", "error")], "the user saw the overload"
            done = {f["side"]: f for f in frames if f["type"] == "done"}
            assert set(done) == {"a", "b"} and done[bad]["text"]
            assert devserver_requests(url) == 2, "refused once, then served"
            assert done[bad]["_t"] >= 3, f"asked again after {done[bad]['_t']:.1f} s, before the server's Retry-After"
            assert done[bad]["_t"] < 3 + 4
            assert await database_sync_to_async(failures_counted)(models.faulty) == 0
            await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "tie"})
            assert (await ws_receive(comm, 10))["type"] == "revealed"
        finally:
            await comm.disconnect()
    MATRIX[(protocol, RETRY_AFTER)] = {
        "saw": f"done after {done[bad]['_t']:.1f} s, no failed frame (asked again after the server's 3 s, "
               "not the 1 s backoff)",
        "done": True,
        "other": "done",
        "vote": "accepted",
        "counted": "no",
    }


@pytest.mark.parametrize("protocol", ["openai"])
async def test_a_content_filter_ends_the_reply_as_done_and_votable(protocol, models, servers):
    fault_set(servers.faulty, "content-filter", after_tokens=3)
    comm = await ws_connect(await new_session_key())
    try:
        frames, battle_id, bad = await prompt_until_both_end(comm, models.faulty)
        assert not [f for f in frames if f["type"] in ("failed", "error")], frames
        done = {f["side"]: f for f in frames if f["type"] == "done"}
        assert set(done) == {"a", "b"}
        streamed = "".join(f["text"] for f in frames if f["type"] == "delta" and f["side"] == bad)
        assert done[bad]["text"] and done[bad]["text"] == streamed, "the text sent before the filter is the reply"
        assert done[bad]["token_count"] == 3
        last_done = max(done.values(), key=lambda f: f["_t"])
        assert last_done["controls"]["may_vote"] is True
        stored = await database_sync_to_async(
            lambda: Reply.objects.get(turn__battle_id=battle_id, side=bad)
        )()
        assert stored.status == Reply.Status.DONE and stored.finish_reason == "content_filter"
        assert stored.text == done[bad]["text"] and stored.failure_reason == ""
        await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": bad})
        assert (await ws_receive(comm, 10))["type"] == "revealed"
        counted = await database_sync_to_async(failures_counted)(models.faulty)
        assert counted == 0
    finally:
        await comm.disconnect()
    MATRIX[(protocol, CONTENT_FILTER)] = {
        "saw": f"done after {done[bad]['_t']:.1f} s, finish_reason content_filter, its {len(streamed)} characters kept",
        "done": True,
        "other": "done",
        "vote": "accepted",
        "counted": "no",
    }


@pytest.mark.parametrize("protocol", ["openai"])
async def test_a_refused_api_key_is_permanent_and_takes_the_model_out_at_once(protocol, models, servers):
    fault_set(servers.faulty, "unauthorized")
    before = devserver_requests(servers.faulty)
    comm = await ws_connect(await new_session_key())
    try:
        frames, battle_id, bad = await prompt_until_both_end(comm, models.faulty)
        failed = [f for f in frames if f["type"] == "failed"]
        assert [f["side"] for f in failed] == [bad], failed
        reason = failed[0]["reason"]
        assert reason == "The model server refused this model's API key (HTTP 401); an admin must fix its key."
        assert is_a_sentence(reason)
        # Permanent: not retried quietly, and no Retry offered.
        assert failed[0]["failure_kind"] == "misconfigured" and failed[0]["retryable"] is False
        assert devserver_requests(servers.faulty) - before == 1, "a refused key is not retried"
        assert failed[0]["_t"] < 3, f"the failure took {failed[0]['_t']:.1f} s"
        controls = max((f for f in frames if "controls" in f), key=lambda f: f["_t"])["controls"]
        assert bad not in controls["may_retry"] and controls["may_regenerate"] is False
        assert controls["may_vote"] is False and "admin" in controls["hint"]

        await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "a"})
        refusal = await ws_receive(comm, 10)
        assert refusal["type"] == "error" and refusal["code"] == "not_allowed", refusal
        await ws_send(comm, {"action": "regenerate", "battle": battle_id, "side": bad})
        retry_refusal = await ws_receive(comm, 10)
        assert retry_refusal["type"] == "error" and retry_refusal["code"] == "not_allowed", retry_refusal
        assert retry_refusal["message"].startswith("Retrying won't help")

        # Out of the draw at once, with the reason for the admin; not one of the failures counted
        # towards the server's health (nothing is wrong with the server).
        model = await database_sync_to_async(ChatModel.objects.get)(id=models.faulty.id)
        assert model.healthy is False and model.last_error == reason
        counted = await database_sync_to_async(failures_counted)(models.faulty)
        assert counted == 0
        await ws_send(comm, {"action": "new_round"})
        await ws_receive(comm, 5)
        await ws_send(comm, {"action": "prompt", "battle": None, "text": PROMPT})
        error = await ws_receive(comm, 5)
        assert error["type"] == "error" and error["code"] == "no_models", error
    finally:
        await comm.disconnect()
    MATRIX[(protocol, UNAUTHORIZED)] = {
        "saw": f"failed after {failed[0]['_t']:.1f} s: {reason} (permanent: retryable false, no Retry offered)",
        "done": False,
        "other": "done",
        "vote": f"refused (not_allowed); Retry refused: {retry_refusal['message']}",
        "counted": "no; out of the draw at once, last_error = the same sentence",
    }


def test_zz_fault_matrix(capsys):
    """The matrix of what the user saw, printed once every fault has run."""
    expected = (
        {(p, c.name) for p, c in FAILING_SIDE_CASES}
        | {(p, f"{f} ×2 (transient)") for p in PROTOCOLS for f in TRANSIENT}
        | {("openai", row) for row in (CONTENT_FILTER, UNAUTHORIZED, RETRY_AFTER)}
    )
    if set(MATRIX) != expected:
        pytest.skip("run the whole module to get the matrix")
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    rows = [("protocol", "fault", "what the user saw on the faulty side", "other side", "vote",
             "counted as a model failure")]
    rows += [
        (protocol, name, r["saw"], r["other"], r["vote"], r["counted"])
        for (protocol, name), r in sorted(MATRIX.items(), key=lambda item: order[item[0][0]])
    ]
    for (protocol, name), row in MATRIX.items():
        assert row["other"] == "done", (protocol, name)
        assert row["done"] == row["saw"].startswith("done"), (protocol, name)
        assert row["done"] == ("transient" in name or name == CONTENT_FILTER), (protocol, name)
    # The same fault reads the same to the user whichever protocol serves the model.
    for case in CASES:
        sentences = {re.sub(r"^failed after [\d.]+ s: ", "", MATRIX[(p, case.name)]["saw"]) for p in PROTOCOLS}
        if case.fault != "error-mid-stream":  # the servers' own error texts differ (TGI's and vLLM's)
            assert len(sentences) == 1, (case.name, sentences)
    with capsys.disabled():
        print("\n\nFault matrix (one side faulty, the other healthy; the faulty model served over each protocol):")
        for row in rows:
            print(" | ".join(row))
