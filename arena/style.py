"""A reply's style, as the public arena counts it for style control (FastChat
``monitor/add_markdown_info.py``): markdown headers (h1–h6), list items (ordered and unordered)
and bold spans (``**`` and ``__``), with fenced code blocks removed first, plus its length in
tokens. Pure Python; no Django import.

Where a side's style is given (a public dump's ``conv_metadata``) it is taken as is, so the
public style-controlled leaderboard is reproduced; otherwise it is counted from the text. A reply
generated here has its token count from the model server; an imported conversation has none,
and `tokens_estimate` stands in: words and punctuation marks, about three quarters of a GPT-4
tokenizer's count on English prose. The fit only sees each battle's relative difference
(a − b) / (a + b + 1), so a count in proportion to the true one is what matters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

# The whole block, fences included (FastChat removes the text between them: the counts are the same).
_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADERS = re.compile(r"^#{1,6}\s", re.MULTILINE)
_ORDERED = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD_STARS = re.compile(r"\*\*[^*\n]+\*\*")
_BOLD_UNDERSCORES = re.compile(r"__[^_\n]+__")
_TOKENS = re.compile(r"\w+|[^\w\s]")

# conv_metadata's keys for side "a"; side "b" has the same with _b.
META_KEYS = ("sum_assistant_{side}_tokens", "header_count_{side}", "list_count_{side}", "bold_count_{side}")


class Style(NamedTuple):
    """One side's style over a battle: its answers' tokens and markdown counts."""

    tokens: int
    headers: int
    lists: int
    bold: int


class Markdown(NamedTuple):
    headers: int
    lists: int
    bold: int


def markdown_counts(text: str) -> Markdown:
    """Headers, list items and bold spans outside fenced code blocks."""
    prose = _CODE_BLOCK.sub("", text)
    return Markdown(
        headers=len(_HEADERS.findall(prose)),
        lists=len(_ORDERED.findall(prose)) + len(_UNORDERED.findall(prose)),
        bold=len(_BOLD_STARS.findall(prose)) + len(_BOLD_UNDERSCORES.findall(prose)),
    )


def tokens_estimate(text: str) -> int:
    """Words and punctuation marks: the token count of text that has none from a model server."""
    return len(_TOKENS.findall(text))


def style_of_answers(answers: Iterable[str]) -> Style:
    """One side's style from its answers' texts, each counted apart and summed (as the replies
    stored here are), tokens estimated."""
    tokens = headers = lists = bold = 0
    for text in answers:
        markdown = markdown_counts(text)
        tokens += tokens_estimate(text)
        headers += markdown.headers
        lists += markdown.lists
        bold += markdown.bold
    return Style(tokens, headers, lists, bold)


class StyleMetadataError(ValueError):
    pass


def style_from_metadata(meta: Mapping[str, object], side: str) -> Style | None:
    """A side's style from a public dump's conv_metadata; None when it has none of the keys.

    Each markdown count is a number or, as in the dumps, a dict of numbers to sum
    ({"h1": 0, "h2": 3, ...})."""
    keys = [key.format(side=side) for key in META_KEYS]
    if not any(key in meta for key in keys):
        return None
    values = []
    for key in keys:
        value = meta.get(key, 0)
        parts = list(value.values()) if isinstance(value, Mapping) else [value]
        if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts):
            raise StyleMetadataError(f"conv_metadata.{key} must be a whole number >= 0 or a dict of them")
        values.append(sum(int(p) for p in parts))
    return Style(*values)
