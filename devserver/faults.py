"""Faults on demand: the server-wide switch and the `[[devserver:...]]` prompt markers."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from devserver.config import FAULT_MODES

log = logging.getLogger("devserver")

# Faults that let the stream begin and then break it after some tokens.
MID_STREAM_FAULTS = {"error-mid-stream", "cut", "stall", "drop"}
_MARKER = re.compile(r"\[\[devserver:([a-z0-9-]+)(?::(\d+))?\]\]")
_MARKER_AND_SPACES = re.compile(r"[ \t]*\[\[devserver:[^\]]*\]\][ \t]*")
ECHO_MARKER = "echo"  # `[[devserver:echo]]`: reply with the last user message


@dataclass(frozen=True)
class Fault:
    mode: str
    after_tokens: int


@dataclass
class FaultState:
    """The server-wide fault; `count` is how many more requests it applies to (None = no limit)."""

    mode: str | None = None
    after_tokens: int = 5
    count: int | None = None

    def take(self, for_health: bool = False) -> Fault | None:
        """The fault for one request (a generation request, or a /health call), using up `count`."""
        if self.mode is None or (self.mode == "unhealthy") != for_health:
            return None
        fault = Fault(self.mode, self.after_tokens)
        if self.count is not None:
            self.count -= 1
            if self.count <= 0:
                self.mode, self.count = None, None
        return fault

    def as_json(self) -> dict:
        return {"fault": self.mode, "after_tokens": self.after_tokens, "count": self.count,
                "modes": list(FAULT_MODES)}


def fault_state_from_body(body: dict, default_after_tokens: int) -> FaultState:
    """The switch's new state from a `POST /__devserver__/fault` body; raises ValueError."""
    try:
        mode = body.get("fault")
        after = body.get("after_tokens", default_after_tokens)
        count = body.get("count")
    except AttributeError as exc:
        raise ValueError(str(exc)) from exc
    if mode is not None and mode not in FAULT_MODES:
        raise ValueError(f"unknown fault {mode!r}; choose from {', '.join(FAULT_MODES)}")
    if not isinstance(after, int) or after < 0:
        raise ValueError("`after_tokens` must be an integer >= 0")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("`count` must be an integer >= 1 or null")
    return FaultState(mode, after, count if mode else None)


def fault_for_request(switch: FaultState, inputs: str, default_after_tokens: int) -> Fault | None:
    """A prompt marker's fault (not using up the switch's count), else the switch's."""
    for marker in _MARKER.finditer(inputs):
        mode, after = marker.group(1), marker.group(2)
        if mode == ECHO_MARKER:
            continue
        if mode in FAULT_MODES and mode != "unhealthy":
            return Fault(mode, int(after) if after else default_after_tokens)
        log.warning("ignoring unknown fault marker %r", marker.group(0))
        break
    return switch.take()


def without_markers(inputs: str) -> str:
    """The prompt as if it had no fault markers, so that they don't change the reply."""
    def replace(match: re.Match) -> str:
        # "a [[devserver:cut]] b" -> "a b"; at either end of a word run, the spaces go too.
        both_sides = match.group()[0] in " \t" and match.group()[-1] in " \t"
        inside = match.start() > 0 and match.end() < len(inputs)
        return " " if both_sides and inside else ""
    return _MARKER_AND_SPACES.sub(replace, inputs)


def wants_echo(inputs: str) -> bool:
    """Does the prompt ask for its last user message back (`[[devserver:echo]]`)?"""
    return any(marker.group(1) == ECHO_MARKER for marker in _MARKER.finditer(inputs))
