"""The TGI development server, driven over real HTTP by the real `text_generation` client.

No Django here: the server runs on a background thread (`serve_in_thread`) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest
import requests
from text_generation import AsyncClient, Client
from text_generation import errors as tgi_errors

from inference import devserver_text
from inference.devserver import (
    FAULT_MODES,
    DevServerConfig,
    add_arguments,
    config_from_options,
    serve_in_thread,
)

# text_generation 0.7 calls pydantic v1-style APIs on every request.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ZEPHYR_PROMPT = (
    "<|system|>\nYou are a helpful assistant.</s>\n"
    "<|user|>\nHow do I repot orchids without hurting the roots?</s>\n<|assistant|>\n"
)
CLIENT_TIMEOUT = 5


def fast_config(**overrides) -> DevServerConfig:
    options = {"model_id": "zephyr-7b-beta", "time_to_first_token": 0, "tokens_per_second": 0}
    return DevServerConfig(**(options | overrides))


@pytest.fixture(scope="module")
def url():
    with serve_in_thread(fast_config()) as base_url:
        yield base_url


def stream_sync(base_url: str, prompt: str = ZEPHYR_PROMPT, **kwargs) -> list:
    kwargs.setdefault("max_new_tokens", 256)
    return list(Client(base_url, timeout=CLIENT_TIMEOUT).generate_stream(prompt, **kwargs))


async def stream_async(base_url: str, prompt: str = ZEPHYR_PROMPT, timeout=CLIENT_TIMEOUT, **kwargs) -> list:
    kwargs.setdefault("max_new_tokens", 256)
    return [r async for r in AsyncClient(base_url, timeout=timeout).generate_stream(prompt, **kwargs)]


def visible_text(events) -> str:
    return "".join(e.token.text for e in events if not e.token.special)


def set_fault(base_url: str, **body) -> dict:
    answer = requests.post(f"{base_url}/__devserver__/fault", json=body, timeout=CLIENT_TIMEOUT)
    answer.raise_for_status()
    return answer.json()


# --- the stream as the client sees it ----------------------------------------------------------

def check_complete_stream(events) -> None:
    final = events[-1]
    assert final.token.special and final.token.text == "</s>" and final.token.id == 2
    assert all(e.details is None and e.generated_text is None for e in events[:-1])
    assert final.generated_text == visible_text(events)
    assert final.details.finish_reason == "eos_token"
    assert final.details.generated_tokens == len(events)
    assert devserver_text.MIN_REPLY_TOKENS < len(events) <= devserver_text.MAX_REPLY_TOKENS + 1


def test_stream_parses_with_sync_client(url):
    check_complete_stream(stream_sync(url))


@pytest.mark.asyncio
async def test_stream_parses_with_async_client(url):
    check_complete_stream(await stream_async(url))


def test_stream_splits_a_character_across_an_empty_token(url):
    events = stream_sync(url)
    empties = [i for i, e in enumerate(events) if e.token.text == "" and not e.token.special]
    assert empties, "every reply has at least one character split over two tokens"
    follower = events[empties[0] + 1].token.text
    assert any(ord(ch) > 127 for ch in follower)
    assert events[-1].generated_text == visible_text(events)


def test_raw_sse_framing(url):
    answer = requests.post(f"{url}/generate_stream", json={"inputs": "Hello there", "parameters": {}},
                           timeout=CLIENT_TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    body = answer.content.decode()  # no charset in the header, as with TGI: the bytes are UTF-8
    chunks = body.split("\n\n")
    assert chunks[-1] == ""
    events = [json.loads(c.removeprefix("data:")) for c in chunks[:-1]]
    assert all(c.startswith("data:{") for c in chunks[:-1])
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))
    assert set(events[0]) >= {"index", "token", "generated_text", "details"}
    assert set(events[0]["token"]) == {"id", "text", "logprob", "special"}
    assert events[-1]["details"] == {"finish_reason": "eos_token", "generated_tokens": len(events),
                                     "seed": None, "input_length": 2}
    assert "—" in body  # UTF-8 as is, like serde_json, not \u escapes


def test_compat_route_streams_only_when_asked(url):
    body = {"inputs": "Hello there", "parameters": {"details": True}}
    single = requests.post(url, json=body, timeout=CLIENT_TIMEOUT)
    assert single.headers["Content-Type"].startswith("application/json")
    assert isinstance(single.json(), list) and len(single.json()) == 1
    streamed = requests.post(url, json=body | {"stream": True}, timeout=CLIENT_TIMEOUT)
    assert streamed.headers["Content-Type"].startswith("text/event-stream")


def test_generate_route_answers_an_object(url):
    plain = requests.post(f"{url}/generate", json={"inputs": "Hello there"}, timeout=CLIENT_TIMEOUT).json()
    assert list(plain) == ["generated_text"]  # TGI leaves `details` out unless asked
    detailed = requests.post(f"{url}/generate", json={"inputs": "Hello there", "parameters": {"details": True}},
                             timeout=CLIENT_TIMEOUT).json()
    assert detailed["generated_text"] == plain["generated_text"]
    details = detailed["details"]
    assert details["finish_reason"] == "eos_token" and details["prefill"] == []
    assert details["generated_tokens"] == len(details["tokens"])
    assert "".join(t["text"] for t in details["tokens"] if not t["special"]) == plain["generated_text"]


def test_client_generate_matches_the_stream(url):
    response = Client(url, timeout=CLIENT_TIMEOUT).generate(ZEPHYR_PROMPT, max_new_tokens=256)
    events = stream_sync(url)
    assert response.generated_text == events[-1].generated_text
    assert response.details.finish_reason == "eos_token"
    assert [t.text for t in response.details.tokens] == [e.token.text for e in events]


def test_return_full_text_prepends_the_prompt(url):
    response = Client(url, timeout=CLIENT_TIMEOUT).generate("Hello there", return_full_text=True)
    assert response.generated_text.startswith("Hello there")


# --- what the reply is -------------------------------------------------------------------------

def test_replies_are_deterministic(url):
    assert stream_sync(url)[-1].generated_text == stream_sync(url)[-1].generated_text


def test_seed_changes_the_reply_and_is_echoed(url):
    first, second = stream_sync(url, seed=1), stream_sync(url, seed=2)
    assert first[-1].details.seed == 1 and second[-1].details.seed == 2
    assert first[-1].generated_text != second[-1].generated_text
    assert stream_sync(url, seed=1)[-1].generated_text == first[-1].generated_text


def test_models_reply_differently():
    with serve_in_thread(fast_config(model_id="mistral-7b-instruct")) as other:
        with serve_in_thread(fast_config(model_id="llama-2-7b-chat")) as third:
            assert stream_sync(other)[-1].generated_text != stream_sync(third)[-1].generated_text


def test_reply_mentions_the_question(url):
    reply = stream_sync(url)[-1].generated_text.lower()
    assert "orchids" in reply or "roots" in reply or "repot" in reply or "hurting" in reply


@pytest.mark.parametrize("prompt, expected", [
    ("<|user|>\nfirst</s>\n<|assistant|>\nok</s>\n<|user|>\nsecond question</s>\n<|assistant|>\n",
     "second question"),
    ("<s>[INST] <<SYS>>\nbe nice\n<</SYS>>\n\none [/INST] ok </s><s>[INST] two [/INST]", "two"),
    ("<|im_start|>user\nalpha<|im_end|>\n<|im_start|>assistant\n", "alpha"),
    ("no template at all", "no template at all"),
])
def test_last_user_message(prompt, expected):
    assert devserver_text.last_user_message(prompt) == expected


def test_reply_tokens_always_rebuild_the_text():
    lengths = set()
    for i in range(300):
        prompt = f"<|user|>\nQuestion {i}: what about café gardening in Zürich?</s>\n<|assistant|>\n"
        for model in ("a", "b"):
            tokens = devserver_text.reply_tokens(model, prompt)
            assert "".join(t.text for t in tokens) == devserver_text.reply_text(model, prompt)
            assert any(t.text == "" for t in tokens)
            lengths.add(len(tokens))
    assert min(lengths) >= devserver_text.MIN_REPLY_TOKENS
    assert max(lengths) <= devserver_text.MAX_REPLY_TOKENS


# --- where the reply stops ---------------------------------------------------------------------

def test_stop_sequence_stops_after_the_completing_token_and_stays_in_the_text(url):
    full = stream_sync(url)
    stop = full[6].token.text + full[7].token.text
    events = stream_sync(url, stop_sequences=[stop])
    final = events[-1]
    assert final.details.finish_reason == "stop_sequence"
    assert len(events) == 8 and not final.token.special
    assert final.generated_text == visible_text(full[:8]) and final.generated_text.endswith(stop)


def test_max_new_tokens_caps_the_reply(url):
    full = stream_sync(url)
    reply_length = len(full) - 1  # without </s>
    capped = stream_sync(url, max_new_tokens=7)
    assert len(capped) == 7 and capped[-1].details.finish_reason == "length"
    assert not capped[-1].token.special
    assert capped[-1].generated_text == visible_text(full[:7])
    exact = stream_sync(url, max_new_tokens=reply_length)  # no room left for </s>
    assert exact[-1].details.finish_reason == "length" and not exact[-1].token.special
    room = stream_sync(url, max_new_tokens=reply_length + 1)
    assert room[-1].details.finish_reason == "eos_token" and room[-1].token.special


# --- the other TGI routes ----------------------------------------------------------------------

def test_info(url):
    info = requests.get(f"{url}/info", timeout=CLIENT_TIMEOUT).json()
    assert info["model_id"] == "zephyr-7b-beta"
    assert info["model_pipeline_tag"] == "text-generation"
    assert info["router"] == "text-generation-router"
    assert info["max_concurrent_requests"] == 128
    assert info["max_input_tokens"] == 3072 and info["max_total_tokens"] == 4096
    assert {"model_sha", "max_best_of", "max_stop_sequences", "validation_workers",
            "max_client_batch_size", "version", "sha", "docker_label"} <= set(info)


def test_health_and_unhealthy_count():
    with serve_in_thread(fast_config(fault="unhealthy", fault_count=2)) as base:
        for _ in range(2):
            sick = requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT)
            assert sick.status_code == 503
            assert sick.json() == {"error": "unhealthy", "error_type": "healthcheck"}
        assert stream_sync(base)[-1].details is not None  # generation keeps working
        healthy = requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT)
        assert healthy.status_code == 200 and healthy.content == b""


def test_metrics_count_requests():
    with serve_in_thread(fast_config()) as base:
        stream_sync(base)
        with pytest.raises(tgi_errors.OverloadedError):
            stream_sync(base, "hi [[devserver:overload]]")
        text = requests.get(f"{base}/metrics", timeout=CLIENT_TIMEOUT).text
    assert "tgi_request_count 2\n" in text and "tgi_request_success 1\n" in text
    assert 'tgi_request_failure{err="overloaded"} 1' in text
    assert "tgi_queue_size 0\n" in text and "tgi_batch_current_size 0\n" in text


# --- faults, as the client experiences them ----------------------------------------------------

@pytest.fixture
def faulty():
    """A fresh server per test, so fault state never leaks between tests."""
    with serve_in_thread(fast_config(stall_seconds=30)) as base_url:
        yield base_url


def collect_until_error(iterator) -> tuple[list, Exception | None]:
    events = []
    try:
        for event in iterator:
            events.append(event)
    except Exception as exc:  # noqa: BLE001 - the point is to see what is raised
        return events, exc
    return events, None


def test_overload_in_stream_and_on_generate(faulty):
    set_fault(faulty, fault="overload")
    events, error = collect_until_error(Client(faulty, timeout=CLIENT_TIMEOUT).generate_stream("hi"))
    assert events == [] and isinstance(error, tgi_errors.OverloadedError)
    raw = requests.post(f"{faulty}/generate_stream", json={"inputs": "hi"}, timeout=CLIENT_TIMEOUT)
    assert raw.status_code == 200
    assert raw.text == 'data:{"error":"Model is overloaded","error_type":"overloaded"}\n\n'
    single = requests.post(f"{faulty}/generate", json={"inputs": "hi"}, timeout=CLIENT_TIMEOUT)
    assert single.status_code == 429 and single.json()["error_type"] == "overloaded"
    with pytest.raises(tgi_errors.OverloadedError):
        Client(faulty, timeout=CLIENT_TIMEOUT).generate("hi")


@pytest.mark.asyncio
async def test_overload_http_is_a_429_on_every_route(faulty):
    set_fault(faulty, fault="overload-http")
    raw = requests.post(f"{faulty}/generate_stream", json={"inputs": "hi"}, timeout=CLIENT_TIMEOUT)
    assert raw.status_code == 429 and raw.json()["error_type"] == "overloaded"
    # The body carries error_type, so the client reports OverloadedError, not RateLimitExceededError.
    with pytest.raises(tgi_errors.OverloadedError):
        stream_sync(faulty)
    with pytest.raises(tgi_errors.OverloadedError):
        await stream_async(faulty)


@pytest.mark.asyncio
async def test_error_mid_stream_raises_generation_error_after_the_tokens(faulty):
    set_fault(faulty, fault="error-mid-stream", after_tokens=4)
    events, error = collect_until_error(Client(faulty, timeout=CLIENT_TIMEOUT).generate_stream("hi"))
    assert len(events) == 4 and isinstance(error, tgi_errors.GenerationError)
    assert "CUDA out of memory" in str(error)
    with pytest.raises(tgi_errors.GenerationError):
        await stream_async(faulty)
    with pytest.raises(tgi_errors.GenerationError):
        Client(faulty, timeout=CLIENT_TIMEOUT).generate("hi")


@pytest.mark.asyncio
async def test_cut_ends_the_stream_without_a_final_event(faulty):
    set_fault(faulty, fault="cut", after_tokens=3)
    for events in (stream_sync(faulty), await stream_async(faulty)):
        assert len(events) == 3
        assert all(e.details is None and e.generated_text is None for e in events)
    with pytest.raises(tgi_errors.IncompleteGenerationError):
        Client(faulty, timeout=CLIENT_TIMEOUT).generate("hi")


@pytest.mark.asyncio
async def test_stall_hits_the_client_timeout(faulty):
    set_fault(faulty, fault="stall", after_tokens=2)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await stream_async(faulty, timeout=0.5)
    # requests wraps the read timeout met while iterating into a ConnectionError.
    with pytest.raises(requests.exceptions.ConnectionError):
        list(Client(faulty, timeout=0.5).generate_stream("hi"))
    assert time.monotonic() - started < 5


@pytest.mark.asyncio
async def test_drop_is_a_broken_connection(faulty):
    set_fault(faulty, fault="drop", after_tokens=2)
    with pytest.raises(aiohttp.ClientPayloadError):
        await stream_async(faulty)
    events, error = collect_until_error(Client(faulty, timeout=CLIENT_TIMEOUT).generate_stream("hi"))
    assert len(events) == 2 and isinstance(error, requests.exceptions.ChunkedEncodingError)


@pytest.mark.asyncio
async def test_http_500_is_an_html_page(faulty):
    set_fault(faulty, fault="http-500")
    raw = requests.post(faulty, json={"inputs": "hi"}, timeout=CLIENT_TIMEOUT)
    assert raw.status_code == 500 and raw.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):  # requests' JSONDecodeError is one
        stream_sync(faulty)
    # aiohttp refuses to decode a text/html body as JSON before trying.
    with pytest.raises(aiohttp.ContentTypeError):
        await stream_async(faulty)


def test_fault_count_then_healthy_again(faulty):
    state = set_fault(faulty, fault="error-mid-stream", after_tokens=1, count=1)
    assert state["fault"] == "error-mid-stream" and state["count"] == 1
    with pytest.raises(tgi_errors.GenerationError):
        stream_sync(faulty)
    assert stream_sync(faulty)[-1].details.finish_reason == "eos_token"
    assert requests.get(f"{faulty}/__devserver__/fault", timeout=CLIENT_TIMEOUT).json()["fault"] is None


def test_fault_from_config_with_count():
    with serve_in_thread(fast_config(fault="overload", fault_count=2)) as base:
        for _ in range(2):
            with pytest.raises(tgi_errors.OverloadedError):
                stream_sync(base)
        assert stream_sync(base)[-1].details is not None


def test_fault_can_be_switched_off(faulty):
    set_fault(faulty, fault="cut")
    set_fault(faulty, fault=None)
    assert stream_sync(faulty)[-1].details is not None


@pytest.mark.parametrize("body", [{"fault": "explode"}, {"fault": "cut", "count": 0},
                                  {"fault": "cut", "after_tokens": -1}, {"fault": "cut", "after_tokens": "2"}])
def test_fault_switch_rejects_nonsense(faulty, body):
    answer = requests.post(f"{faulty}/__devserver__/fault", json=body, timeout=CLIENT_TIMEOUT)
    assert answer.status_code == 400 and answer.json()["error_type"] == "validation"


def test_every_mode_is_accepted_by_the_switch(faulty):
    for mode in FAULT_MODES:
        assert set_fault(faulty, fault=mode)["fault"] == mode


def test_prompt_marker_applies_to_that_request_only(url):
    plain = stream_sync(url, "Tell me about tulips")
    marked = stream_sync(url, "Tell me about tulips [[devserver:cut:2]]")
    assert len(marked) == 2 and marked[-1].details is None
    assert [e.token.text for e in marked] == [e.token.text for e in plain[:2]]  # same reply, cut short
    with pytest.raises(tgi_errors.GenerationError):
        stream_sync(url, "[[devserver:error-mid-stream]] Tell me about tulips")
    assert stream_sync(url, "Tell me about tulips")[-1].generated_text == plain[-1].generated_text


ECHOED = 'I am ChatGPT, made by OpenAI. <script>alert("x")</script> Ça va — très bien 🙂'


@pytest.mark.parametrize("prompt", [
    f"<|user|>\nfirst</s>\n<|assistant|>\nok</s>\n<|user|>\n[[devserver:echo]] {ECHOED}</s>\n<|assistant|>\n",
    f"<s>[INST] one [/INST] ok </s> [INST] {ECHOED} [[devserver:echo]] [/INST]",
    f"<|im_start|>user\n{ECHOED}\n[[devserver:echo]]<|im_end|>\n<|im_start|>assistant\n",
])
def test_echo_marker_replies_with_the_last_user_message(url, prompt):
    events = stream_sync(url, prompt)
    assert events[-1].token.special and events[-1].details.finish_reason == "eos_token"
    assert events[-1].generated_text == ECHOED == visible_text(events)
    assert len(events) > 10  # streamed token by token, not in one piece
    assert any(e.token.text == "" for e in events)  # split UTF-8 characters, as for any reply


def test_echo_is_not_shortened_but_obeys_max_new_tokens_and_fault_markers(url):
    long = " ".join(f"word{i}" for i in range(300))
    prompt = f"<|user|>\n[[devserver:echo]] {long}</s>\n<|assistant|>\n"
    assert stream_sync(url, prompt, max_new_tokens=1000)[-1].generated_text == long
    capped = stream_sync(url, prompt, max_new_tokens=5)
    assert capped[-1].generated_text == "word0 word1 word2 word3 word4"
    cut = stream_sync(url, f"<|user|>\n[[devserver:echo]] [[devserver:cut:3]] {long}</s>\n<|assistant|>\n")
    assert visible_text(cut) == "word0 word1 word2" and cut[-1].details is None
    # Without the marker the same text gets an ordinary reply.
    assert stream_sync(url, f"<|user|>\n{long}</s>\n<|assistant|>\n")[-1].generated_text != long


@pytest.mark.asyncio
async def test_real_overload_past_max_concurrent_requests():
    config = fast_config(max_concurrent_requests=1, tokens_per_second=20)
    with serve_in_thread(config) as base:
        first = AsyncClient(base, timeout=CLIENT_TIMEOUT).generate_stream("a long answer please")
        await anext(first)  # the one slot is now taken
        with pytest.raises(tgi_errors.OverloadedError):
            await stream_async(base, "second")
        single = requests.post(f"{base}/generate", json={"inputs": "third"}, timeout=CLIENT_TIMEOUT)
        assert single.status_code == 429
        await first.aclose()  # hanging up frees the slot, as in TGI
        for _ in range(50):
            try:
                events = await stream_async(base, "fourth", max_new_tokens=3)
                break
            except tgi_errors.OverloadedError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("the slot was never freed")
        assert len(events) == 3


# --- validation --------------------------------------------------------------------------------

@pytest.mark.parametrize("parameters, message", [
    ({"temperature": 0}, "`temperature` must be strictly positive"),
    ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
    ({"top_p": 0}, "`top_p` must be > 0.0 and < 1.0"),
    ({"top_k": 0}, "`top_k` must be strictly positive"),
    ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
    ({"max_new_tokens": 4096}, "`inputs` tokens + `max_new_tokens` must be <= 4096"),
])
def test_validation_errors(url, parameters, message):
    body = {"inputs": "two words", "parameters": parameters}
    single = requests.post(f"{url}/generate", json=body, timeout=CLIENT_TIMEOUT)
    assert single.status_code == 422
    assert single.json()["error_type"] == "validation" and message in single.json()["error"]
    streamed = requests.post(f"{url}/generate_stream", json=body, timeout=CLIENT_TIMEOUT)
    assert streamed.status_code == 200
    event = json.loads(streamed.text.removeprefix("data:"))
    assert event["error_type"] == "validation" and message in event["error"]


def test_empty_inputs_are_refused(url):
    single = requests.post(f"{url}/generate", json={"inputs": ""}, timeout=CLIENT_TIMEOUT)
    assert single.status_code == 422 and "`inputs` cannot be empty" in single.json()["error"]


def test_client_sees_server_side_validation_as_validation_error():
    with serve_in_thread(fast_config(max_input_tokens=10, max_total_tokens=20)) as base:
        with pytest.raises(tgi_errors.ValidationError, match="must be <= 20"):
            stream_sync(base, "one two three four five", max_new_tokens=16)
        with pytest.raises(tgi_errors.ValidationError, match="stop sequences"):
            stream_sync(base, "hi", max_new_tokens=5, stop_sequences=list("abcde"))
        with pytest.raises(tgi_errors.ValidationError, match="must be <= 20"):
            Client(base, timeout=CLIENT_TIMEOUT).generate("one two three four five", max_new_tokens=16)


# --- pacing ------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_pacing():
    with serve_in_thread(fast_config(time_to_first_token=0.3, tokens_per_second=50)) as base:
        started = time.monotonic()
        arrivals = []
        async for _ in AsyncClient(base, timeout=CLIENT_TIMEOUT).generate_stream("hi", max_new_tokens=10):
            arrivals.append(time.monotonic() - started)
    assert arrivals[0] >= 0.3
    assert arrivals[-1] - arrivals[0] >= 9 / 50 * 0.9


# --- starting it -------------------------------------------------------------------------------

def test_command_line_options_become_a_config():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args([
        "--model-id", "m", "--port", "9000", "--ttft", "0.5", "--tokens-per-second", "12",
        "--max-concurrent-requests", "3", "--fault", "cut", "--fault-after-tokens", "2", "--fault-count", "1",
    ]))
    config = config_from_options(options)
    assert options["port"] == 9000 and options["host"] == "127.0.0.1"
    assert (config.model_id, config.time_to_first_token, config.tokens_per_second) == ("m", 0.5, 12)
    assert (config.max_concurrent_requests, config.fault, config.fault_after_tokens, config.fault_count) == (
        3, "cut", 2, 1)


def test_module_runs_as_a_program():
    root = Path(__file__).resolve().parents[2]
    shown = subprocess.run([sys.executable, "-m", "inference.devserver", "--help"], cwd=root,
                           capture_output=True, text=True, timeout=20)
    assert shown.returncode == 0 and "--tokens-per-second" in shown.stdout


def test_serve_in_thread_stops_cleanly():
    before = threading.active_count()
    with serve_in_thread(fast_config()) as base:
        assert requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT).status_code == 200
    assert threading.active_count() == before
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT)
