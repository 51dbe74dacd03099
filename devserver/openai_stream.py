"""Sending a chat completion, paced like TGI's stream: chunks as vLLM frames them, or one answer.

Same time to first token, tokens per second, concurrency slot, `StreamObserver` calls and counters
as `tgi`'s routes. The end-of-sequence token is paced and shown to the observer like any token, but
sends no content: the final chunk (empty delta, `finish_reason`) goes in its place. Unlike TGI,
and like OpenAI and vLLM, a stop sequence that ends the reply is left out of the content.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiohttp import web

from devserver.faults import Fault
from devserver.generation import Generation
from devserver.state import OUTCOME, ServerState, Slot

# Faults only this protocol acts on (the shared ones are in faults.MID_STREAM_FAULTS).
OPENAI_MID_STREAM_FAULTS = {"error-mid-stream-tgi", "content-filter"}
KEEP_ALIVE = b": keep-alive\n\n"
KEEP_ALIVE_AFTER = 1.0  # a time to first token this long or longer gets keep-alive comments
_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
_CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"
VLLM_ERROR = {"error": {"message": _CUDA_OOM, "type": "InternalServerError", "param": None, "code": 500}}
TGI_ERROR = {"error": {"message": f"Request failed during generation: Server error: {_CUDA_OOM}",
                       "http_status_code": 500}}
INCOMPLETE = {"error": {"message": "Incomplete generation", "type": "InternalServerError",
                        "param": None, "code": 500}}


def contents(generation: Generation, stops: list[str]) -> list[str]:
    """Each token's content ("" for special ones), with a stop sequence that ended the reply cut off."""
    pieces = ["" if token.special else token.text for token in generation.tokens]
    produced = "".join(pieces)
    stop = next((s for s in stops if s and produced.endswith(s)), None)
    if generation.finish_reason != "stop_sequence" or stop is None:
        return pieces
    keep, cut = len(produced) - len(stop), []
    for piece in pieces:
        cut.append(piece[:max(keep, 0)])
        keep -= len(piece)
    return cut


def _usage(generation: Generation, completion_tokens: int) -> dict:
    return {"prompt_tokens": generation.input_length, "completion_tokens": completion_tokens,
            "total_tokens": generation.input_length + completion_tokens}


def _dumps(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


class _Chunks:
    def __init__(self, response: web.StreamResponse, model: str):
        self.response, self.model = response, model
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    async def send(self, payload: dict) -> None:
        await self.response.write(f"data: {_dumps(payload)}\n\n".encode())

    async def choice(self, delta: dict, finish_reason: str | None = None) -> None:
        await self.send({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                         "model": self.model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    async def usage(self, usage: dict) -> None:
        await self.send({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                         "model": self.model, "choices": [], "usage": usage})

    async def done(self) -> None:
        await self.response.write(b"data: [DONE]\n\n")


async def _wait_first_token(response: web.StreamResponse, ttft: float) -> None:
    """Sleep the time to first token, with a keep-alive comment each second if it is long."""
    if ttft < KEEP_ALIVE_AFTER:
        await asyncio.sleep(ttft)
        return
    loop = asyncio.get_running_loop()
    end = loop.time() + ttft
    while (left := end - loop.time()) > 0:
        await response.write(KEEP_ALIVE)
        await asyncio.sleep(min(left, KEEP_ALIVE_AFTER))


async def _mid_stream_fault(request: web.Request, state: ServerState, chunks: _Chunks, fault: Fault) -> bool:
    """Act out a fault that breaks the stream; False if the stream is over."""
    if fault.mode == "stall":
        await asyncio.sleep(state.config.stall_seconds)
        return True
    if fault.mode in ("error-mid-stream", "error-mid-stream-tgi"):
        state.failures["generation"] += 1
        await chunks.send(VLLM_ERROR if fault.mode == "error-mid-stream" else TGI_ERROR)
        await chunks.done()
        return False
    state.failures["injected"] += 1  # cut, or drop
    if fault.mode == "drop":
        _abort(request)
    return False


async def stream_reply(request: web.Request, state: ServerState, slot: Slot, generation: Generation,
                       stops: list[str], fault: Fault | None, include_usage: bool) -> web.StreamResponse:
    config, observer = state.config, state.config.observer
    delay = state.token_delay
    pieces = contents(generation, stops)
    fault_at = min(fault.after_tokens, len(generation.tokens) - 1) if fault else None
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    chunks = _Chunks(response, config.model_id)
    if observer:
        observer.stream_started(response, config.model_id, time.monotonic())
    finish_reason = _FINISH[generation.finish_reason]
    sent = len(generation.tokens)
    try:
        await _wait_first_token(response, config.time_to_first_token)
        slot.start_decoding()
        await chunks.choice({"role": "assistant", "content": ""})
        for index, token in enumerate(generation.tokens):
            if fault and index == fault_at:
                request[OUTCOME] = f"fault {fault.mode} after {index} tokens"
                if fault.mode == "content-filter":
                    state.failures["content_filter"] += 1
                    finish_reason, sent = "content_filter", index
                    break
                if not await _mid_stream_fault(request, state, chunks, fault):
                    return response
            if index:
                await asyncio.sleep(delay)
            if observer:
                observer.token_sent(response, token.text, token.special, time.monotonic())
            if not token.special:
                await chunks.choice({"content": pieces[index]})
        await chunks.choice({}, finish_reason)
        if include_usage:
            await chunks.usage(_usage(generation, sent))
        await chunks.done()
    except ConnectionResetError:
        request[OUTCOME] = "client went away"
        return response
    if finish_reason != "content_filter":
        state.successes += 1
    request.setdefault(OUTCOME, f"{finish_reason}, {sent} tokens")
    return response


async def single_reply(request: web.Request, state: ServerState, slot: Slot, generation: Generation,
                       stops: list[str], fault: Fault | None) -> web.StreamResponse:
    config = state.config
    delay = state.token_delay
    pieces = contents(generation, stops)
    finish_reason = _FINISH[generation.finish_reason]
    sent = len(generation.tokens)
    await asyncio.sleep(config.time_to_first_token)
    slot.start_decoding()
    if fault:
        at = min(fault.after_tokens, len(generation.tokens) - 1)
        await asyncio.sleep(delay * at)
        request[OUTCOME] = f"fault {fault.mode} after {at} tokens"
        if fault.mode == "stall":
            await asyncio.sleep(config.stall_seconds)
        elif fault.mode in ("error-mid-stream", "error-mid-stream-tgi"):
            state.failures["generation"] += 1
            return web.json_response(VLLM_ERROR if fault.mode == "error-mid-stream" else TGI_ERROR, status=500)
        elif fault.mode == "cut":
            state.failures["incomplete"] += 1
            return web.json_response(INCOMPLETE, status=500)
        elif fault.mode == "drop":
            state.failures["injected"] += 1
            _abort(request)
            return web.Response(status=500)  # nobody is left to read it
        elif fault.mode == "content-filter":
            state.failures["content_filter"] += 1
            finish_reason, sent = "content_filter", at
        if fault.mode != "stall":
            delay = 0.0  # the rest of the reply is not made
        await asyncio.sleep(delay * max(len(generation.tokens) - 1 - at, 0))
    else:
        await asyncio.sleep(delay * max(len(generation.tokens) - 1, 0))
    if finish_reason != "content_filter":
        state.successes += 1
    request.setdefault(OUTCOME, f"{finish_reason}, {sent} tokens")
    return web.json_response({
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": config.model_id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces[:sent])},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": _usage(generation, sent),
    }, dumps=_dumps)
