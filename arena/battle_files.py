"""Reading and writing battles in the public clean_battle schema (FastChat / LMSYS).

A record: {"model_a", "model_b", "winner": "model_a"|"model_b"|"tie"|"tie (bothbad)", optional
"tstamp", "question_id", "judge", "anony", "turn", "language", "conversation_a", "conversation_b"},
and ours: "draw_probability" (the chance the pair was drawn with, in (0, 1]) with "draw_pairs" (among
how many pairs), which the inverse-probability fit reads (arena.sampling.vote_weight), and
"judge_reasoning" (a judge model's explanation, where "judge" is "model:<name>").
Files are a JSON array or JSON lines. Parsing is strict: the first malformed record stops
everything with its line (or array position) number, so nothing is half-read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson  # ~5x faster than json on million-line files; same errors (a JSONDecodeError subclass)

from arena.ratings import WINNER_TO_OUTCOME
from arena.sampling import vote_weights
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


def _left_out(item: dict, judge: str | None) -> str | None:
    """Why a record isn't rated: "anony" (not anonymous), "judge" (not this judge model's, or with
    no judge asked for, a judge model's); None: it is rated."""
    if item.get("anony", True) is False:
        return "anony"
    record_judge = item.get("judge")
    if judge is not None:
        return "judge" if record_judge != judge else None
    by_model = isinstance(record_judge, str) and record_judge.startswith(JUDGE_MODEL_PREFIX)
    return "judge" if by_model else None


def battles_arrays(path: Path | str, judge: str | None = None) -> BattleArrays:
    """The fast path of `battles_read` for computing ratings from large files: same validation,
    no per-record objects. Rows are sorted by tstamp (stable) when present, else kept in file order;
    non-anonymous battles are left out, as the reference arena does. `judge` ("model:<name>"):
    only that judge model's battles; None: every battle but judge models' (people's votes)."""

    index: dict[str, int] = {}
    a_list: list[int] = []
    b_list: list[int] = []
    o_list: list[int] = []
    t_list: list[float] = []
    # (draw_probability, draw_pairs) per row, NaN when not given; kept only once a record has them
    # (a public dump has none, and the per-row tuples would slow its reading by a quarter).
    drawn: list[tuple[float, float]] | None = None
    left_out = {"anony": 0, "judge": 0}
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
        if (reason := _left_out(item, judge)) is not None:
            left_out[reason] += 1
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
    a = np.array(a_list, dtype=np.int64)
    b = np.array(b_list, dtype=np.int64)
    o = np.array(o_list, dtype=np.int64)
    if has_all_tstamps and t_list:
        try:
            order = np.argsort(np.array(t_list, dtype=np.float64), kind="stable")
        except (TypeError, ValueError):
            raise BattleFileError("tstamp must be a number (seconds since the epoch)") from None
        a, b, o = a[order], b[order], o[order]
    else:
        order = np.arange(o.size)
    weights = np.ones(o.size)
    if drawn is not None:
        chances = np.array(drawn, dtype=np.float64).reshape(-1, 2)[order]
        weights = vote_weights(chances[:, 0], chances[:, 1])
    return BattleArrays(list(index), a, b, o, left_out["anony"], weights, left_out["judge"])

