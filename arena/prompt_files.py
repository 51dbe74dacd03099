"""Reading a prompt set: JSON lines, one prompt a line, as MT-Bench and Arena-Hard ship theirs.

A line: {"turns": ["first message", "follow-up", ...]} (or {"prompt": "..."} for one turn; a
turn may also be {"content": "..."}, Arena-Hard's form), optional "category", "question_id" and
"reference" (a reference answer: a string, or one per turn as MT-Bench gives them). Parsing is
strict: the first malformed line stops everything with its number, so nothing is half-imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from arena.errors import ArenaError
from arena.text import prompt_clean


class PromptFileError(ValueError):
    pass


@dataclass(frozen=True)
class PromptRecord:
    line: int
    turns: list[str]
    category: str
    question_id: str
    reference: list[str]


def _turn(number: int, turn: object) -> str:
    if isinstance(turn, dict):
        turn = turn.get("content")
    try:
        return prompt_clean(turn)
    except ArenaError as exc:
        raise PromptFileError(f"line {number}: a turn is not a usable prompt ({exc})") from None


def prompt_record_validate(number: int, item: object) -> PromptRecord:
    if not isinstance(item, dict):
        raise PromptFileError(f"line {number}: a prompt must be a JSON object")
    turns = item.get("turns", [item["prompt"]] if "prompt" in item else None)
    if not isinstance(turns, list) or not turns:
        raise PromptFileError(f'line {number}: give "turns" (a non-empty list of messages) or "prompt"')
    category = item.get("category", "")
    if not isinstance(category, str) or len(category) > 100:
        raise PromptFileError(f"line {number}: category must be a string of at most 100 characters")
    question_id = item.get("question_id", "")
    if isinstance(question_id, bool) or not isinstance(question_id, (str, int)) or len(str(question_id)) > 200:
        raise PromptFileError(f"line {number}: question_id must be a string or a number")
    reference = item.get("reference", [])
    reference = [reference] if isinstance(reference, str) else reference
    if not isinstance(reference, list) or not all(isinstance(r, str) for r in reference):
        raise PromptFileError(f"line {number}: reference must be a string or a list of strings")
    return PromptRecord(number, [_turn(number, t) for t in turns], category, str(question_id), reference)


def prompts_parse(lines: Iterable[bytes]) -> Iterator[PromptRecord]:
    """Validated prompts in line order; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise PromptFileError(f"line {number}: not valid JSON ({exc.msg})") from None
        yield prompt_record_validate(number, item)


def prompts_read(path: Path | str) -> Iterator[PromptRecord]:
    with Path(path).open("rb") as fh:
        yield from prompts_parse(fh)
