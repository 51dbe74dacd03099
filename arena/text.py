"""Rules about text: what a prompt may be, what the database can store, what names a model."""

from __future__ import annotations

import re
from functools import lru_cache

from django.conf import settings

from arena.errors import ArenaError


def prompt_clean(text: object) -> str:
    """The prompt as stored, or an ArenaError saying what is wrong with it."""
    if not isinstance(text, str):
        raise ArenaError("The prompt must be text.")
    text = text.strip()
    if not text:
        raise ArenaError("Type a prompt first.")
    if len(text) > settings.ARENA_PROMPT_MAX_CHARS:
        raise ArenaError(
            f"The prompt is too long ({len(text):,} characters; the limit is {settings.ARENA_PROMPT_MAX_CHARS:,})."
        )
    # JSON can carry what PostgreSQL can't store: NUL characters and unpaired surrogates.
    if "\x00" in text or _has_lone_surrogate(text):
        raise ArenaError("The prompt contains characters that can't be stored (NUL or invalid Unicode).")
    return text


def text_storable(text: str) -> str:
    """Model text as PostgreSQL can store it: NULs dropped, unpaired surrogates replaced."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@lru_cache(maxsize=8)
def _identity_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = "|".join(re.escape(w.strip().lower()) for w in words if w.strip())
    if not alternatives:
        return None
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)


def text_names_identity(text: str) -> bool:
    """Does a reply name a model or vendor ("I am ChatGPT, made by OpenAI")? Replies only, never prompts."""
    pattern = _identity_pattern(tuple(settings.ARENA_IDENTITY_WORDS))
    return bool(pattern and text and pattern.search(text))
