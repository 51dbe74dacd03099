"""Faults, as the client experiences them: from the config, the runtime switch and prompt markers."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import requests
from text_generation import Client
from text_generation import errors as tgi_errors

from devserver import FAULT_MODES, serve_in_thread
from tests.devserver.client import CLIENT_TIMEOUT, fast_config, set_fault, stream_async, stream_sync

# text_generation 0.7 calls pydantic v1-style APIs on every request.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def collect_until_error(iterator) -> tuple[list, Exception | None]:
    events = []
    try:
        events.extend(iterator)  # the events taken before an exception stay in the list
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
