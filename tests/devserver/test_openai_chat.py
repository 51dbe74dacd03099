"""The OpenAI-compatible routes over real HTTP (aiohttp): chunks, usage, errors and faults."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
import requests

from devserver import serve_in_thread
from tests.devserver.client import CLIENT_TIMEOUT, ZEPHYR_PROMPT, fast_config, set_fault
from tests.devserver.test_observer import Recorder

SYSTEM = "You are a helpful assistant."
QUESTION = "How do I repot orchids without hurting the roots?"
# The same conversation as ZEPHYR_PROMPT, which is what the server's own template makes of it.
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


async def post(base: str, body: dict, headers: dict | None = None) -> tuple[int, dict, str]:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
            f"{base}/v1/chat/completions", json=body, headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


async def stream(base: str, content: str = QUESTION, **body) -> tuple[list, str]:
    """(the events: dicts, "[DONE]" or ":" comments, in order; the raw text) of a streamed chat."""
    messages = [MESSAGES[0], {"role": "user", "content": content}]
    status, headers, raw = await post(base, {"model": "zephyr-7b-beta", "messages": messages, "stream": True} | body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events: list = []
    for block in raw.split("\n\n")[:-1]:
        if block.startswith(":"):
            events.append(":")
        else:
            assert block.startswith("data: ")
            data = block.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events, raw


def content_of(events: list) -> str:
    chunks = [e for e in events if isinstance(e, dict) and e.get("choices")]
    return "".join(e["choices"][0]["delta"].get("content", "") for e in chunks)


def tgi_reply(base: str, prompt: str = ZEPHYR_PROMPT, **params) -> dict:
    answer = requests.post(f"{base}/generate", json={"inputs": prompt, "parameters": {"details": True} | params},
                           timeout=CLIENT_TIMEOUT)
    answer.raise_for_status()
    return answer.json()


async def test_stream_chunks_in_order_and_the_same_text_as_tgi(url):
    events, _ = await stream(url)
    first, *middle, last, done = events
    assert done == "[DONE]"
    assert first["object"] == "chat.completion.chunk" and first["model"] == "zephyr-7b-beta"
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert all(set(e["choices"][0]["delta"]) == {"content"} and e["choices"][0]["finish_reason"] is None
               for e in middle)
    assert last["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert len({e["id"] for e in events[:-1]}) == 1 and first["id"].startswith("chatcmpl-")
    assert all("usage" not in e for e in events[:-1])
    tgi = tgi_reply(url)
    assert content_of(events) == tgi["generated_text"]
    # One chunk per token the TGI stream sends, bar the end-of-sequence token.
    assert len(middle) == tgi["details"]["generated_tokens"] - 1


async def test_usage_chunk_only_when_asked_and_length_finish(url):
    events, _ = await stream(url, max_tokens=5, stream_options={"include_usage": True})
    *chunks, finish, usage, done = events
    assert done == "[DONE]" and finish["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 17, "completion_tokens": 5,
                                                         "total_tokens": 22}
    assert len(chunks) == 6  # the role chunk, then five tokens
    assert content_of(events) == tgi_reply(url, max_new_tokens=5)["generated_text"]
    unasked, _ = await stream(url, max_completion_tokens=5, stream_options={"include_usage": False})
    assert len(unasked) == len(events) - 1 and all("usage" not in e for e in unasked[:-1])


async def test_non_streaming_answer(url):
    status, _, raw = await post(url, {"model": "zephyr-7b-beta", "messages": MESSAGES, "seed": 7})
    body = json.loads(raw)
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == "zephyr-7b-beta"
    (choice,) = body["choices"]
    tgi = tgi_reply(url, seed=7)
    assert choice["message"] == {"role": "assistant", "content": tgi["generated_text"]}
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    assert body["usage"] == {"prompt_tokens": 17, "completion_tokens": tgi["details"]["generated_tokens"],
                             "total_tokens": 17 + tgi["details"]["generated_tokens"]}
    assert tgi["generated_text"] != tgi_reply(url)["generated_text"]  # the seed counts


async def test_stop_sequences_end_the_reply_and_are_left_out(url):
    full = tgi_reply(url)["generated_text"]
    stop = full.split()[3]
    events, _ = await stream(url, stop=stop)
    assert content_of(events) == full[:full.index(stop)]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_echo_marker_in_the_last_user_message(url):
    events, _ = await stream(url, "Say <b>hi</b> [[devserver:echo]]")
    assert content_of(events) == "Say <b>hi</b>"


async def test_models_route(url):
    answer = requests.get(f"{url}/v1/models", timeout=CLIENT_TIMEOUT)
    assert answer.status_code == 200
    assert answer.json() == {"object": "list", "data": [
        {"id": "zephyr-7b-beta", "object": "model", "created": 0, "owned_by": "devserver"}]}


async def test_api_key_is_required_when_set():
    with serve_in_thread(fast_config(api_key="sk-dev")) as base:
        body = {"model": "zephyr-7b-beta", "messages": MESSAGES}
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "sk-dev"}):
            status, _, raw = await post(base, body, headers)
            assert status == 401
            error = json.loads(raw)["error"]
            assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
        models = requests.get(f"{base}/v1/models", timeout=CLIENT_TIMEOUT)
        assert models.status_code == 401
        status, _, _ = await post(base, body, {"Authorization": "Bearer sk-dev"})
        assert status == 200
        assert requests.get(f"{base}/v1/models", headers={"Authorization": "Bearer sk-dev"},
                            timeout=CLIENT_TIMEOUT).status_code == 200
        # TGI's routes don't ask for it.
        assert requests.post(f"{base}/generate", json={"inputs": "hi"}, timeout=CLIENT_TIMEOUT).status_code == 200


async def test_unknown_model_is_a_404(url):
    status, _, raw = await post(url, {"model": "gpt-4", "messages": MESSAGES})
    assert status == 404
    assert json.loads(raw) == {"error": {"message": "The model `gpt-4` does not exist.", "type": "NotFoundError",
                                         "param": None, "code": 404}}


async def test_context_length_is_a_400_in_vllms_words():
    with serve_in_thread(fast_config(max_input_tokens=8000)) as base:
        # "<|user|>\n" + 5744 words + "</s>\n<|assistant|>\n" is 5746 tokens by the server's count.
        long = [{"role": "user", "content": " ".join(["word"] * 5744)}]
        status, _, raw = await post(base, {"messages": long, "max_tokens": 256})
        assert status == 400
        assert json.loads(raw)["error"] == {
            "message": "This model's maximum context length is 4096 tokens. However, you requested 6002 tokens "
                       "(5746 in the messages, 256 in the completion). Please reduce the length of the messages "
                       "or completion.",
            "type": "BadRequestError", "param": None, "code": 400}


async def test_too_long_messages_and_bad_bodies_are_400s(url):
    long = [{"role": "user", "content": " ".join(["word"] * 3100)}]
    status, _, raw = await post(url, {"messages": long})
    assert status == 400 and "your messages resulted in 3102 tokens" in json.loads(raw)["error"]["message"]
    for body in ({"messages": []}, {"messages": [{"role": "robot", "content": "x"}]},
                 {"messages": MESSAGES, "temperature": 3}, {"messages": MESSAGES, "max_tokens": 0}):
        status, _, raw = await post(url, body)
        assert status == 400 and json.loads(raw)["error"]["type"] == "BadRequestError", body


@pytest.mark.parametrize("mode", ["overload", "overload-http"])
async def test_overload_is_a_429_with_retry_after(faulty, mode):
    set_fault(faulty, fault=mode)
    status, headers, raw = await post(faulty, {"messages": MESSAGES, "stream": True})
    assert status == 429 and headers["Retry-After"] == "1"
    assert json.loads(raw)["error"]["code"] == 429


async def test_past_the_concurrency_limit_is_a_429():
    with serve_in_thread(fast_config(max_concurrent_requests=0)) as base:
        status, headers, _ = await post(base, {"messages": MESSAGES})
        assert status == 429 and headers["Retry-After"] == "1"


async def test_the_retry_after_of_a_429_is_configurable():
    with serve_in_thread(fast_config(retry_after=4, fault="overload-http")) as base:
        status, headers, _ = await post(base, {"messages": MESSAGES, "stream": True})
        assert status == 429 and headers["Retry-After"] == "4"


async def test_error_mid_stream_in_vllms_shape(url):
    events, _ = await stream(url, f"{QUESTION} [[devserver:error-mid-stream:3]]")
    assert len(events) == 6 and events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert "CUDA out of memory" in error["message"] and (error["type"], error["code"]) == ("InternalServerError", 500)
    assert content_of(events) == tgi_reply(url, max_new_tokens=3)["generated_text"]


async def test_error_mid_stream_in_tgis_shape(url):
    events, _ = await stream(url, f"{QUESTION} [[devserver:error-mid-stream-tgi:2]]")
    assert len(events) == 5 and events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert set(error) == {"message", "http_status_code"} and error["http_status_code"] == 500
    status, _, raw = await post(url, {"messages": [{"role": "user", "content": "[[devserver:error-mid-stream-tgi]]"}]})
    assert status == 500 and json.loads(raw)["error"]["http_status_code"] == 500


async def test_cut_ends_without_finish_reason_or_done(url):
    events, raw = await stream(url, f"{QUESTION} [[devserver:cut:4]]", stream_options={"include_usage": True})
    assert len(events) == 5 and "[DONE]" not in raw and "finish_reason\":\"" not in raw


async def test_drop_aborts_the_connection(url):
    with pytest.raises(aiohttp.ClientError):
        await stream(url, f"{QUESTION} [[devserver:drop:2]]")


async def test_stall_pauses_then_carries_on():
    with serve_in_thread(fast_config(stall_seconds=0.6)) as base:
        started = time.monotonic()
        events, _ = await stream(base, f"{QUESTION} [[devserver:stall:2]]")
        assert time.monotonic() - started >= 0.6
        assert content_of(events) == tgi_reply(base)["generated_text"] and events[-1] == "[DONE]"


async def test_http_500_is_an_html_page(url):
    status, headers, raw = await post(url, {"messages": [{"role": "user", "content": "hi [[devserver:http-500]]"}]})
    assert status == 500 and headers["Content-Type"].startswith("text/html") and "nginx" in raw


async def test_content_filter_ends_the_reply_early(url):
    events, _ = await stream(url, f"{QUESTION} [[devserver:content-filter:3]]", stream_options={"include_usage": True})
    assert events[-3]["choices"][0]["finish_reason"] == "content_filter"
    assert events[-2]["usage"]["completion_tokens"] == 3 and events[-1] == "[DONE]"
    assert len(events) == 7  # role, three tokens, finish, usage, [DONE]
    marked = [MESSAGES[0], {"role": "user", "content": f"{QUESTION} [[devserver:content-filter:3]]"}]
    status, _, raw = await post(url, {"messages": marked})
    (choice,) = json.loads(raw)["choices"]
    assert status == 200 and choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == content_of(events)


async def test_unauthorized_marker_is_a_401(url):
    status, _, raw = await post(url, {"messages": [{"role": "user", "content": "hi [[devserver:unauthorized]]"}]})
    assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"


async def test_tgi_routes_ignore_the_openai_only_faults(url):
    plain = tgi_reply(url)["generated_text"]
    for mode in ("content-filter", "unauthorized", "error-mid-stream-tgi"):
        prompt = ZEPHYR_PROMPT.replace("roots?", f"roots? [[devserver:{mode}:2]]")
        assert tgi_reply(url, prompt)["generated_text"] == plain


async def test_keep_alive_before_a_slow_first_token():
    with serve_in_thread(fast_config(time_to_first_token=1.2)) as base:
        events, raw = await stream(base, max_tokens=2)
    assert raw.startswith(": keep-alive\n\n") and events[:2] == [":", ":"]
    assert "role" in events[2]["choices"][0]["delta"]
    with serve_in_thread(fast_config(time_to_first_token=0.3)) as base:
        _, raw = await stream(base, max_tokens=2)
    assert ":" not in [block[:1] for block in raw.split("\n\n")]


async def test_paced_and_observed_like_the_tgi_stream():
    recorder = Recorder()
    with serve_in_thread(fast_config(observer=recorder, time_to_first_token=0.1, tokens_per_second=40)) as base:
        started = time.monotonic()
        events, _ = await stream(base)
        elapsed = time.monotonic() - started
        metrics = requests.get(f"{base}/metrics", timeout=CLIENT_TIMEOUT).text
    (kind, _, model_id, _), *tokens = recorder.calls
    assert (kind, model_id) == ("started", "zephyr-7b-beta") and all(call[0] == "token" for call in tokens)
    assert [text for _, _, text, special, _ in tokens if not special] == [
        e["choices"][0]["delta"]["content"] for e in events[1:-2]]
    assert tokens[-1][3] is True  # the end-of-sequence token, paced like the others
    assert elapsed >= 0.1 + (len(tokens) - 1) / 40 * 0.9
    assert "tgi_request_count 1\n" in metrics and "tgi_request_success 1\n" in metrics
