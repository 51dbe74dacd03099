"""Why a generation did not finish: one kind per cause, and what each kind implies.

A backend raises `GenerationFailure(kind, message)`; the arena stores the kind with the reply
(`Reply.failure_kind` takes its choices from `FailureKind`) and decides from it, not from the
sentence, whether a retry can help and whether the failure says something about the server.
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    # Raised by backends.
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    DISCONNECTED = "disconnected"
    STALLED = "stalled"
    TIMEOUT = "timeout"
    INCOMPLETE = "incomplete"
    GENERATION = "generation"
    VALIDATION = "validation"
    TOO_LONG = "too_long"
    MISCONFIGURED = "misconfigured"
    PROTOCOL = "protocol"
    # Set by whoever runs the stream: a bug or an outage on our side, or nobody ran it.
    INTERNAL = "internal"
    NO_WORKER = "no_worker"
    WORKER_LOST = "worker_lost"

    @property
    def permanent(self) -> bool:
        """Trying again, automatically or by the user, gets the same failure: the conversation is
        too long for the model, or an admin must change the model's settings."""
        return self in _PERMANENT

    @property
    def about_server(self) -> bool:
        """Says something about the server's health, not about one request: enough of these in a
        short window keep the model out of new battles."""
        return self in _ABOUT_SERVER


_PERMANENT = frozenset({FailureKind.TOO_LONG, FailureKind.MISCONFIGURED})
_ABOUT_SERVER = frozenset({
    FailureKind.OVERLOADED, FailureKind.UNAVAILABLE, FailureKind.DISCONNECTED,
    FailureKind.STALLED, FailureKind.TIMEOUT, FailureKind.INCOMPLETE,
})


class GenerationFailure(Exception):
    """A generation that did not finish. `kind` is machine-readable; `message` is for people.

    `retryable`: transient, so the caller may quietly try again before anything was shown.
    `retry_after`: seconds the server asked us to wait first (HTTP `Retry-After`), if it said.
    """

    def __init__(
        self, kind: FailureKind, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.kind.permanent


def too_long_failure(*, limit: int, given: int, reply: int | None = None) -> GenerationFailure:
    """A conversation over a model's token limits, in one wording whichever protocol serves it.

    `limit`: what the server accepts in total (prompt and reply when `reply` is given, else the
    prompt alone); `given`: the prompt's tokens; `reply`: the model's max_new_tokens. Never
    retryable: the same conversation is refused again, on this model, whatever the load.
    """
    if reply is None:
        return GenerationFailure(
            FailureKind.TOO_LONG,
            f"This conversation is too long for this model ({given:,} tokens; it accepts {limit:,}). "
            "Start a new battle with a shorter prompt.",
        )
    room = limit - reply
    if room < 1:  # the model's own max_new_tokens leaves no room for any prompt: an admin's fix
        return GenerationFailure(
            FailureKind.MISCONFIGURED,
            f"This model is set to write up to {reply:,} tokens, more than its server accepts in total "
            f"({limit:,}); an admin must lower its max_new_tokens.",
        )
    return GenerationFailure(
        FailureKind.TOO_LONG,
        f"This conversation is too long for this model ({given:,} tokens; it accepts {room:,}, "
        f"keeping room for a {reply:,}-token reply). Start a new battle with a shorter prompt.",
    )
