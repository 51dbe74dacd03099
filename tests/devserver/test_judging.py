"""The development server as a pairwise judge: a verdict made from the answers' content."""

from __future__ import annotations

import requests

from devserver import serve_in_thread
from devserver.judging import answers_judged, verdict_for
from tests.devserver.client import fast_config

SHORT, LONG = "Yes.", "Yes, because the light scatters off the air more at short wavelengths than long."


def judge_prompt(a: str, b: str) -> str:
    return (f"Which is better? [[A]] [[B]] or [[C]].\n[The Start of Assistant A's Answer]\n{a}\n"
            f"[The End of Assistant A's Answer]\n[The Start of Assistant B's Answer]\n{b}\n"
            "[The End of Assistant B's Answer]")


def test_the_longer_answer_wins_and_close_lengths_tie():
    assert verdict_for(LONG, SHORT) == "A" and verdict_for(SHORT, LONG) == "B"
    assert verdict_for("one two three four five six seven eight nine ten", "1 2 3 4 5 6 7 8 9") == "C"
    assert answers_judged(judge_prompt("x", "y")) == ("x", "y")
    assert answers_judged("no answers here") is None


def test_the_server_answers_a_judge_prompt_with_its_verdict_over_both_protocols():
    with serve_in_thread(fast_config(model_id="judge")) as url:
        chat = requests.post(f"{url}/v1/chat/completions", timeout=10, json={
            "messages": [{"role": "user", "content": judge_prompt(SHORT, LONG)}]}).json()
        text = chat["choices"][0]["message"]["content"]
        assert text.endswith("[[B]]") and "[[A]]" not in text
        tgi = requests.post(f"{url}/generate", timeout=10, json={
            "inputs": f"<|user|>\n{judge_prompt(LONG, SHORT)}</s>\n<|assistant|>\n",
            "parameters": {"max_new_tokens": 200}}).json()
        assert tgi["generated_text"].endswith("[[A]]")
        # Anything else is a plain reply, with no verdict in it.
        plain = requests.post(f"{url}/v1/chat/completions", timeout=10, json={
            "messages": [{"role": "user", "content": "Which is better, tea or coffee?"}]}).json()
        assert "[[" not in plain["choices"][0]["message"]["content"]
