"""Model backends: stream one conversation from a model server as text deltas.

`Backend.stream()` yields `Delta`s, then exactly one `Finished`; anything else ends in a
`GenerationFailure` (inference.failures) carrying a message fit to show the user. The
implementations are `inference.tgi.TgiBackend` (TGI's `/generate_stream`) and
`inference.openai_chat.OpenAIChatBackend` (OpenAI-compatible `/v1/chat/completions`);
`inference.protocols` picks one by a model's protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from inference.chat_templates import ChatMessage


@dataclass(frozen=True)
class GenerationRequest:
    endpoint_url: str
    template: str  # TGI only: the server applies its own chat template on the OpenAI protocol
    messages: list[ChatMessage]
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: float = 180.0
    # No token for this long means the server stalled, whatever the total budget left.
    stall_seconds: float = 30.0
    served_model: str = ""  # OpenAI protocol: the `model` to ask for
    # Resolved from their references by whoever builds the request; never printed.
    api_key: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    text: str
    token_count: int  # completion tokens: the server's count when it gives one, else the chunks'
    finish_reason: str
    prompt_tokens: int | None = None  # when the server reports usage


class ProbeResult(TypedDict):
    healthy: bool
    info: dict[str, Any]  # what the server said of itself: TGI's /info, or the model's /v1/models entry
    error: str


class Backend(Protocol):
    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta | Finished]: ...


class StopSequenceFilter:
    """Holds back text that could be the start of a stop sequence; cuts at the first full one.

    Servers stop only at token boundaries and may leave the stop text in the output, so the tail
    that might still turn into a stop sequence is withheld until it can't.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.emitted = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.pending += text
        cut = min((i for s in self.stops if (i := self.pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out, self.pending, self.stopped = self.pending[:cut], "", True
            self.emitted += out
            return out
        hold = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out):]
        self.emitted += out
        return out

    def flush(self) -> str:
        """End of stream: whatever was held back was not a stop sequence after all."""
        out, self.pending = ("" if self.stopped else self.pending), ""
        self.emitted += out
        return out
