"""The judge's prompt (A before B, MT-Bench's verdict format) and how its answer is read."""

from __future__ import annotations

import pytest

from arena.verdicts import DEFAULT_JUDGE_PROMPT, judge_prompt_problems, judge_prompt_render, verdict_parse


@pytest.mark.parametrize(("text", "verdict"), [
    ("A is more precise.\n\nFinal verdict: [[A]]", "a"),
    ("[[B]]", "b"),
    ("They are equally good. [[C]]", "tie"),
    ("My verdict is [[A]]. To repeat: [[A]]", "a"),
])
def test_a_single_verdict_is_read(text, verdict):
    assert verdict_parse(text) == verdict


@pytest.mark.parametrize("text", ["", "A is better.", "[A]", "[[D]]", "[[A]] or maybe [[B]]", "[[a]]"])
def test_no_verdict_or_two_is_unreadable_never_guessed(text):
    assert verdict_parse(text) is None


def test_the_default_prompt_presents_a_before_b_and_asks_for_the_verdict_format():
    prompt = judge_prompt_render(DEFAULT_JUDGE_PROMPT, turns=["Q?"], answers_a=["first"], answers_b=["second"])
    assert prompt.index("[The Start of Assistant A's Answer]\nfirst") < prompt.index(
        "[The Start of Assistant B's Answer]\nsecond")
    assert all(v in prompt for v in ('"[[A]]"', '"[[B]]"', '"[[C]]"'))
    assert "Reference" not in prompt
    # The instructions name all three formats, so the prompt itself is no verdict.
    assert verdict_parse(prompt) is None


def test_a_reference_answer_and_several_turns_are_laid_in():
    prompt = judge_prompt_render(
        DEFAULT_JUDGE_PROMPT, turns=["One?", "Two?"], answers_a=["1", "2"], answers_b=["x", "y"], reference="42",
    )
    assert "[The Start of Reference Answer]\n42" in prompt and "judge correctness against it" in prompt
    assert "### Turn 2:\nTwo?" in prompt and "### Answer to turn 2:\ny" in prompt


@pytest.mark.parametrize(("template", "problem"), [
    ("{question} {answer_a}", "{answer_b}"),
    ("{question} {answer_a} {answer_b} {model_name}", "Unknown placeholder(s) {model_name}"),
    ("{question {answer_a} {answer_b}", "not a valid template"),
])
def test_a_bad_judge_prompt_is_refused_with_the_reason(template, problem):
    problems = judge_prompt_problems(template)
    assert problems and problem in " ".join(problems)


def test_the_default_prompt_is_valid():
    assert judge_prompt_problems(DEFAULT_JUDGE_PROMPT) == []
