"""Where a reply stops, what `[[devserver:echo]]` makes it, and TGI's parameter checks."""

from __future__ import annotations

import json

import pytest
import requests
from text_generation import Client
from text_generation import errors as tgi_errors

from devserver import serve_in_thread
from tests.devserver.client import CLIENT_TIMEOUT, fast_config, stream_sync, visible_text

# text_generation 0.7 calls pydantic v1-style APIs on every request.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


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
