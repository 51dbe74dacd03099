"""OpenAIChatBackend and openai_probe against the dev server over real HTTP (the real `openai` client).

The dev server speaks both protocols, so the same conversation can be asked of both backends: the
texts, and the sentences for people when something goes wrong, must be the same whichever way a
model is served.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
import requests

from devserver import DevServerConfig, serve_in_thread
from devserver.openai_chat import chat_prompt
from devserver.text import count_input_tokens
from inference.backends import Delta, Finished, GenerationRequest
from inference.failures import FailureKind, GenerationFailure
from inference.openai_chat import OpenAIChatBackend, clients_close, openai_probe
from inference.tgi import TgiBackend
from tests.helpers import free_port

MODEL = "zephyr-7b-beta"
PROMPT = "Explain recursion briefly"
# A key no message, log line or page may ever show; the keyed server accepts only RIGHT_KEY.
SENTINEL = "sk-sentinel-4f1c9a7e2b8d3c6f0a5e9b1d7c3f8a2e"
RIGHT_KEY = "sk-right-key-0123456789abcdef"


def fast(**overrides) -> DevServerConfig:
    return DevServerConfig(**({"model_id": MODEL, "time_to_first_token": 0, "tokens_per_second": 0} | overrides))


@pytest.fixture(scope="module")
def url():
    with serve_in_thread(fast(stall_seconds=30)) as base:
        yield base


@pytest.fixture(scope="module")
def paced_url():
    """Slow enough that a reply is still streaming seconds after it began."""
    with serve_in_thread(fast(tokens_per_second=20)) as base:
        yield base


@pytest.fixture(scope="module")
def keyed_url():
    with serve_in_thread(fast(api_key=RIGHT_KEY)) as base:
        yield base


def request_for(base: str, prompt: str = PROMPT, **kw) -> GenerationRequest:
    """A request as the arena makes one for a model served at `base` over the OpenAI protocol."""
    kw.setdefault("served_model", MODEL)
    return GenerationRequest(
        endpoint_url=f"{base}/v1", template="", messages=[{"role": "user", "content": prompt}], **kw
    )


def tgi_request_for(base: str, prompt: str = PROMPT, **kw) -> GenerationRequest:
    return GenerationRequest(endpoint_url=base, template="zephyr", messages=[{"role": "user", "content": prompt}], **kw)


async def collect(request: GenerationRequest, backend=None) -> tuple[list[str], Finished]:
    deltas: list[str] = []
    finished = None
    async for event in (backend or OpenAIChatBackend()).stream(request):
        if isinstance(event, Delta):
            assert finished is None, "no delta may follow the final event"
            assert event.text, "an empty delta (the role chunk, the usage chunk) must not be yielded"
            deltas.append(event.text)
        else:
            assert isinstance(event, Finished) and finished is None
            finished = event
    assert finished is not None, "a stream ends with exactly one Finished"
    return deltas, finished


async def failure_of(request: GenerationRequest, backend=None) -> tuple[list[str], GenerationFailure]:
    deltas: list[str] = []
    with pytest.raises(GenerationFailure) as failure:
        async for event in (backend or OpenAIChatBackend()).stream(request):
            assert isinstance(event, Delta), f"a faulty stream must never finish as a success: {event}"
            deltas.append(event.text)
    return deltas, failure.value


def metrics(base: str) -> dict[str, int]:
    """The dev server's counters from /metrics (generation requests, queued and decoding ones)."""
    values = {}
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            values[name] = int(value)
    return values


async def in_flight(base: str) -> int:
    counters = await asyncio.to_thread(metrics, base)
    return counters["tgi_queue_size"] + counters["tgi_batch_current_size"]


def generated_tokens(base: str, prompt: str = PROMPT) -> int:
    """How many tokens the server generates for this conversation (TGI's /generate details)."""
    inputs = chat_prompt([{"role": "user", "content": prompt}])
    answer = requests.post(f"{base}/generate", json={"inputs": inputs, "parameters": {"details": True}}, timeout=5)
    answer.raise_for_status()
    return answer.json()["details"]["generated_tokens"]


# --- a healthy stream ------------------------------------------------------------------------

async def test_deltas_add_up_to_the_final_text_the_same_as_over_tgi(url):
    deltas, finished = await collect(request_for(url))
    assert len(deltas) > 5
    assert "".join(deltas) == finished.text
    assert finished.finish_reason == "stop"
    assert "</s>" not in finished.text
    # The server templates the messages itself: the same conversation, the same reply as over TGI.
    _, over_tgi = await collect(tgi_request_for(url), TgiBackend())
    assert finished.text == over_tgi.text


async def test_usage_comes_from_the_usage_chunk(url):
    deltas, finished = await collect(request_for(url))
    # The server's own counts, not the chunks': its end-of-sequence token sends no content.
    assert finished.token_count == generated_tokens(url)
    assert finished.token_count > len(deltas)
    assert finished.prompt_tokens == count_input_tokens(chat_prompt([{"role": "user", "content": PROMPT}]))


async def test_max_new_tokens_ends_the_reply_with_length(url):
    deltas, finished = await collect(request_for(url, parameters={"max_new_tokens": 4}))
    assert finished.finish_reason == "length"
    assert finished.token_count == 4
    assert len(deltas) <= 4 and "".join(deltas) == finished.text


async def test_stop_sequences_end_the_reply_and_are_left_out(url):
    _, full = await collect(request_for(url))
    words = full.text.split()
    stop = words[len(words) // 2]
    deltas, finished = await collect(request_for(url, parameters={"stop": [stop]}))
    assert finished.finish_reason == "stop"
    assert stop not in finished.text
    assert full.text.startswith(finished.text) and len(finished.text) < len(full.text)
    assert "".join(deltas) == finished.text


async def test_keep_alive_comments_carry_a_slow_first_token_past_the_stall_limit():
    # 2.5 s to the first token, a `: keep-alive` comment each second meanwhile: the server is
    # plainly alive (queueing, prefilling), so a 1.5 s stall limit must not end the reply.
    with serve_in_thread(fast(time_to_first_token=2.5)) as base:
        started = time.monotonic()
        deltas, finished = await collect(request_for(base, stall_seconds=1.5, timeout_seconds=20))
        assert time.monotonic() - started >= 2.5
    assert "".join(deltas) == finished.text and finished.finish_reason == "stop"


# --- faults: each a typed failure with one sentence for people -------------------------------

FAULTS = [
    # marker, kind, retryable, the sentence (regex), tokens streamed before the failure
    ("overload", "overloaded", True, r"^The model server is overloaded; try again shortly\.$", 0),
    ("overload-http", "overloaded", True, r"^The model server is overloaded; try again shortly\.$", 0),
    ("error-mid-stream:3", "generation", False, r"^The model failed while generating: CUDA out of memory\b", 3),
    ("error-mid-stream-tgi:3", "generation", False,
     r"^The model failed while generating: Request failed during generation: Server error: CUDA out of memory\b", 3),
    ("cut:3", "incomplete", False, r"^The model server ended the reply before finishing it\.$", 3),
    ("http-500", "unavailable", True, r"^The model server answered HTTP 500\.$", 0),
    ("unauthorized", "misconfigured", False, r"^The model server refused this model's API key \(HTTP 401\)", 0),
]


@pytest.mark.parametrize("marker, kind, retryable, sentence, streamed", FAULTS, ids=[f[0] for f in FAULTS])
async def test_each_server_fault_becomes_a_typed_failure(url, marker, kind, retryable, sentence, streamed):
    deltas, failure = await failure_of(request_for(url, prompt=f"Hello [[devserver:{marker}]]"))
    assert failure.kind == kind
    assert failure.retryable is retryable
    assert re.search(sentence, failure.message), failure.message
    assert "\n" not in failure.message and "Error code" not in failure.message and "<html" not in failure.message
    assert len(deltas) == streamed


async def test_a_dropped_connection_is_disconnected_and_keeps_what_arrived_before_it(paced_url):
    # Paced: on an unpaced server the bytes and the reset arrive in one read, and aiohttp (like any
    # reader of a reset socket) reports the reset first.
    deltas, failure = await failure_of(request_for(paced_url, prompt="Hello [[devserver:drop:3]]"))
    assert failure.kind == "disconnected" and failure.retryable is False
    assert failure.message == "The connection to the model server was lost mid-reply."
    assert len(deltas) == 3


async def test_error_mid_stream_keeps_the_text_sent_before_it(url):
    _, full = await collect(request_for(url, prompt="Hello"))
    deltas, failure = await failure_of(request_for(url, prompt="Hello [[devserver:error-mid-stream:3]]"))
    assert failure.kind == "generation" and full.text.startswith("".join(deltas))


async def test_429_with_retry_after_is_overloaded_and_retried_after_it(url):
    _, failure = await failure_of(request_for(url, prompt="Hello [[devserver:overload-http]]"))
    assert failure.kind == FailureKind.OVERLOADED and failure.retryable
    assert failure.retry_after == 1
    assert failure.kind.about_server and not failure.permanent


async def test_a_stall_fails_within_the_stall_limit(url):
    started = time.monotonic()
    deltas, failure = await failure_of(request_for(url, prompt="Hi [[devserver:stall:2]]", stall_seconds=0.5))
    elapsed = time.monotonic() - started
    assert failure.kind == "stalled" and not failure.retryable
    assert failure.message == "The model server stopped sending for 0.5 s."
    assert len(deltas) == 2
    assert 0.4 < elapsed < 3, elapsed


async def test_the_total_timeout_bounds_a_slow_generation():
    with serve_in_thread(fast(tokens_per_second=5)) as base:
        started = time.monotonic()
        deltas, failure = await failure_of(request_for(base, timeout_seconds=1, stall_seconds=5))
        elapsed = time.monotonic() - started
    assert failure.kind == "timeout" and failure.message == "The model took too long to answer."
    assert deltas, "it was streaming, just too slowly"
    assert 0.9 < elapsed < 3, elapsed


async def test_content_filter_finishes_the_reply_with_its_reason(url):
    deltas, finished = await collect(request_for(url, prompt="Hello [[devserver:content-filter:3]]"))
    assert finished.finish_reason == "content_filter"
    assert finished.text and "".join(deltas) == finished.text
    assert finished.token_count == 3


async def test_a_refused_connection_is_unavailable_and_retryable():
    _, failure = await failure_of(request_for(f"http://127.0.0.1:{free_port()}"))
    assert failure.kind == "unavailable" and failure.retryable
    assert failure.message == "The model server can't be reached."


async def test_an_unknown_served_model_is_misconfigured(url):
    _, failure = await failure_of(request_for(url, served_model="no-such-model"))
    assert failure.kind == "misconfigured" and failure.permanent and not failure.retryable
    assert "“no-such-model”" in failure.message and "HTTP 404" in failure.message
    assert "an admin must fix" in failure.message


# --- the API key -----------------------------------------------------------------------------

def texts_of(failure: BaseException) -> list[str]:
    """Every text a failure could be shown or logged as: its message, str, repr and its causes'."""
    texts: list[str] = []
    seen: BaseException | None = failure
    while seen is not None:
        texts += [str(seen), repr(seen), getattr(seen, "message", "") or "", repr(getattr(seen, "body", None))]
        seen = seen.__cause__ or seen.__context__
    return texts


async def test_a_wrong_api_key_is_misconfigured_and_never_shown(keyed_url):
    _, failure = await failure_of(request_for(keyed_url, api_key=SENTINEL))
    assert failure.kind == "misconfigured" and failure.permanent and not failure.retryable
    assert failure.message == "The model server refused this model's API key (HTTP 401); an admin must fix its key."
    assert not [text for text in texts_of(failure) if SENTINEL in text]
    assert SENTINEL not in repr(request_for(keyed_url, api_key=SENTINEL))
    # No key at all is refused the same way.
    _, without = await failure_of(request_for(keyed_url))
    assert without.kind == "misconfigured"
    # The right key is sent as a bearer token.
    deltas, finished = await collect(request_for(keyed_url, api_key=RIGHT_KEY))
    assert "".join(deltas) == finished.text and finished.finish_reason == "stop"


def test_a_server_echoing_the_key_in_its_error_is_redacted():
    import httpx2
    import openai

    from inference.openai_chat import failure_from_client_error

    request = request_for("http://127.0.0.1:1", api_key=SENTINEL, headers={"X-Org": "org-secret-value"})
    response = httpx2.Response(
        400, request=httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions"),
        json={"error": {"message": f"bad token {SENTINEL} for org org-secret-value", "code": 400}},
    )
    error = openai.BadRequestError("bad", response=response, body=response.json())
    failure = failure_from_client_error(error, request, streaming=False)
    assert failure.kind == "validation"
    assert SENTINEL not in failure.message and "org-secret-value" not in failure.message
    assert "***" in failure.message


# --- conversations over the model's limits ---------------------------------------------------

def words(n: int) -> str:
    return " ".join(["word"] * n)


def openai_prompt_tokens(prompt: str) -> int:
    return count_input_tokens(chat_prompt([{"role": "user", "content": prompt}]))


@pytest.mark.parametrize(
    "limits, parameters, expected",
    [
        # Past the total with the reply: vLLM's "However, you requested 66 tokens (50 in the messages, ...)".
        ({"max_input_tokens": 60, "max_total_tokens": 64}, {"max_new_tokens": 16},
         "This conversation is too long for this model ({n} tokens; it accepts 48, keeping room for a 16-token reply). "
         "Start a new battle with a shorter prompt."),
        # Past the input limit alone: "However, your messages resulted in 50 tokens".
        ({"max_input_tokens": 30, "max_total_tokens": 200}, {"max_new_tokens": 16},
         "This conversation is too long for this model ({n} tokens; it accepts 30). "
         "Start a new battle with a shorter prompt."),
    ],
    ids=["with the reply", "input alone"],
)
async def test_a_conversation_over_the_limits_is_too_long_in_the_tgi_backend_s_words(limits, parameters, expected):
    prompt = words(48)
    with serve_in_thread(fast(**limits)) as base:
        _, failure = await failure_of(request_for(base, prompt=prompt, parameters=parameters))
        _, over_tgi = await failure_of(tgi_request_for(base, prompt=prompt, parameters=parameters), TgiBackend())
    assert failure.message == expected.format(n=openai_prompt_tokens(prompt))
    assert failure.message == over_tgi.message  # the same sentence whichever protocol serves the model
    assert failure.kind == "too_long" and failure.permanent and not failure.retryable
    assert not failure.kind.about_server


async def test_a_reply_length_past_the_whole_context_is_an_admin_s_fix(url):
    # max_new_tokens alone is more than the server takes in total: no prompt could ever fit.
    _, failure = await failure_of(request_for(url, parameters={"max_new_tokens": 5000}))
    _, over_tgi = await failure_of(tgi_request_for(url, parameters={"max_new_tokens": 5000}), TgiBackend())
    assert failure.kind == "misconfigured" and failure.permanent
    assert failure.message == (
        "This model is set to write up to 5,000 tokens, more than its server accepts in total (4,096); "
        "an admin must lower its max_new_tokens."
    )
    assert failure.message == over_tgi.message


@pytest.mark.parametrize(
    "error, kind, expected",
    [
        # vLLM's newer wording (serving_engine's input validation, 0.7 onwards).
        ("'max_tokens' or 'max_completion_tokens' is too large: 256. This model's maximum context length is 4096 "
         "tokens and your request has 3900 input tokens (256 > 4096 - 3900). None", "too_long",
         "This conversation is too long for this model (3,900 tokens; it accepts 3,840, keeping room for a "
         "256-token reply). Start a new battle with a shorter prompt."),
        ("'max_tokens' or 'max_completion_tokens' is too large: 5000. This model's maximum context length is 4096 "
         "tokens and your request has 10 input tokens (5000 > 4096 - 10). None", "misconfigured",
         "This model is set to write up to 5,000 tokens, more than its server accepts in total (4,096); "
         "an admin must lower its max_new_tokens."),
        ("This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. "
         "Please reduce the length of the input messages.", "too_long",
         "This conversation is too long for this model (5,000 tokens; it accepts 4,096). "
         "Start a new battle with a shorter prompt."),
        # OpenAI's own.
        ("This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. "
         "Please reduce the length of the messages.", "too_long",
         "This conversation is too long for this model (9,000 tokens; it accepts 8,192). "
         "Start a new battle with a shorter prompt."),
    ],
)
def test_other_servers_length_errors_become_the_same_sentences(error, kind, expected):
    import httpx2
    import openai

    from inference.openai_chat import failure_from_client_error

    response = httpx2.Response(
        400, request=httpx2.Request("POST", "http://vllm:8000/v1/chat/completions"),
        json={"error": {"message": error, "type": "BadRequestError", "param": None, "code": 400}},
    )
    failure = failure_from_client_error(
        openai.BadRequestError("bad", response=response, body=response.json()["error"]), request_for("http://vllm:8000"),
        streaming=False,
    )
    assert (failure.kind, failure.message) == (kind, expected)
    assert failure.permanent


# --- an abandoned stream closes its connection -----------------------------------------------

async def wait_for_server_idle(base: str, caplog, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await in_flight(base) == 0 and "client went away" in caplog.text:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server still streams: in flight {await in_flight(base)}; log:\n{caplog.text}")


async def test_a_consumer_that_stops_reading_closes_the_connection(paced_url, caplog):
    caplog.set_level(logging.INFO, logger="devserver")
    stream = OpenAIChatBackend().stream(request_for(paced_url))
    async for event in stream:
        assert isinstance(event, Delta)
        if await in_flight(paced_url) == 1:
            break
    started = time.monotonic()
    del stream  # dropped, not closed: the event loop finalises it
    await wait_for_server_idle(paced_url, caplog)
    assert time.monotonic() - started < 2, "the server stopped long before the reply would have ended"


async def test_a_closed_stream_closes_the_connection(paced_url, caplog):
    caplog.set_level(logging.INFO, logger="devserver")
    stream = OpenAIChatBackend().stream(request_for(paced_url))
    first = await anext(stream)  # type: ignore[call-overload]
    assert isinstance(first, Delta) and await in_flight(paced_url) == 1
    await stream.aclose()  # type: ignore[attr-defined]
    await wait_for_server_idle(paced_url, caplog)


async def test_a_cancelled_task_closes_the_connection(paced_url, caplog):
    caplog.set_level(logging.INFO, logger="devserver")
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for _ in OpenAIChatBackend().stream(request_for(paced_url)):
            first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), 5)
    assert await in_flight(paced_url) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for_server_idle(paced_url, caplog)


# --- clients and event loops -----------------------------------------------------------------

def test_each_event_loop_gets_its_own_client(url):
    # A Celery worker thread may run a loop of its own; a client bound to a closed loop fails with
    # "Event loop is closed". Two loops in turn, each with its own client, both stream.
    async def in_a_loop_of_its_own() -> str:
        try:
            return (await collect(request_for(url)))[1].text
        finally:
            await clients_close()  # this loop's client: closed with it

    texts = [asyncio.run(in_a_loop_of_its_own()) for _ in range(2)]
    assert texts[0] == texts[1] and texts[0]


async def test_one_loop_reuses_its_client(url):
    from inference.openai_chat import _CLIENTS

    request = request_for(url)
    assert _CLIENTS.get(request) is _CLIENTS.get(request)
    assert _CLIENTS.get(request) is not _CLIENTS.get(request_for(url, api_key=RIGHT_KEY))


# --- the probe -------------------------------------------------------------------------------

async def test_the_probe_finds_the_served_model_without_generating(url):
    before = await asyncio.to_thread(metrics, url)
    result = await openai_probe(f"{url}/v1", MODEL)
    assert result["healthy"] is True and result["error"] == ""
    assert result["info"]["id"] == MODEL and result["info"]["protocol"] == "openai"
    after = await asyncio.to_thread(metrics, url)
    assert after["tgi_request_count"] == before["tgi_request_count"], "a probe must not spend generation tokens"


async def test_the_probe_of_an_unknown_model_lists_what_the_server_serves(url):
    result = await openai_probe(f"{url}/v1", "no-such-model")
    assert result["healthy"] is False
    assert result["error"] == f"The server doesn't serve a model named “no-such-model” (it serves: {MODEL})"


async def test_the_probe_with_a_wrong_key_says_the_key_was_refused(keyed_url):
    before = await asyncio.to_thread(metrics, keyed_url)
    refused = await openai_probe(f"{keyed_url}/v1", MODEL, api_key=SENTINEL)
    assert refused["healthy"] is False
    assert refused["error"] == f"{keyed_url}/v1/models answered HTTP 401: the API key was refused"
    assert SENTINEL not in repr(refused)
    accepted = await openai_probe(f"{keyed_url}/v1", MODEL, api_key=RIGHT_KEY)
    assert accepted["healthy"] is True
    after = await asyncio.to_thread(metrics, keyed_url)
    assert after["tgi_request_count"] == before["tgi_request_count"]


async def test_the_probe_of_an_unreachable_server_says_so():
    base = f"http://127.0.0.1:{free_port()}/v1"
    result = await openai_probe(base, MODEL, api_key=SENTINEL, timeout=2)
    assert result["healthy"] is False
    assert re.search(r"can't be reached", result["error"]) and base in result["error"], result["error"]
    assert SENTINEL not in repr(result)


async def test_the_probe_of_a_base_url_without_v1_says_to_check_it(url):
    result = await openai_probe(url, MODEL)
    assert result["healthy"] is False
    assert result["error"] == f"{url}/models answered HTTP 404: check the base URL (an OpenAI-compatible server's " \
        "usually ends in /v1)"


async def test_the_probe_of_a_silent_server_times_out():
    # Accepts connections, never answers.
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        base = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        started = time.monotonic()
        result = await openai_probe(base, MODEL, timeout=0.5)
    assert result == {"healthy": False, "info": {}, "error": f"{base} didn't answer within 0.5 s"}
    assert time.monotonic() - started < 3
