"""The TGI routes as the real `text_generation` client and raw HTTP see them: the stream, its
SSE framing, the single answers, `/info`, `/health`, `/metrics`, concurrency and pacing."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests
from text_generation import AsyncClient, Client
from text_generation import errors as tgi_errors

from devserver import serve_in_thread, text
from tests.devserver.client import (
    CLIENT_TIMEOUT,
    ZEPHYR_PROMPT,
    fast_config,
    stream_async,
    stream_sync,
    visible_text,
)

# text_generation 0.7 calls pydantic v1-style APIs on every request.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def check_complete_stream(events) -> None:
    final = events[-1]
    assert final.token.special and final.token.text == "</s>" and final.token.id == 2
    assert all(e.details is None and e.generated_text is None for e in events[:-1])
    assert final.generated_text == visible_text(events)
    assert final.details.finish_reason == "eos_token"
    assert final.details.generated_tokens == len(events)
    assert text.MIN_REPLY_TOKENS < len(events) <= text.MAX_REPLY_TOKENS + 1


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


@pytest.mark.asyncio
async def test_pacing():
    with serve_in_thread(fast_config(time_to_first_token=0.3, tokens_per_second=50)) as base:
        started = time.monotonic()
        arrivals = [
            time.monotonic() - started
            async for _ in AsyncClient(base, timeout=CLIENT_TIMEOUT).generate_stream("hi", max_new_tokens=10)
        ]
    assert arrivals[0] >= 0.3
    assert arrivals[-1] - arrivals[0] >= 9 / 50 * 0.9
