"""The TGI backend: text-generation-inference's `/generate_stream`, through the `text_generation` client.

It deals with the quirks of TGI's stream: the special end token is hidden, empty-text tokens (a
UTF-8 character split across tokens) are kept in order, stop sequences (which TGI leaves in the
text) are stripped and never streamed, and a stream that ends without its final event is a
failure, not a short success. Every client and HTTP error becomes one sentence for people.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import text_generation
from pydantic import ValidationError as PydanticValidationError
from text_generation import errors as tgi_errors
from text_generation.types import StreamResponse

from inference.backends import Delta, Finished, GenerationRequest, ProbeResult, StopSequenceFilter
from inference.chat_templates import parameters_effective, prompt_render
from inference.failures import FailureKind, GenerationFailure, too_long_failure
from inference.parameters import CLIENT_KEYWORDS

# TGI's validation errors about length (router/src/validation.rs, MaxTotalTokens and InputLength),
# e.g. "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 6002
# `inputs` tokens and 256 `max_new_tokens`".
_TOO_LONG_WITH_REPLY = re.compile(
    r"`inputs` tokens \+ `max_new_tokens` must be <= (\d+)\. Given: (\d+) `inputs` tokens and (\d+) `max_new_tokens`"
)
_TOO_LONG_INPUT = re.compile(r"`inputs` must have less than (\d+) tokens\. Given: (\d+)")


def _too_long_failure(error: str) -> GenerationFailure | None:
    """A clear failure for a conversation over the model's token limits; None for other errors."""
    if match := _TOO_LONG_WITH_REPLY.search(error):
        limit, given, reply = (int(g) for g in match.groups())
        return too_long_failure(limit=limit, given=given, reply=reply)
    if match := _TOO_LONG_INPUT.search(error):
        limit, given = (int(g) for g in match.groups())
        return too_long_failure(limit=limit, given=given)
    return None


_REJECTED = (tgi_errors.ValidationError, tgi_errors.BadRequestError)
# Tried in order (a subclass before its base): the client's errors, each to a kind and a sentence
# ({exc}: the error's text, {status}: its HTTP status); `True`: transient, worth a quiet retry.
_CLIENT_ERRORS: tuple[tuple[tuple[type[BaseException], ...], FailureKind, str, bool], ...] = (
    ((tgi_errors.OverloadedError, tgi_errors.RateLimitExceededError), FailureKind.OVERLOADED,
     "The model server is overloaded; try again shortly.", True),
    ((tgi_errors.GenerationError,), FailureKind.GENERATION, "The model failed while generating: {exc}", False),
    (_REJECTED, FailureKind.VALIDATION, "The model server rejected the request: {exc}", False),
    ((tgi_errors.IncompleteGenerationError,), FailureKind.INCOMPLETE,
     "The model server stopped before finishing the reply.", True),
    ((tgi_errors.ShardNotReadyError, tgi_errors.ShardTimeoutError), FailureKind.UNAVAILABLE,
     "The model is not ready yet; try again shortly.", True),
    ((tgi_errors.NotFoundError,), FailureKind.UNAVAILABLE, "The model server's address is wrong (404).", False),
    ((json.JSONDecodeError,), FailureKind.UNAVAILABLE, "The model server answered with an error page.", True),
    ((TimeoutError,), FailureKind.TIMEOUT, "The model took too long to answer.", False),
    ((aiohttp.ClientConnectorError,), FailureKind.UNAVAILABLE, "The model server can't be reached.", True),
    ((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError), FailureKind.DISCONNECTED,
     "The connection to the model server was lost mid-reply.", False),
    ((aiohttp.ClientResponseError,), FailureKind.UNAVAILABLE, "The model server answered HTTP {status}.", True),
    ((tgi_errors.UnknownError, aiohttp.ClientError, PydanticValidationError), FailureKind.PROTOCOL,
     "Unexpected answer from the model server: {exc}", False),
)


def _failure_from_client_error(exc: Exception) -> GenerationFailure:
    """The failure a client error means; an error not listed is re-raised (a bug to see)."""
    if isinstance(exc, _REJECTED) and (too_long := _too_long_failure(str(exc))):
        return too_long
    for types, kind, sentence, retryable in _CLIENT_ERRORS:
        if isinstance(exc, types):
            message = sentence.format(exc=exc, status=getattr(exc, "status", ""))
            return GenerationFailure(kind, message, retryable=retryable)
    raise exc


class TgiBackend:
    """Streams from a TGI server (or anything speaking its wire protocol) via `generate_stream`."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta | Finished]:
        params = parameters_effective(request.template, request.parameters)
        stops = [str(s) for s in params.pop("stop", [])]
        # Only what the client's generate_stream() accepts (a model's settings are checked when
        # saved; anything else, e.g. in a row saved before that, is ignored).
        kwargs = {k: v for k, v in params.items() if k in CLIENT_KEYWORDS}
        stop_filter = StopSequenceFilter(stops)
        tokens = 0
        events = _token_events(request, prompt_render(request.template, request.messages), stops, kwargs)
        try:
            async for event in events:
                tokens += 1
                if not event.token.special and (out := stop_filter.feed(event.token.text)):
                    yield Delta(out)
                if event.details is not None:
                    if tail := stop_filter.flush():
                        yield Delta(tail)
                    details = event.details
                    yield Finished(stop_filter.emitted, details.generated_tokens, details.finish_reason.value)
                    return
                if stop_filter.stopped:
                    # The server may not know our stop sequence split; we have what we need.
                    yield Finished(stop_filter.emitted, tokens, "stop_sequence")
                    return
        finally:
            await events.aclose()
        raise GenerationFailure(FailureKind.INCOMPLETE, "The model server ended the reply before finishing it.")


async def _token_events(
    request: GenerationRequest, prompt: str, stops: list[str], kwargs: dict[str, Any]
) -> AsyncGenerator[StreamResponse, None]:
    """TGI's stream events, each within the stall limit and all within the model's total timeout;
    every error becomes a GenerationFailure."""
    client = text_generation.AsyncClient(request.endpoint_url, timeout=int(request.timeout_seconds))
    deadline = time.monotonic() + request.timeout_seconds
    events: AsyncIterator[StreamResponse] | None = None
    try:
        # Stops go to the server too, so it stops generating instead of running to the limit.
        events = client.generate_stream(prompt, stop_sequences=stops, **kwargs).__aiter__()
        while True:
            wait = min(request.stall_seconds, max(deadline - time.monotonic(), 0.001))
            try:
                # A timer per event, not wait_for's task per event (py-spy: 5% of a worker's samples).
                async with asyncio.timeout(wait):
                    event = await events.__anext__()
            except StopAsyncIteration:
                return
            yield event
    except TimeoutError as exc:
        if time.monotonic() >= deadline:
            raise GenerationFailure(FailureKind.TIMEOUT, "The model took too long to answer.") from exc
        raise GenerationFailure(
            FailureKind.STALLED, f"The model server stopped sending for {request.stall_seconds:g} s."
        ) from exc
    except Exception as exc:  # mapped to a typed failure, or re-raised when unknown
        raise _failure_from_client_error(exc) from exc
    finally:
        # Closing the iterator closes the HTTP connection, which cancels the request in TGI.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):  # closing a broken stream may raise; nothing to save
                await aclose()


async def server_probe(endpoint_url: str, timeout: float = 5.0) -> ProbeResult:
    """`/health` and `/info` of a TGI server."""
    base = endpoint_url.rstrip("/")
    result: ProbeResult = {"healthy": False, "info": {}, "error": ""}
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
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        result["healthy"] = False
        result["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return result
