"""What the replies are: deterministic per model, prompt and seed, about the question, and cut
into tokens that always rebuild the text."""

from __future__ import annotations

import pytest

from devserver import serve_in_thread, text
from tests.devserver.client import fast_config, stream_sync

# text_generation 0.7 calls pydantic v1-style APIs on every request.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_replies_are_deterministic(url):
    assert stream_sync(url)[-1].generated_text == stream_sync(url)[-1].generated_text


def test_seed_changes_the_reply_and_is_echoed(url):
    first, second = stream_sync(url, seed=1), stream_sync(url, seed=2)
    assert first[-1].details.seed == 1 and second[-1].details.seed == 2
    assert first[-1].generated_text != second[-1].generated_text
    assert stream_sync(url, seed=1)[-1].generated_text == first[-1].generated_text


def test_models_reply_differently():
    with (
        serve_in_thread(fast_config(model_id="mistral-7b-instruct")) as other,
        serve_in_thread(fast_config(model_id="llama-2-7b-chat")) as third,
    ):
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
    assert text.last_user_message(prompt) == expected


def test_reply_tokens_always_rebuild_the_text():
    lengths = set()
    for i in range(300):
        prompt = f"<|user|>\nQuestion {i}: what about café gardening in Zürich?</s>\n<|assistant|>\n"
        for model in ("a", "b"):
            tokens = text.reply_tokens(model, prompt)
            assert "".join(t.text for t in tokens) == text.reply_text(model, prompt)
            assert any(t.text == "" for t in tokens)
            lengths.add(len(tokens))
    assert min(lengths) >= text.MIN_REPLY_TOKENS
    assert max(lengths) <= text.MAX_REPLY_TOKENS
