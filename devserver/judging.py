"""A judge's verdict, made up from the prompt: the development server as a pairwise judge.

A prompt laid out as MT-Bench's pairwise judge lays it out — the two answers between
`[The Start of Assistant A's Answer]` / `[The End of Assistant A's Answer]` and the same for B —
gets a short judgement ending in `[[A]]`, `[[B]]` or `[[C]]` (tie): the answer with more words
wins, unless the two lengths are within a tenth of each other. Being a function of the answers'
content only, the verdict follows the answers when their order is swapped, and is the same every
time: tests can work it out (`verdict_for`) before asking.
"""

from __future__ import annotations

import re

_ANSWER = r"\[The Start of Assistant {side}'s Answer\]\n?(.*?)\n?\[The End of Assistant {side}'s Answer\]"
_ANSWER_A = re.compile(_ANSWER.format(side="A"), re.S)
_ANSWER_B = re.compile(_ANSWER.format(side="B"), re.S)
TIE_MARGIN = 0.1  # lengths within this share of the longer one are a tie


def answers_judged(message: str) -> tuple[str, str] | None:
    """The two answers a judge prompt presents, (A, B); None when the message is no judge prompt."""
    a, b = _ANSWER_A.search(message), _ANSWER_B.search(message)
    if a is None or b is None:
        return None
    return a.group(1), b.group(1)


def verdict_for(answer_a: str, answer_b: str) -> str:
    """"A", "B" or "C" (a tie): the longer answer by words, a tie within TIE_MARGIN."""
    words_a, words_b = len(answer_a.split()), len(answer_b.split())
    longer = max(words_a, words_b)
    if longer == 0 or abs(words_a - words_b) <= TIE_MARGIN * longer:
        return "C"
    return "A" if words_a > words_b else "B"


def judgement_text(answer_a: str, answer_b: str) -> str:
    words_a, words_b = len(answer_a.split()), len(answer_b.split())
    verdict = verdict_for(answer_a, answer_b)
    reason = {
        "A": "Assistant A covers more ground",
        "B": "Assistant B covers more ground",
        "C": "Both answers are about equally thorough",
    }[verdict]
    return (
        f"Assistant A's answer has {words_a} words and Assistant B's has {words_b}. "
        f"{reason}, and neither contains a factual error I can see.\n\nFinal verdict: [[{verdict}]]"
    )
