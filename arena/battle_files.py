"""Reading and writing battles in the public clean_battle schema (FastChat / LMSYS).

A record: {"model_a", "model_b", "winner": "model_a"|"model_b"|"tie"|"tie (bothbad)", optional
"tstamp", "question_id", "judge", "anony", "turn", "language", "conversation_a", "conversation_b"},
and ours: "draw_probability" (the chance the pair was drawn with, in (0, 1]) with "draw_pairs" (among
how many pairs), which the inverse-probability fit reads (arena.sampling.vote_weight), and
"judge_reasoning" (a judge model's explanation, where "judge" is "model:<name>").
A record may carry the public dumps' "conv_metadata" (each side's answer tokens and markdown counts,
"sum_user_tokens"): style control takes those as given (arena.style), else counts the conversations.
Files are a JSON array or JSON lines. Parsing is strict: the first malformed record stops
everything with its line (or array position) number, so nothing is half-read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson  # ~5x faster than json on million-line files; same errors (a JSONDecodeError subclass)

from arena.categories import TraitArrays, Traits, battle_traits, language_name, trait_arrays
from arena.ratings import WINNER_TO_OUTCOME
from arena.sampling import vote_weights
from arena.style import Style, StyleMetadataError, style_from_metadata, style_of_answers
from arena.verdicts import JUDGE_MODEL_PREFIX


class BattleFileError(ValueError):
    pass


@dataclass(frozen=True)
class BattleRecord:
    line: int
    model_a: str
    model_b: str
    outcome: int
    tstamp: float | None
    raw: dict

    @property
    def anonymous(self) -> bool:
        return self.raw.get("anony", True) is not False


def _records_raw(path: Path) -> Iterator[tuple[int, Any]]:  # Any: whatever JSON value the line holds
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith(b"["):
        try:
            items = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise BattleFileError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        yield from enumerate(items, start=1)
        return
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BattleFileError(f"line {number}: not valid JSON ({exc.msg})") from None


def record_validate(number: int, item: object) -> BattleRecord:
    """One raw record checked against the schema; BattleFileError names its line."""
    if not isinstance(item, dict):
        raise BattleFileError(f"line {number}: a battle must be a JSON object")
    model_a, model_b, winner = item.get("model_a"), item.get("model_b"), item.get("winner")
    if not isinstance(model_a, str) or not model_a or not isinstance(model_b, str) or not model_b:
        raise BattleFileError(f"line {number}: model_a and model_b must be non-empty strings")
    if model_a == model_b:
        raise BattleFileError(f"line {number}: model_a and model_b are the same model ({model_a!r})")
    if not isinstance(winner, str) or winner not in WINNER_TO_OUTCOME:
        raise BattleFileError(
            f"line {number}: winner must be one of {', '.join(map(repr, WINNER_TO_OUTCOME))}, got {winner!r}"
        )
    tstamp = item.get("tstamp")
    if tstamp is not None and (isinstance(tstamp, bool) or not isinstance(tstamp, (int, float))):
        raise BattleFileError(f"line {number}: tstamp must be a number (seconds since the epoch)")
    if not isinstance(item.get("judge_reasoning", ""), str):
        raise BattleFileError(f"line {number}: judge_reasoning must be a string")
    if problem := _draw_problem(item.get("draw_probability"), item.get("draw_pairs")):
        raise BattleFileError(f"line {number}: {problem}")
    for key in ("conversation_a", "conversation_b"):
        conversation = item.get(key)
        if conversation is not None and not (
            isinstance(conversation, list)
            and all(
                isinstance(m, dict)
                and m.get("role") in ("user", "assistant", "system")
                and isinstance(m.get("content", ""), str)
                for m in conversation
            )
        ):
            raise BattleFileError(f"line {number}: {key} must be a list of {{role, content}} messages")
    return BattleRecord(number, model_a, model_b, WINNER_TO_OUTCOME[winner], tstamp, item)


def _draw_problem(probability: object, pairs: object) -> str | None:
    if probability is not None and (
        isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 < probability <= 1
    ):
        return "draw_probability must be a number in (0, 1]"
    if pairs is not None and (isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1):
        return "draw_pairs must be a whole number of at least 1"
    return None


def conversation_turns(conversation_a: list, conversation_b: list) -> list[tuple[str, str, str]]:
    """(user prompt, answer of A, answer of B) per turn, from OpenAI-style message lists."""
    def pairs(conversation: list) -> list[tuple[str, str]]:
        out, prompt = [], None
        for message in conversation:
            if message.get("role") == "user":
                if prompt is not None:
                    out.append((prompt, ""))
                prompt = message.get("content", "")
            elif message.get("role") == "assistant" and prompt is not None:
                out.append((prompt, message.get("content", "")))
                prompt = None
        if prompt is not None:
            out.append((prompt, ""))
        return out

    side_a, side_b = pairs(conversation_a), pairs(conversation_b)
    length = max(len(side_a), len(side_b))
    side_a += [("", "")] * (length - len(side_a))
    side_b += [("", "")] * (length - len(side_b))
    return [(pa or pb, aa, ab) for (pa, aa), (pb, ab) in zip(side_a, side_b, strict=True)]


class RecordTraits(NamedTuple):
    style_a: Style
    style_b: Style
    traits: Traits


def record_traits(number: int, raw: dict, *, categories: bool = True) -> RecordTraits | None:
    """A record's style (its conv_metadata as given, else counted from its conversations) and, with
    `categories`, its traits; None when it has neither conversations nor conv_metadata."""
    meta = raw.get("conv_metadata")
    if meta is not None and not isinstance(meta, dict):
        raise BattleFileError(f"line {number}: conv_metadata must be an object")
    meta = meta or {}
    turns = conversation_turns(raw.get("conversation_a") or [], raw.get("conversation_b") or [])
    try:
        style_a, style_b = style_from_metadata(meta, "a"), style_from_metadata(meta, "b")
    except StyleMetadataError as exc:
        raise BattleFileError(f"line {number}: {exc}") from None
    if style_a is None or style_b is None:
        if not turns:
            return None
        style_a = style_of_answers(t[1] for t in turns)
        style_b = style_of_answers(t[2] for t in turns)
    if not categories:
        return RecordTraits(style_a, style_b, _NO_TRAITS)
    user_tokens = meta.get("sum_user_tokens")
    language = raw.get("language")
    traits = battle_traits(
        [t[0] for t in turns], [t[1] for t in turns], [t[2] for t in turns],
        query_tokens=user_tokens if isinstance(user_tokens, int) and not isinstance(user_tokens, bool) else None,
        language=language_name(language) if isinstance(language, str) and language else None,
    )
    given_turns = raw.get("turn")
    if not turns and isinstance(given_turns, int) and not isinstance(given_turns, bool):
        traits = traits._replace(turns=given_turns)
    return RecordTraits(style_a, style_b, traits)


_NO_TRAITS = Traits(0, 0, False, "", False, "")


def battles_read(path: Path | str) -> Iterator[BattleRecord]:
    """Validated records in file order."""
    for number, item in _records_raw(Path(path)):
        yield record_validate(number, item)


@dataclass
class BattleArrays:
    """Battles as index arrays (for the rating math), in time order when every row has a tstamp."""

    names: list[str]
    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray
    skipped_not_anonymous: int
    weights: np.ndarray  # each vote's inverse-probability weight (1 where the file doesn't say)
    skipped_other_judges: int = 0
    # With battles_arrays(style=True): each side's style (N x 4: tokens, headers, lists, bold) and
    # whether the row had any (conversations or conv_metadata); with categories=True, the traits.
    style_a: np.ndarray | None = None
    style_b: np.ndarray | None = None
    has_style: np.ndarray | None = None
    traits: TraitArrays | None = None


def battles_arrays(
    path: Path | str, judge: str | None = None, *, style: bool = False, categories: bool = False
) -> BattleArrays:
    """The fast path of `battles_read` for computing ratings from large files: same validation,
    no per-record objects. Rows are sorted by tstamp (stable) when present, else kept in file order;
    non-anonymous battles are left out, as the reference arena does. `judge` ("model:<name>"):
    only that judge model's battles; None: every battle but judge models' (people's votes).
    `style` and `categories` also read each record's style and traits (`record_traits`), which
    costs more per record."""

    index: dict[str, int] = {}
    a_list: list[int] = []
    b_list: list[int] = []
    o_list: list[int] = []
    t_list: list[float] = []
    # (draw_probability, draw_pairs) per row, NaN when not given; kept only once a record has them
    # (a public dump has none, and the per-row tuples would slow its reading by a quarter).
    drawn: list[tuple[float, float]] | None = None
    left_out = {"anony": 0, "judge": 0}
    collected = _TraitsCollected(categories) if style or categories else None
    has_all_tstamps = True
    outcomes = WINNER_TO_OUTCOME
    for number, item in _records_raw(Path(path)):
        try:
            model_a, model_b, outcome = item["model_a"], item["model_b"], outcomes[item["winner"]]
            tstamp = item.get("tstamp")
            if (
                type(model_a) is not str or type(model_b) is not str or not model_a or not model_b
                or model_a == model_b or (tstamp is not None and type(tstamp) not in (int, float))
            ):
                raise TypeError
            probability, pairs = item.get("draw_probability"), item.get("draw_pairs")
            if (probability is not None or pairs is not None) and _draw_problem(probability, pairs):
                raise TypeError
        except (KeyError, TypeError):
            record_validate(number, item)  # words the error for this record
            raise BattleFileError(f"line {number}: malformed battle") from None
        # Left out: a battle that isn't anonymous, and one not of the judge asked for (with none
        # asked for, a judge model's). Inline: a call per record costs a seventh of the budget.
        record_judge = item.get("judge")
        if not (anonymous := item.get("anony", True) is not False) or (
            record_judge != judge if judge is not None
            else type(record_judge) is str and record_judge.startswith(JUDGE_MODEL_PREFIX)
        ):
            left_out["judge" if anonymous else "anony"] += 1
            continue
        if tstamp is None:
            has_all_tstamps = False
        elif has_all_tstamps:
            t_list.append(tstamp)
        a_list.append(index.setdefault(model_a, len(index)))
        b_list.append(index.setdefault(model_b, len(index)))
        if drawn is not None or probability is not None or pairs is not None:
            drawn = drawn if drawn is not None else [(math.nan, math.nan)] * len(o_list)
            drawn.append((math.nan if probability is None else probability, math.nan if pairs is None else pairs))
        o_list.append(outcome)
        if collected is not None:
            collected.add(number, item)
    order = _time_order(t_list if has_all_tstamps else [], len(o_list))
    a = np.array(a_list, dtype=np.int64)[order]
    b = np.array(b_list, dtype=np.int64)[order]
    o = np.array(o_list, dtype=np.int64)[order]
    weights = np.ones(o.size)
    if drawn is not None:
        chances = np.array(drawn, dtype=np.float64).reshape(-1, 2)[order]
        weights = vote_weights(chances[:, 0], chances[:, 1])
    arrays = BattleArrays(list(index), a, b, o, left_out["anony"], weights, left_out["judge"])
    if collected is not None:
        collected.attach(arrays, order)
    return arrays


def _time_order(tstamps: list[float], n: int) -> np.ndarray:
    """Rows by tstamp (stable) when every row has one, else in file order."""
    if not tstamps:
        return np.arange(n)
    try:
        return np.argsort(np.array(tstamps, dtype=np.float64), kind="stable")
    except (TypeError, ValueError):
        raise BattleFileError("tstamp must be a number (seconds since the epoch)") from None


class _TraitsCollected:
    """Each kept row's style (and traits), collected as the file is read."""

    def __init__(self, categories: bool) -> None:
        self.categories = categories
        self.styles: list[tuple[Style, Style] | None] = []
        self.traits: list[Traits] = []

    def add(self, number: int, item: dict) -> None:
        found = record_traits(number, item, categories=self.categories)
        self.styles.append(None if found is None else (found.style_a, found.style_b))
        self.traits.append(_NO_TRAITS if found is None else found.traits)

    def attach(self, arrays: BattleArrays, order: np.ndarray) -> None:
        """As arrays, in the rows' order."""
        pairs = [s if s is not None else (_NO_STYLE, _NO_STYLE) for s in self.styles]
        arrays.has_style = np.array([s is not None for s in self.styles], dtype=bool)[order]
        arrays.style_a = np.array([p[0] for p in pairs], dtype=np.float64).reshape(-1, 4)[order]
        arrays.style_b = np.array([p[1] for p in pairs], dtype=np.float64).reshape(-1, 4)[order]
        if not self.categories:
            return
        t = trait_arrays(self.traits)
        arrays.traits = TraitArrays(
            t.turns[order], t.query_tokens[order], t.coding[order], t.language[order], t.refusal[order],
            t.prompt_digest[order],
        )


_NO_STYLE = Style(0, 0, 0, 0)

