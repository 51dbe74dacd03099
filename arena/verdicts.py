"""What a judge model is asked and how its answer is read: the pairwise prompt and its verdict.

Pure Python, no Django. The default prompt presents answer A before answer B and asks for
MT-Bench's pairwise verdict format, `[[A]]`, `[[B]]` or `[[C]]` (a tie). An answer is read as a
verdict only when it names exactly one of the three; none, or two different ones, is
unparseable: asked again, then recorded as invalid, never guessed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

A, B, TIE = "a", "b", "tie"  # a verdict, as Vote.Outcome spells it
# Battle.judge of a battle a judge model voted on: "model:<its name>" (people's votes leave it
# empty, or carry an imported record's judge).
JUDGE_MODEL_PREFIX = "model:"

DEFAULT_JUDGE_PROMPT = """\
You are an impartial judge. Compare the two AI assistants' answers to the user's question below \
and decide which one answers it better. Weigh helpfulness, relevance, accuracy, depth and level of \
detail.{reference_note} Do not let the order in which the answers are shown, their length or the \
assistants' names sway you. First explain your comparison briefly, then give your final verdict \
strictly in this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and \
"[[C]]" for a tie.

[User Question]
{question}
{reference}
[The Start of Assistant A's Answer]
{answer_a}
[The End of Assistant A's Answer]

[The Start of Assistant B's Answer]
{answer_b}
[The End of Assistant B's Answer]
"""

PLACEHOLDERS = ("question", "answer_a", "answer_b", "reference", "reference_note")
REQUIRED_PLACEHOLDERS = ("question", "answer_a", "answer_b")
_VERDICT = re.compile(r"\[\[([ABC])\]\]")
_VERDICTS = {"A": A, "B": B, "C": TIE}


def judge_prompt_problems(template: str) -> list[str]:
    """Why a judge prompt can't be used, one sentence each (empty: it can)."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return [f"The judge prompt is not a valid template ({exc}); write a literal brace as {{{{ or }}}}."]
    problems = [f"The judge prompt must contain {{{name}}}." for name in REQUIRED_PLACEHOLDERS if name not in fields]
    unknown = sorted(fields - set(PLACEHOLDERS))
    if unknown:
        problems.append(
            f"Unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}."
        )
    return problems


def _numbered(parts: Sequence[str], label: str) -> str:
    """One part as it is; several as `### <label> 1:` blocks (a multi-turn conversation)."""
    if len(parts) == 1:
        return parts[0]
    return "\n\n".join(f"### {label} {i}:\n{part}" for i, part in enumerate(parts, start=1))


def judge_prompt_render(
    template: str, *, turns: Sequence[str], answers_a: Sequence[str], answers_b: Sequence[str], reference: str = ""
) -> str:
    """The judge's prompt for one ordered pair: the user's turns, then each side's answers to them."""
    return template.format(
        question=_numbered(turns, "Turn"),
        answer_a=_numbered(answers_a, "Answer to turn"),
        answer_b=_numbered(answers_b, "Answer to turn"),
        reference=(
            f"\n[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n" if reference else ""
        ),
        reference_note=" A reference answer is given: judge correctness against it." if reference else "",
    )


def verdict_parse(text: str) -> str | None:
    """"a", "b" or "tie" when the text names exactly one verdict (however often); else None."""
    found = {_VERDICTS[m] for m in _VERDICT.findall(text)}
    return found.pop() if len(found) == 1 else None


def verdict_swapped(verdict: str) -> str:
    """The same verdict seen from the other order (A and B exchanged)."""
    return {A: B, B: A}.get(verdict, verdict)
