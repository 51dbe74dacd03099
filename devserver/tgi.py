"""TGI's routes: generation (one answer or server-sent events), `/info`, `/health`, `/metrics`.

Status codes, JSON bodies and the SSE framing (`data:{json}\\n\\n`) are TGI's, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

from aiohttp import web

from devserver.faults import MID_STREAM_FAULTS, fault_for_request
from devserver.generation import InvalidRequest, plan_generation, validate
from devserver.state import OUTCOME, STATE, Slot

TGI_VERSION = "3.3.7-dev"

OVERLOADED = {"error": "Model is overloaded", "error_type": "overloaded"}
GENERATION_FAILED = {
    "error": "Request failed during generation: Server error: CUDA out of memory",
    "error_type": "generation",
}
INCOMPLETE = {"error": "Incomplete generation", "error_type": "incomplete_generation"}
UNHEALTHY = {"error": "unhealthy", "error_type": "healthcheck"}
PROXY_ERROR_PAGE = (
    "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
    "<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def error_response(payload: dict, status: int) -> web.Response:
    return web.json_response(payload, status=status)


def _validation_error(message: str) -> dict:
    return {"error": f"Input validation error: {message}", "error_type": "validation"}


def _abort_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


# --- generation routes -----------------------------------------------------------------------

async def compat_generate(request: web.Request) -> web.StreamResponse:
    """TGI's `POST /`: streams if the body says so, else answers a one-element list."""
    return await _generation(request, stream=None, as_list=True)


async def generate(request: web.Request) -> web.StreamResponse:
    return await _generation(request, stream=False, as_list=False)


async def generate_stream(request: web.Request) -> web.StreamResponse:
    return await _generation(request, stream=True, as_list=False)


async def _generation(request: web.Request, *, stream: bool | None, as_list: bool) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests += 1
    try:
        body = await request.json()
        inputs = body["inputs"]
        params = body.get("parameters") or {}
        if not isinstance(inputs, str) or not isinstance(params, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        state.failures["validation"] += 1
        request[OUTCOME] = "unreadable body"
        return error_response(_validation_error("the body must be JSON with a string `inputs`"), 422)
    if stream is None:
        stream = bool(body.get("stream"))

    fault = fault_for_request(state.fault, inputs, state.config.fault_after_tokens)
    if fault and fault.mode == "http-500":
        state.failures["injected"] += 1
        request[OUTCOME] = "fault http-500"
        return web.Response(status=500, text=PROXY_ERROR_PAGE, content_type="text/html")
    if fault and fault.mode == "overload-http":
        state.failures["overloaded"] += 1
        request[OUTCOME] = "fault overload-http"
        return error_response(OVERLOADED, 429)
    # Like TGI: no queueing past the limit, and the concurrency check comes before validation.
    if (fault and fault.mode == "overload") or state.in_flight >= state.config.max_concurrent_requests:
        state.failures["overloaded"] += 1
        request[OUTCOME] = "overloaded"
        return await _stream_error(request, OVERLOADED) if stream else error_response(OVERLOADED, 429)

    slot = Slot(state)  # taken before any await, so concurrent requests can't both squeeze in
    try:
        try:
            max_new_tokens = validate(state.config, inputs, params)
        except InvalidRequest as exc:
            state.failures["validation"] += 1
            request[OUTCOME] = f"validation: {exc}"
            error = _validation_error(str(exc))
            return await _stream_error(request, error) if stream else error_response(error, 422)
        generation = plan_generation(state.config, inputs, params, max_new_tokens)
        fault = fault if fault and fault.mode in MID_STREAM_FAULTS else None
        if stream:
            return await _stream_reply(request, state, slot, generation, fault)
        with_details = bool(params.get("details"))
        return await _single_reply(request, state, slot, generation, fault, as_list, with_details)
    finally:
        slot.release()


async def _single_reply(request, state, slot, generation, fault, as_list, with_details) -> web.StreamResponse:
    config = state.config
    delay = state.token_delay
    await asyncio.sleep(config.time_to_first_token)
    slot.start_decoding()
    sent = 0
    if fault:
        sent = min(fault.after_tokens, len(generation.tokens) - 1)
        await asyncio.sleep(delay * sent)
        request[OUTCOME] = f"fault {fault.mode} after {sent} tokens"
        if fault.mode == "stall":
            await asyncio.sleep(config.stall_seconds)
        elif fault.mode == "error-mid-stream":
            state.failures["generation"] += 1
            return error_response(GENERATION_FAILED, 424)
        elif fault.mode == "cut":
            # What TGI itself answers when a generation ends without its final message.
            state.failures["incomplete"] += 1
            return error_response(INCOMPLETE, 500)
        elif fault.mode == "drop":
            state.failures["injected"] += 1
            _abort_connection(request)
            return web.Response(status=500)  # nobody is left to read it
    await asyncio.sleep(delay * max(len(generation.tokens) - 1 - sent, 0))
    state.successes += 1
    request.setdefault(OUTCOME, f"{generation.finish_reason}, {len(generation.tokens)} tokens")
    answer: dict = {"generated_text": generation.generated_text}
    if with_details:
        answer["details"] = generation.details()
    return web.json_response([answer] if as_list else answer, dumps=_dumps)


async def _stream_reply(request, state, slot, generation, fault) -> web.StreamResponse:
    config = state.config
    observer = config.observer
    delay = state.token_delay
    fault_at = min(fault.after_tokens, len(generation.tokens) - 1) if fault else None
    last = len(generation.tokens) - 1
    response = await _start_stream(request)
    if observer:
        observer.stream_started(response, config.model_id, time.monotonic())
    try:
        await asyncio.sleep(config.time_to_first_token)
        slot.start_decoding()
        for index, token in enumerate(generation.tokens):
            if index == fault_at:
                request[OUTCOME] = f"fault {fault.mode} after {index} tokens"
                if fault.mode == "stall":
                    await asyncio.sleep(config.stall_seconds)
                elif fault.mode == "error-mid-stream":
                    state.failures["generation"] += 1
                    await _send_event(response, GENERATION_FAILED)
                    return response
                elif fault.mode == "cut":
                    state.failures["injected"] += 1
                    return response
                elif fault.mode == "drop":
                    state.failures["injected"] += 1
                    _abort_connection(request)
                    return response
            if index:
                await asyncio.sleep(delay)
            event = {"index": index + 1, "token": token.as_json(), "generated_text": None, "details": None}
            if index == last:
                event["generated_text"] = generation.generated_text
                event["details"] = generation.stream_details()
            if observer:
                observer.token_sent(response, token.text, token.special, time.monotonic())
            await _send_event(response, event)
    except ConnectionResetError:
        request[OUTCOME] = "client went away"
        return response
    state.successes += 1
    request.setdefault(OUTCOME, f"{generation.finish_reason}, {len(generation.tokens)} tokens")
    return response


# --- server-sent events ----------------------------------------------------------------------

async def _start_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    return response


async def _stream_error(request: web.Request, payload: dict) -> web.StreamResponse:
    """TGI runs its checks inside the stream: errors come as one event in an HTTP 200 answer."""
    response = await _start_stream(request)
    await _send_event(response, payload)
    return response


def _dumps(payload) -> str:
    # TGI (serde_json) sends UTF-8 as is, not \\u escapes.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


async def _send_event(response: web.StreamResponse, payload: dict) -> None:
    await response.write(f"data:{_dumps(payload)}\n\n".encode())


# --- other TGI routes ------------------------------------------------------------------------

async def info(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    return web.json_response({
        "model_id": config.model_id,
        # A made-up but stable revision: there are no weights behind this server.
        "model_sha": hashlib.sha1(config.model_id.encode()).hexdigest(),
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": config.max_concurrent_requests,
        "max_best_of": 2,
        "max_stop_sequences": config.max_stop_sequences,
        "max_input_tokens": config.max_input_tokens,
        "max_total_tokens": config.max_total_tokens,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": TGI_VERSION,
        "sha": None,
        "docker_label": None,
    })


async def health(request: web.Request) -> web.Response:
    if request.app[STATE].fault.take(for_health=True):
        return error_response(UNHEALTHY, 503)
    return web.Response(status=200)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    lines = [
        "# TYPE tgi_request_count counter", f"tgi_request_count {state.requests}",
        "# TYPE tgi_request_success counter", f"tgi_request_success {state.successes}",
        "# TYPE tgi_request_failure counter",
        *(f'tgi_request_failure{{err="{err}"}} {n}' for err, n in sorted(state.failures.items())),
        "# TYPE tgi_queue_size gauge", f"tgi_queue_size {state.queued}",
        "# TYPE tgi_batch_current_size gauge", f"tgi_batch_current_size {state.decoding}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/", compat_generate)
    app.router.add_post("/generate", generate)
    app.router.add_post("/generate_stream", generate_stream)
    app.router.add_get("/info", info)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
