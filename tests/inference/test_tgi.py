"""TgiBackend against the TGI-compatible dev server over real HTTP (real text_generation client)."""

import asyncio

import pytest

from devserver import DevServerConfig, serve_in_thread
from inference.backends import Delta, Finished, GenerationRequest
from inference.failures import GenerationFailure
from inference.tgi import TgiBackend, server_probe
from tests.helpers import free_port


@pytest.fixture(scope="module")
def zephyr_url():
    with serve_in_thread(DevServerConfig(model_id="zephyr-7b-beta", time_to_first_token=0, tokens_per_second=0)) as url:
        yield url


def request_for(url, prompt="Explain recursion briefly", **kw):
    return GenerationRequest(
        endpoint_url=url, template="zephyr", messages=[{"role": "user", "content": prompt}], **kw
    )


async def collect(request):
    deltas, finished = [], None
    async for event in TgiBackend().stream(request):
        if isinstance(event, Delta):
            assert finished is None, "no delta may follow the final event"
            deltas.append(event.text)
        else:
            finished = event
    return deltas, finished


async def test_it_streams_deltas_that_add_up_to_the_final_text(zephyr_url):
    deltas, finished = await collect(request_for(zephyr_url))
    assert isinstance(finished, Finished)
    assert len(deltas) > 5
    assert "".join(deltas) == finished.text
    assert "</s>" not in finished.text  # the special end token is hidden
    assert finished.finish_reason in ("eos_token", "length")
    assert finished.token_count > 0


async def test_it_keeps_characters_split_across_empty_text_tokens(zephyr_url):
    # The dev server splits a non-ASCII character across tokens (first token text == "").
    texts = set()
    for prompt in ("one", "two", "three", "four"):
        _, finished = await collect(request_for(zephyr_url, prompt=prompt))
        texts.add(finished.text)
        assert "\ufffd" not in finished.text
    assert any(any(ord(ch) > 127 for ch in t) for t in texts)


async def test_it_strips_stop_sequences_and_never_streams_them(zephyr_url):
    _, full = await collect(request_for(zephyr_url))
    words = full.text.split()
    stop = words[len(words) // 2]
    deltas, finished = await collect(request_for(zephyr_url, parameters={"stop": [stop]}))
    assert stop not in finished.text
    assert full.text.startswith(finished.text)
    assert "".join(deltas) == finished.text
    assert len(finished.text) < len(full.text)


async def test_max_new_tokens_caps_the_reply(zephyr_url):
    _, finished = await collect(request_for(zephyr_url, parameters={"max_new_tokens": 4}))
    assert finished.finish_reason == "length"
    assert finished.token_count == 4


@pytest.mark.parametrize(
    "marker, kind, retryable",
    [
        ("[[devserver:overload]]", "overloaded", True),
        ("[[devserver:overload-http]]", "overloaded", True),
        ("[[devserver:error-mid-stream:3]]", "generation", False),
        ("[[devserver:cut:3]]", "incomplete", False),
        ("[[devserver:drop:3]]", "disconnected", False),
        ("[[devserver:http-500]]", "unavailable", True),
    ],
)
async def test_each_server_fault_becomes_a_typed_failure(zephyr_url, marker, kind, retryable):
    deltas = []
    with pytest.raises(GenerationFailure) as failure:
        async for event in TgiBackend().stream(request_for(zephyr_url, prompt=f"Hello {marker}")):
            assert isinstance(event, Delta), "a faulty stream must never finish as a success"
            deltas.append(event.text)
    assert failure.value.kind == kind
    assert failure.value.retryable is retryable
    assert failure.value.message  # a sentence a person can read


async def test_a_stall_fails_after_the_stall_timeout(zephyr_url):
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(GenerationFailure) as failure:
        stalling = request_for(zephyr_url, prompt="Hi [[devserver:stall:2]]", stall_seconds=0.5)
        async for _ in TgiBackend().stream(stalling):
            pass
    assert failure.value.kind == "stalled"
    assert 0.4 < loop.time() - started < 5


async def test_the_total_timeout_bounds_a_slow_generation():
    slow = DevServerConfig(model_id="slow", time_to_first_token=0, tokens_per_second=5)
    with serve_in_thread(slow) as url, pytest.raises(GenerationFailure) as failure:
        async for _ in TgiBackend().stream(request_for(url, timeout_seconds=1, stall_seconds=5)):
            pass
    assert failure.value.kind == "timeout"


async def test_a_refused_connection_is_unavailable_and_retryable():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GenerationFailure) as failure:
        async for _ in TgiBackend().stream(request_for(url)):
            pass
    assert failure.value.kind == "unavailable" and failure.value.retryable


async def test_probe_reads_health_and_info(zephyr_url):
    result = await server_probe(zephyr_url)
    assert result["healthy"] is True
    assert result["info"]["model_id"] == "zephyr-7b-beta"
    assert result["info"]["max_total_tokens"] == 4096
    down = await server_probe(f"http://127.0.0.1:{free_port()}", timeout=1)
    assert down["healthy"] is False and down["error"]


def conversation_tokens(prompt: str) -> int:
    """The prompt's length as the dev server counts it (TGI would use the model's tokenizer)."""
    from devserver.text import count_input_tokens
    from inference.chat_templates import prompt_render

    return count_input_tokens(prompt_render("zephyr", [{"role": "user", "content": prompt}]))


@pytest.mark.parametrize(
    "limits, parameters, expected",
    [
        # Over max_total_tokens with the reply: "`inputs` tokens + `max_new_tokens` must be <= 64".
        ({"max_input_tokens": 60, "max_total_tokens": 64}, {"max_new_tokens": 16},
         "This conversation is too long for this model ({n} tokens; it accepts 48, keeping room for a 16-token reply). "
         "Start a new battle with a shorter prompt."),
        # Over max_input_tokens alone: "`inputs` must have less than 30 tokens".
        ({"max_input_tokens": 30, "max_total_tokens": 200}, {"max_new_tokens": 16},
         "This conversation is too long for this model ({n} tokens; it accepts 30). "
         "Start a new battle with a shorter prompt."),
    ],
)
async def test_a_conversation_over_the_model_s_token_limits_fails_with_a_clear_final_message(
    limits, parameters, expected
):
    prompt = " ".join(["word"] * 60)
    config = DevServerConfig(model_id="small", time_to_first_token=0, tokens_per_second=0, **limits)
    with serve_in_thread(config) as url, pytest.raises(GenerationFailure) as failure:
        async for event in TgiBackend().stream(request_for(url, prompt=prompt, parameters=parameters)):
            pytest.fail(f"nothing may stream: {event}")
    assert failure.value.message == expected.format(n=conversation_tokens(prompt))
    assert "Input validation error" not in failure.value.message and "`" not in failure.value.message
    # Permanent: not retried, and no sign of the server's health.
    assert failure.value.kind == "too_long" and not failure.value.retryable
    assert not failure.value.kind.about_server


@pytest.mark.parametrize(
    "error, expected",
    [
        # TGI's own wording (router/src/validation.rs), as its error event or HTTP 422 body carries it.
        ("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
         "Given: 6002 `inputs` tokens and 256 `max_new_tokens`",
         "This conversation is too long for this model (6,002 tokens; it accepts 3,840, "
         "keeping room for a 256-token reply). Start a new battle with a shorter prompt."),
        ("Input validation error: `inputs` must have less than 3072 tokens. Given: 3500",
         "This conversation is too long for this model (3,500 tokens; it accepts 3,072). "
         "Start a new battle with a shorter prompt."),
        ("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
         "Given: 10 `inputs` tokens and 5000 `max_new_tokens`",
         "This model is set to write up to 5,000 tokens, more than its server accepts in total (4,096); "
         "an admin must lower its max_new_tokens."),
    ],
)
def test_tgi_s_length_errors_become_sentences_for_people(error, expected):
    from text_generation.errors import ValidationError

    from arena.rules import failure_facts
    from inference.tgi import _failure_from_client_error

    failure = _failure_from_client_error(ValidationError(error))
    assert failure.message == expected and not failure.retryable
    # Permanent: the page offers no retry.
    assert failure.permanent
    assert failure_facts(failure.kind) == {"failure_kind": failure.kind, "retryable": False}
    not_positive = ValidationError("Input validation error: `temperature` must be strictly positive")
    other = _failure_from_client_error(not_positive)
    assert other.kind == "validation" and "`temperature` must be strictly positive" in other.message
