"""Leaderboard categories the public arena computes without a model labelling prompts (FastChat
``monitor/elo_analysis.py``, ``monitor/deduplication.py``, ``monitor_md.py``). Pure Python and
numpy; no Django import.

A battle's `Traits` are computed once, from its conversation: how many turns, how long its
queries are, whether it holds code, the language of its first prompt, whether a reply refuses,
and a digest of its prompts. The categories are views on those traits:

- ``coding``: a fenced code block anywhere in the conversation, or at least two lines of a prompt
  or an answer that read as code;
- ``long_query``: the user's messages together at least 500 tokens (`arena.style.tokens_estimate`,
  or a dump's ``sum_user_tokens``);
- ``multi_turn``: two turns or more;
- ``no_short``: every battle but those whose queries total fewer than 5 tokens;
- ``no_refusal``: every battle but those where a reply refuses ("I'm sorry, but I can't…");
- ``dedup``: prompts more frequent than the 99.99th percentile of prompt frequencies are kept only
  that many times (a seeded sample), the rest of the battles all kept;
- a language (``english``, ``chinese``, …): the first prompt's, by py3langid, which ships its
  model inside the package; a prompt it can't tell with confidence 0.3 is ``unknown``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from arena.style import tokens_estimate

OVERALL = "overall"
LONG_QUERY_TOKENS = 500
MULTI_TURN_TURNS = 2
SHORT_QUERY_TOKENS = 5
DEDUP_PERCENTILE = 0.9999
LANGUAGE_CONFIDENCE = 0.3
UNKNOWN_LANGUAGE = "unknown"
# What a category's name may be: a rule's or a language's.
CATEGORY_NAME = re.compile(r"[a-z][a-z_-]{1,31}")
# FastChat's dedup compares the user messages' first 10,000 characters.
DIGEST_CHARS = 10_000

RULES = {
    "coding": "Coding: the conversation holds code",
    "long_query": f"Longer query (≥ {LONG_QUERY_TOKENS} tokens)",
    "multi_turn": f"Multi-turn (≥ {MULTI_TURN_TURNS} turns)",
    "no_short": f"Excluding short queries (< {SHORT_QUERY_TOKENS} tokens)",
    "no_refusal": "Excluding refusals",
    "dedup": "De-duplicating the most repeated prompts",
}

# ISO 639-1 codes py3langid returns, by the name a category takes; others keep their code.
LANGUAGE_NAMES = {
    "en": "english", "zh": "chinese", "es": "spanish", "fr": "french", "de": "german", "ru": "russian",
    "ja": "japanese", "ko": "korean", "pt": "portuguese", "it": "italian", "nl": "dutch", "pl": "polish",
    "tr": "turkish", "ar": "arabic", "vi": "vietnamese", "id": "indonesian", "uk": "ukrainian", "cs": "czech",
    "sv": "swedish", "fa": "persian", "hi": "hindi", "he": "hebrew", "th": "thai", "el": "greek", "hu": "hungarian",
    "ro": "romanian", "da": "danish", "fi": "finnish", "no": "norwegian", "bg": "bulgarian",
}

_FENCE = re.compile(r"```")
_CODE_LINE = re.compile(
    r"^\s*(?:def \w+\(|class \w+[:(]|import \w|from [\w.]+ import |#include\s*<|(?:public|private|static) \w+"
    r"|(?:return|print\(|echo|console\.log\()\s*\S[^.]*$|function\s*\w*\(|(?:const|let|var) \w+\s*="
    r"|SELECT .+ FROM |CREATE TABLE |for\s*\(.*;.*;|\w+\s*=\s*\w+\(.*\);?$"
    r"|.*[;{]\s*$|\}\s*$)",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"^(?:i'?m sorry|i am sorry|sorry|unfortunately|as an ai(?: language model)?)?[ ,.]*(?:but )?"
    r"(?:i (?:can ?not|can't|am unable to|'m unable to|won't|will not|must decline to)|i'm not able to"
    r"|i am not able to) (?:help|assist|provide|fulfil|fulfill|comply|create|generate|write|answer|do that|engage)",
)


class Traits(NamedTuple):
    """What the categories read of one battle."""

    turns: int
    query_tokens: int
    coding: bool
    language: str
    refusal: bool
    prompt_digest: str


def prompt_digest(prompts: Sequence[str]) -> str:
    """The prompts joined as FastChat's dedup joins them (each followed by a newline)."""
    joined = "".join(f"{p}\n" for p in prompts)[:DIGEST_CHARS]
    return hashlib.sha256(joined.encode()).hexdigest()


def holds_code(texts: Sequence[str]) -> bool:
    for text in texts:
        if _FENCE.search(text):
            return True
        if sum(1 for line in text.splitlines() if _CODE_LINE.match(line)) >= 2:
            return True
    return False


def refuses(answer: str) -> bool:
    """An answer that opens by declining (its first 300 characters)."""
    opening = answer[:300].strip().lower().replace("\u2019", "'")
    return bool(_REFUSAL.match(opening))


@cache
def _identifier() -> Any:  # py3langid ships no types
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # Loaded on first use (0.5 s, 30 MB): processes that never label a battle don't pay for it.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True, min_confidence=LANGUAGE_CONFIDENCE)


def language_of(text: str) -> str:
    """The language's category name (``english``…), its ISO code if unnamed, or ``unknown``."""
    if not text.strip():
        return UNKNOWN_LANGUAGE
    code, _ = _identifier().classify(text[:DIGEST_CHARS])
    if code == "und":
        return UNKNOWN_LANGUAGE
    return LANGUAGE_NAMES.get(str(code), str(code))


def language_name(value: str) -> str:
    """A dump's ``language`` field ("English", "unknown") as a category name."""
    name = value.strip().lower()
    return name or UNKNOWN_LANGUAGE


def battle_traits(
    prompts: Sequence[str], answers_a: Sequence[str], answers_b: Sequence[str], *,
    query_tokens: int | None = None, language: str | None = None,
) -> Traits:
    """A battle's traits from its conversation; a dump's own counts (`query_tokens`, `language`)
    are taken as given."""
    answers = [*answers_a, *answers_b]
    return Traits(
        turns=len(prompts),
        query_tokens=query_tokens if query_tokens is not None else sum(tokens_estimate(p) for p in prompts),
        coding=holds_code([*prompts, *answers]),
        language=language if language is not None else language_of(prompts[0] if prompts else ""),
        refusal=any(refuses(a) for a in answers),
        prompt_digest=prompt_digest(prompts),
    )


class TraitArrays(NamedTuple):
    """The traits of N battles, column by column."""

    turns: NDArray[np.int64]
    query_tokens: NDArray[np.int64]
    coding: NDArray[np.bool_]
    language: NDArray[np.str_]
    refusal: NDArray[np.bool_]
    prompt_digest: NDArray[np.str_]


def trait_arrays(traits: Sequence[Traits]) -> TraitArrays:
    n = len(traits)
    return TraitArrays(
        np.fromiter((t.turns for t in traits), dtype=np.int64, count=n),
        np.fromiter((t.query_tokens for t in traits), dtype=np.int64, count=n),
        np.fromiter((t.coding for t in traits), dtype=bool, count=n),
        np.array([t.language for t in traits], dtype=np.str_),
        np.fromiter((t.refusal for t in traits), dtype=bool, count=n),
        np.array([t.prompt_digest for t in traits], dtype=np.str_),
    )


def dedup_mask(digests: NDArray[np.str_], *, percentile: float = DEDUP_PERCENTILE, seed: int = 42) -> NDArray[np.bool_]:
    """Battles kept by deduplication: a prompt seen more often than the `percentile` of prompt
    frequencies keeps that many of its battles (int of it, at least one), drawn with `seed`."""
    keep = np.ones(digests.size, dtype=bool)
    if digests.size == 0:
        return keep
    _, inverse, counts = np.unique(digests, return_inverse=True, return_counts=True)
    cutoff = float(np.quantile(counts, percentile))
    rng = np.random.default_rng(seed)
    for group in np.flatnonzero(counts > cutoff):
        members = np.flatnonzero(inverse == group)
        keep[members] = False
        keep[rng.choice(members, size=max(1, int(cutoff)), replace=False)] = True
    return keep


def category_names(arrays: TraitArrays) -> list[str]:
    """Every category these battles can be viewed by: the rules, then their languages by frequency."""
    names, counts = np.unique(arrays.language, return_counts=True)
    languages = [str(n) for n, _ in sorted(zip(names, counts, strict=True), key=lambda x: (-x[1], x[0]))]
    return [OVERALL, *RULES, *languages]


class UnknownCategory(ValueError):
    pass


def category_mask(name: str, arrays: TraitArrays) -> NDArray[np.bool_]:
    """Which battles a category keeps; a language no battle has keeps none."""
    if name == OVERALL:
        return np.ones(arrays.turns.size, dtype=np.bool_)
    if name in _RULE_MASKS:
        return np.asarray(_RULE_MASKS[name](arrays), dtype=np.bool_)
    if not CATEGORY_NAME.fullmatch(name):
        raise UnknownCategory(
            f"unknown category {name!r}: one of {', '.join([OVERALL, *RULES])} or a language such as english"
        )
    return np.asarray(arrays.language == name, dtype=np.bool_)


_RULE_MASKS: dict[str, Callable[[TraitArrays], NDArray[np.bool_]]] = {
    "coding": lambda t: t.coding,
    "long_query": lambda t: np.asarray(t.query_tokens >= LONG_QUERY_TOKENS),
    "multi_turn": lambda t: np.asarray(t.turns >= MULTI_TURN_TURNS),
    "no_short": lambda t: np.asarray(t.query_tokens >= SHORT_QUERY_TOKENS),
    "no_refusal": lambda t: ~t.refusal,
    "dedup": lambda t: dedup_mask(t.prompt_digest),
}
