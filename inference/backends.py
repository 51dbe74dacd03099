"""Model backends: stream one conversation from a model server as text deltas.

`Backend.stream()` yields `Delta`s, then exactly one `Finished`; anything else ends in a
`GenerationFailure` carrying a message fit to show the user. `TgiBackend` talks to a
text-generation-inference server through the `text_generation` client and deals with the quirks of
TGI's stream: the special end token is hidden, empty-text tokens (a UTF-8 character split across
tokens) are kept in order, stop sequences (which TGI leaves in the text) are stripped and never
streamed, and a stream that ends without its final event is a failure, not a short success.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import text_generation
from pydantic import ValidationError as PydanticValidationError
from text_generation import errors as tgi_errors

from inference.failures import FailureKind, GenerationFailure
from inference.chat_templates import ChatMessage, parameters_effective, prompt_render
from inference.parameters import CLIENT_KEYWORDS

# Parameters the client's generate_stream() accepts (a model's settings are checked against
# inference.parameters when saved; anything else, e.g. in a row saved before that, is ignored).
_CLIENT_PARAMETERS = CLIENT_KEYWORDS


@dataclass(frozen=True)
class GenerationRequest:
    endpoint_url: str
    template: str
    messages: list[ChatMessage]
    parameters: dict = field(default_factory=dict)
    timeout_seconds: float = 180.0
    # No token for this long means the server stalled, whatever the total budget left.
    stall_seconds: float = 30.0


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    text: str
    token_count: int
    finish_reason: str


class Backend(Protocol):
    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta | Finished]: ...


class StopSequenceFilter:
    """Holds back text that could be the start of a stop sequence; cuts at the first full one.

    TGI only stops at token boundaries and leaves the stop text in the output, so the tail that
    might still turn into a stop sequence is withheld until it can't.
    """

    def __init__(self, stops: list[str]):
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


# TGI's validation errors about length (router/src/validation.rs, MaxTotalTokens and InputLength),
# e.g. "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 6002
# `inputs` tokens and 256 `max_new_tokens`".
_TOO_LONG_WITH_REPLY = re.compile(
    r"`inputs` tokens \+ `max_new_tokens` must be <= (\d+)\. Given: (\d+) `inputs` tokens and (\d+) `max_new_tokens`"
)
_TOO_LONG_INPUT = re.compile(r"`inputs` must have less than (\d+) tokens\. Given: (\d+)")


def _too_long_failure(error: str) -> GenerationFailure | None:
    """A clear failure for a conversation over the model's token limits; None for other errors.

    Never retryable: the same conversation is refused again, on this model, whatever the load.
    """
    if match := _TOO_LONG_WITH_REPLY.search(error):
        limit, given, reply = (int(g) for g in match.groups())
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
    if match := _TOO_LONG_INPUT.search(error):
        limit, given = (int(g) for g in match.groups())
        return GenerationFailure(
            FailureKind.TOO_LONG,
            f"This conversation is too long for this model ({given:,} tokens; it accepts {limit:,}). "
            "Start a new battle with a shorter prompt.",
        )
    return None


def _failure_from_client_error(exc: Exception) -> GenerationFailure:
    if isinstance(exc, (tgi_errors.OverloadedError, tgi_errors.RateLimitExceededError)):
        return GenerationFailure(FailureKind.OVERLOADED, "The model server is overloaded; try again shortly.", retryable=True)
    if isinstance(exc, tgi_errors.GenerationError):
        return GenerationFailure(FailureKind.GENERATION, f"The model failed while generating: {exc}")
    if isinstance(exc, (tgi_errors.ValidationError, tgi_errors.BadRequestError)) and (too_long := _too_long_failure(str(exc))):
        return too_long
    if isinstance(exc, (tgi_errors.ValidationError, tgi_errors.BadRequestError)):
        return GenerationFailure(FailureKind.VALIDATION, f"The model server rejected the request: {exc}")
    if isinstance(exc, tgi_errors.IncompleteGenerationError):
        return GenerationFailure(FailureKind.INCOMPLETE, "The model server stopped before finishing the reply.", retryable=True)
    if isinstance(exc, (tgi_errors.ShardNotReadyError, tgi_errors.ShardTimeoutError)):
        return GenerationFailure(FailureKind.UNAVAILABLE, "The model is not ready yet; try again shortly.", retryable=True)
    if isinstance(exc, tgi_errors.NotFoundError):
        return GenerationFailure(FailureKind.UNAVAILABLE, "The model server's address is wrong (404).")
    if isinstance(exc, json.JSONDecodeError):
        return GenerationFailure(FailureKind.UNAVAILABLE, "The model server answered with an error page.", retryable=True)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return GenerationFailure(FailureKind.TIMEOUT, "The model took too long to answer.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return GenerationFailure(FailureKind.UNAVAILABLE, "The model server can't be reached.", retryable=True)
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        return GenerationFailure(FailureKind.DISCONNECTED, "The connection to the model server was lost mid-reply.")
    if isinstance(exc, aiohttp.ClientResponseError):
        return GenerationFailure(FailureKind.UNAVAILABLE, f"The model server answered HTTP {exc.status}.", retryable=True)
    if isinstance(exc, (tgi_errors.UnknownError, aiohttp.ClientError, PydanticValidationError)):
        return GenerationFailure(FailureKind.PROTOCOL, f"Unexpected answer from the model server: {exc}")
    raise exc


class TgiBackend:
    """Streams from a TGI server (or anything speaking its wire protocol) via `generate_stream`."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta | Finished]:
        params = parameters_effective(request.template, request.parameters)
        stops = list(params.pop("stop", []))
        kwargs = {k: v for k, v in params.items() if k in _CLIENT_PARAMETERS}
        prompt = prompt_render(request.template, request.messages)
        client = text_generation.AsyncClient(request.endpoint_url, timeout=int(request.timeout_seconds))
        stop_filter = StopSequenceFilter(stops)
        tokens = 0
        deadline = time.monotonic() + request.timeout_seconds
        try:
            # Pass stops to the server too, so it stops generating instead of running to the limit.
            events = client.generate_stream(prompt, stop_sequences=stops, **kwargs).__aiter__()
            while True:
                wait = min(request.stall_seconds, max(deadline - time.monotonic(), 0.001))
                try:
                    event = await asyncio.wait_for(events.__anext__(), timeout=wait)
                except StopAsyncIteration:
                    break
                tokens += 1
                if not event.token.special:
                    if out := stop_filter.feed(event.token.text):
                        yield Delta(out)
                if event.details is not None:
                    if tail := stop_filter.flush():
                        yield Delta(tail)
                    yield Finished(stop_filter.emitted, event.details.generated_tokens, event.details.finish_reason.value)
                    return
                if stop_filter.stopped:
                    # The server may not know our stop sequence split; we have what we need.
                    yield Finished(stop_filter.emitted, tokens, "stop_sequence")
                    return
        except GenerationFailure:
            raise
        except asyncio.TimeoutError as exc:
            if time.monotonic() >= deadline:
                raise GenerationFailure(FailureKind.TIMEOUT, "The model took too long to answer.") from exc
            raise GenerationFailure(
                FailureKind.STALLED, f"The model server stopped sending for {request.stall_seconds:g} s."
            ) from exc
        except Exception as exc:  # mapped to a typed failure, or re-raised when unknown
            raise _failure_from_client_error(exc) from exc
        finally:
            # Closing the iterator closes the HTTP connection, which cancels the request in TGI.
            aclose = getattr(events, "aclose", None) if "events" in locals() else None
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a broken stream may raise; nothing to save
                    pass
        raise GenerationFailure(FailureKind.INCOMPLETE, "The model server ended the reply before finishing it.", retryable=False)


async def server_probe(endpoint_url: str, timeout: float = 5.0) -> dict:
    """`/health` and `/info` of a TGI server: {"healthy": bool, "info": {...}, "error": str}."""
    base = endpoint_url.rstrip("/")
    result = {"healthy": False, "info": {}, "error": ""}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(f"{base}/health") as resp:
                result["healthy"] = resp.status == 200
                if resp.status != 200:
                    result["error"] = f"/health answered HTTP {resp.status}"
            async with session.get(f"{base}/info") as resp:
                if resp.status == 200:
                    result["info"] = await resp.json()
                elif not result["error"]:
                    result["error"] = f"/info answered HTTP {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        result["healthy"] = False
        result["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return result


async def servers_probe(endpoint_urls: list[str], timeout: float = 5.0) -> list[dict]:
    """`server_probe` for several servers at once, in the given order."""
    return list(await asyncio.gather(*(server_probe(url, timeout) for url in endpoint_urls)))
