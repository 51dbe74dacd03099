"""The OpenAI-compatible backend: `/v1/chat/completions`, streamed, through the `openai` package.

vLLM, SGLang, TGI's Messages API, Ollama, llama.cpp's server and hosted APIs all speak it. The
server applies the model's chat template, so a request carries the messages as they are. Usage
comes from the chunk `stream_options.include_usage` asks for (counted from the chunks where a
server sends none). The client's own retries are off: the generation task owns retries, quietly
and only before anything was shown, honouring a server's `Retry-After`. Every error becomes one
sentence for people with the API key taken out of it; the key and headers never reach a log line.

Two choices keep a token's cost near the TGI client's (bench/README.md): the client runs on the
`openai` package's aiohttp transport (its `aiohttp` extra) instead of httpx2's, and chunks are read
as the JSON objects they are (`cast_to=object` through the client's own `post`, which still
decodes the events, stops at `[DONE]` and raises on an `error` payload) instead of being built
into typed models, which cost four times the rest of the stream.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import aiohttp
import httpx2
import openai
from pydantic import ValidationError as PydanticValidationError

from inference.backends import Delta, Finished, GenerationRequest, ProbeResult
from inference.failures import FailureKind, GenerationFailure, too_long_failure
from inference.parameters import OPENAI_DEFAULTS, OPENAI_EXTRA_BODY, OPENAI_REQUEST_NAMES

# Servers with no key (vLLM or Ollama without --api-key) ignore it; the client needs a string, and
# an explicit one keeps it from falling back to a key in the process's OPENAI_API_KEY.
NO_API_KEY = "none"

# The context-length errors (HTTP 400) of vLLM and OpenAI, oldest wording first. With the reply:
# "This model's maximum context length is 4096 tokens. However, you requested 6002 tokens (5746 in
# the messages, 256 in the completion)." and vLLM's newer "'max_tokens' or 'max_completion_tokens'
# is too large: 256. This model's maximum context length is 4096 tokens and your request has 3900
# input tokens (256 > 4096 - 3900)."; the input alone: "However, your messages resulted in 5000
# tokens." (OpenAI) or "However, your request has 5000 input tokens." (vLLM).
_CONTEXT_WITH_REPLY = re.compile(
    r"maximum context length is (?P<limit>\d+) tokens\. However, you requested \d+ tokens \((?P<given>\d+) in the "
    r"messages, (?P<reply>\d+) in the completion\)"
    r"|is too large: (?P<reply2>\d+)\. This model's maximum context length is (?P<limit2>\d+) tokens and your "
    r"request has (?P<given2>\d+) input tokens"
)
_CONTEXT_INPUT = re.compile(
    r"maximum context length is (\d+) tokens\. However, your "
    r"(?:messages resulted in|request has) (\d+) (?:input )?tokens"
)

_T = TypeVar("_T")


class _Clients:
    """One `AsyncOpenAI` per event loop and server: a client is bound to the loop it first ran on
    (its connection pool is), and reusing one keeps connections open between replies."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], openai.AsyncOpenAI]]
        self._by_loop = weakref.WeakKeyDictionary()

    def get(self, request: GenerationRequest) -> openai.AsyncOpenAI:
        clients = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        key = (request.endpoint_url, request.api_key, tuple(sorted(request.headers.items())))
        client = clients.get(key)
        if client is None:
            client = clients[key] = client_make(request.endpoint_url, request.api_key, request.headers)
        return client


    def pop(self, loop: asyncio.AbstractEventLoop) -> list[openai.AsyncOpenAI]:
        return list(self._by_loop.pop(loop, {}).values())


_CLIENTS = _Clients()


async def clients_close() -> None:
    """Close the clients of the running loop, for a program that ends its loop (a worker's loop
    lives as long as its process); unclosed, their connection pools are reported at exit."""
    for client in _CLIENTS.pop(asyncio.get_running_loop()):
        await client.close()


def client_make(base_url: str, api_key: str, headers: Mapping[str, str], timeout: float = 600.0) -> openai.AsyncOpenAI:
    # The stall and total timeouts are ours (per chunk, per reply); the client's bounds a request.
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key or NO_API_KEY, default_headers=dict(headers) or None,
        max_retries=0, timeout=timeout, http_client=openai.DefaultAioHttpClient(timeout=timeout),
    )


def request_body(request: GenerationRequest) -> dict[str, Any]:
    """The chat-completions request, streamed, with the usage chunk asked for."""
    options = request_options(request.parameters)
    extra = options.pop("extra_body", {})
    return {
        "model": request.served_model, "messages": request.messages, "stream": True,
        "stream_options": {"include_usage": True}, **options, **extra,
    }


def request_options(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """`create()` keywords from a model's parameters (the arena's names: max_new_tokens, stop...);
    the ones OpenAI's API doesn't define (top_k, repetition_penalty) go in the body as vLLM,
    SGLang and TGI read them."""
    params = {**OPENAI_DEFAULTS, **parameters}
    options: dict[str, Any] = {OPENAI_REQUEST_NAMES[k]: v for k, v in params.items() if k in OPENAI_REQUEST_NAMES}
    extra = {k: v for k, v in params.items() if k in OPENAI_EXTRA_BODY}
    if extra:
        options["extra_body"] = extra
    return options


def _without(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _redacted(text: str, request: GenerationRequest) -> str:
    return _without(text, [request.api_key, *request.headers.values()])


def _too_long_failure(message: str) -> GenerationFailure | None:
    """The TGI backend's sentences for the same limits (inference.failures.too_long_failure), so a
    model reads the same whichever protocol serves it; None for other errors."""
    if match := _CONTEXT_WITH_REPLY.search(message):
        groups = match.groupdict()
        limit, given, reply = (int(groups[name] or groups[f"{name}2"]) for name in ("limit", "given", "reply"))
        return too_long_failure(limit=limit, given=given, reply=reply)
    if match := _CONTEXT_INPUT.search(message):
        limit, given = (int(g) for g in match.groups())
        return too_long_failure(limit=limit, given=given)
    return None


def _retry_after(error: openai.APIStatusError) -> float | None:
    raw = error.response.headers.get("retry-after")
    try:
        seconds = float(raw) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: rare from model servers; our own backoff applies
    return seconds if seconds is not None and 0 <= seconds <= 600 else None


def _error_message(error: openai.APIError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return error.message


def _status_failure(error: openai.APIStatusError, request: GenerationRequest) -> GenerationFailure:
    """The failure an HTTP error answer means (the request was refused before any text)."""
    status = error.status_code
    message = _redacted(_error_message(error), request)
    if status in (401, 403):
        return GenerationFailure(
            FailureKind.MISCONFIGURED,
            f"The model server refused this model's API key (HTTP {status}); an admin must fix its key.",
        )
    if status == 404:
        return GenerationFailure(
            FailureKind.MISCONFIGURED,
            f"The model server has no model “{request.served_model}” at this address (HTTP 404); "
            "an admin must fix the model's base URL or served model name.",
        )
    if status == 429:
        return GenerationFailure(
            FailureKind.OVERLOADED, "The model server is overloaded; try again shortly.", retryable=True,
            retry_after=_retry_after(error),
        )
    if status in (400, 413, 422):
        too_long = _too_long_failure(message)
        if too_long is None and error.code == "context_length_exceeded":
            too_long = GenerationFailure(
                FailureKind.TOO_LONG,
                "This conversation is too long for this model. Start a new battle with a shorter prompt.",
            )
        return too_long or GenerationFailure(
            FailureKind.VALIDATION, f"The model server rejected the request: {message}"
        )
    return GenerationFailure(FailureKind.UNAVAILABLE, f"The model server answered HTTP {status}.", retryable=True)


def _stream_error_failure(error: openai.APIError, request: GenerationRequest) -> GenerationFailure:
    """An `{"error": ...}` event inside an HTTP 200 stream: vLLM's `code` or TGI's `http_status_code`."""
    body = error.body if isinstance(error.body, Mapping) else {}
    code = body.get("http_status_code", body.get("code"))
    message = _redacted(_error_message(error), request)
    if code in (429, "429"):
        return GenerationFailure(FailureKind.OVERLOADED, "The model server is overloaded; try again shortly.",
                                 retryable=True)
    if code in (400, 413, 422, "400", "413", "422"):
        return _too_long_failure(message) or GenerationFailure(
            FailureKind.VALIDATION, f"The model server rejected the request: {message}")
    return GenerationFailure(FailureKind.GENERATION, f"The model failed while generating: {message}")


# What the transport's own error says happened, found down the cause chain: the aiohttp transport
# maps every dropped connection and refused connect to httpx2's ConnectTimeout, so the openai
# exception's type alone can't tell a stall from a drop. Tried in order (subclasses first).
_TRANSPORT_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ClientConnectorError, "unreachable"),
    (aiohttp.ConnectionTimeoutError, "unreachable"),
    (httpx2.ConnectError, "unreachable"),
    (httpx2.ConnectTimeout, "unreachable"),
    (aiohttp.SocketTimeoutError, "stalled"),
    (httpx2.ReadTimeout, "stalled"),
    (aiohttp.ServerTimeoutError, "stalled"),
    (aiohttp.ClientPayloadError, "dropped"),
    (aiohttp.ClientConnectionError, "dropped"),
    (httpx2.RemoteProtocolError, "dropped"),
    (httpx2.ReadError, "dropped"),
)


def _transport_cause(exc: BaseException) -> str | None:
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    for types, verdict in _TRANSPORT_CAUSES:
        if any(isinstance(c, types) for c in reversed(causes)):
            return verdict
    return None


def failure_from_client_error(exc: Exception, request: GenerationRequest, *, streaming: bool) -> GenerationFailure:
    """The failure a client error means; `streaming`: the answer had begun. Unknown errors are re-raised."""
    if isinstance(exc, openai.APIStatusError):
        return _status_failure(exc, request)
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
        cause = _transport_cause(exc) or ("stalled" if isinstance(exc, openai.APITimeoutError) else "dropped")
        if cause == "stalled":
            # The client's read timeout is the stall limit: nothing at all received for that long.
            return GenerationFailure(
                FailureKind.STALLED, f"The model server stopped sending for {request.stall_seconds:g} s."
            )
        if cause == "dropped" and streaming:
            return GenerationFailure(FailureKind.DISCONNECTED, "The connection to the model server was lost mid-reply.")
        return GenerationFailure(FailureKind.UNAVAILABLE, "The model server can't be reached.", retryable=True)
    if isinstance(exc, openai.APIResponseValidationError | PydanticValidationError | ValueError):
        # ValueError: a chunk that isn't JSON (json.JSONDecodeError), e.g. a proxy's error page.
        return GenerationFailure(FailureKind.PROTOCOL, "Unexpected answer from the model server.")
    if isinstance(exc, openai.APIError):
        return _stream_error_failure(exc, request)
    raise exc


class OpenAIChatBackend:
    """Streams a chat completion from any server speaking OpenAI's chat-completions protocol."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta | Finished]:
        client = _CLIENTS.get(request)
        deadline = time.monotonic() + request.timeout_seconds
        text: list[str] = []
        chunks = 0
        finish_reason: str | None = None
        usage: Any = None
        began = False
        try:
            # The stall limit is the HTTP client's read timeout, so whatever the server sends counts
            # as a sign of life: a `: keep-alive` comment while it queues or prefills as much as a token.
            stream = await _within(deadline, client.post(
                "/chat/completions", body=request_body(request), cast_to=object, stream=True,
                stream_cls=openai.AsyncStream[object], options={"timeout": request.stall_seconds},
            ))
            began = True
            # Closing the stream, however this ends, closes its connection: the server stops generating.
            async with stream:
                iterator = stream.__aiter__()
                while True:
                    try:
                        chunk = await _within(deadline, iterator.__anext__())
                    except StopAsyncIteration:
                        break
                    content, finished, chunk_usage = _chunk_parts(chunk)
                    usage = chunk_usage or usage
                    if content:
                        chunks += 1
                        text.append(content)
                        yield Delta(content)
                    finish_reason = finished or finish_reason
        except GenerationFailure:
            raise
        except Exception as exc:  # mapped to a typed failure, or re-raised when unknown
            raise failure_from_client_error(exc, request, streaming=began) from exc
        if finish_reason is None:
            raise GenerationFailure(FailureKind.INCOMPLETE, "The model server ended the reply before finishing it.")
        usage = usage if isinstance(usage, dict) else {}
        completion, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
        yield Finished(
            "".join(text), completion if isinstance(completion, int) else chunks, finish_reason,
            prompt_tokens=prompt if isinstance(prompt, int) else None,
        )


def _chunk_parts(chunk: object) -> tuple[str, str | None, dict[str, Any] | None]:
    """(content, finish_reason, usage) of one chunk; the usage chunk has no choices (and vLLM's
    other chunks no `usage` key). A chunk of another shape is the server's error, not ours."""
    try:
        assert isinstance(chunk, dict)
        usage = chunk.get("usage") or None
        choices = chunk.get("choices") or [{}]
        delta = choices[0].get("delta") or {}
        content, finish_reason = delta.get("content") or "", choices[0].get("finish_reason")
        assert isinstance(content, str) and (finish_reason is None or isinstance(finish_reason, str))
        assert usage is None or isinstance(usage, dict)
    except (AssertionError, AttributeError, TypeError, IndexError, KeyError):
        raise GenerationFailure(FailureKind.PROTOCOL, "Unexpected answer from the model server.") from None
    return content, finish_reason, usage


async def _within(deadline: float, step: Awaitable[_T]) -> _T:
    """Await one step of the answer within the reply's total timeout."""
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):  # a timer, not a task per chunk
            return await step
    except TimeoutError as exc:
        raise GenerationFailure(FailureKind.TIMEOUT, "The model took too long to answer.") from exc


async def openai_probe(
    base_url: str, served_model: str, *, api_key: str = "", headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> ProbeResult:
    """`GET {base_url}/models`: does the server answer, accept the key, and serve `served_model`?
    Costs no generation tokens, so it is safe on a hosted API."""
    result: ProbeResult = {"healthy": False, "info": {}, "error": ""}
    secrets = [s for s in (api_key, *(headers or {}).values()) if s]
    try:
        async with client_make(base_url, api_key, headers or {}, timeout=timeout) as client:
            page = await client.models.list()
    except openai.APIStatusError as exc:
        status = exc.status_code
        result["error"] = f"{base_url}/models answered HTTP {status}" + (
            ": the API key was refused" if status in (401, 403)
            else ": check the base URL (an OpenAI-compatible server's usually ends in /v1)" if status == 404 else ""
        )
        return result
    except openai.APIConnectionError as exc:
        if _transport_cause(exc) == "stalled":
            result["error"] = f"{base_url} didn't answer within {timeout:g} s"
        else:
            cause = str(exc.__cause__ or "")
            result["error"] = _without(f"{base_url} can't be reached" + (f" ({cause})" if cause else ""), secrets)
        return result
    except (openai.APIError, PydanticValidationError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        result["error"] = _without(f"{base_url}/models gave an unexpected answer: {error}", secrets)
        return result
    served = {model.id: model for model in page.data}
    entry = served.get(served_model)
    if entry is None:
        names = ", ".join(sorted(served)[:10]) or "none"
        result["error"] = f"The server doesn't serve a model named “{served_model}” (it serves: {names})"
        return result
    result["healthy"] = True
    result["info"] = {"protocol": "openai", **entry.model_dump(exclude_none=True)}
    return result
