"""A development stand-in for a text-generation-inference (TGI) model server.

It speaks TGI's HTTP wire protocol closely enough for the `text_generation` client and our own
backend: `POST /` (TGI's compat route, the one the client really uses), `POST /generate`,
`POST /generate_stream` (server-sent events framed as `data:{json}\\n\\n`), `GET /info`,
`GET /health` and `GET /metrics`. Replies are deterministic (see `inference.devserver_text`) and are
paced like a GPU would: `time_to_first_token`, then `tokens_per_second`.

Like TGI, the server rejects work past `max_concurrent_requests` instead of queueing it: `/generate`
answers HTTP 429, streaming routes answer HTTP 200 with a single overloaded error event.

Faults, for testing how clients cope (development only):

- `overload`        answer as TGI does past its concurrency limit (429 / error event in the stream)
- `overload-http`   HTTP 429 with TGI's JSON error body on every route, streaming ones included
- `error-mid-stream` after N tokens, a `generation` error event (HTTP 424 for `/generate`)
- `cut`             after N tokens, end the stream cleanly with no final event
                    (`/generate` answers 500 `incomplete_generation`, as TGI does in that case)
- `stall`           after N tokens, send nothing for `stall_seconds`, then carry on
- `drop`            after N tokens, abort the TCP connection
- `http-500`        HTTP 500 with an HTML error page, like a proxy in front of a dead server
- `unhealthy`       `/health` answers 503; generation keeps working

N is `fault_after_tokens`; if the reply is shorter, the fault fires before the final token, so it
always shows. A fault set in the config or at runtime applies to generation requests (to `/health`
answers for `unhealthy`), and `fault_count` of them at most, after which the server is healthy
again (`None` = for ever). Switch it at runtime, without a restart:

    POST /__devserver__/fault  {"fault": "cut" | null, "after_tokens": 3, "count": 1 | null}
    GET  /__devserver__/fault  -> the current state

Per-request trigger, for browser and integration tests: a prompt containing the marker
`[[devserver:<mode>]]` or `[[devserver:<mode>:<after_tokens>]]` (e.g. `[[devserver:cut:3]]`) gets
that fault, for that request only; it does not use up `fault_count` (`unhealthy` and unknown modes
are ignored). Markers are removed from the prompt before the reply is made, so the reply is the
same as without them.

`[[devserver:echo]]` anywhere in the prompt makes the reply the prompt's last user message exactly,
with the marker removed: tests use it to make a model say something chosen (markup, "I am
ChatGPT, made by OpenAI"). It is tokenised and streamed like any reply (and cut by
`max_new_tokens`, stop sequences and fault markers, e.g. `[[devserver:echo]] [[devserver:cut:3]]`),
but not shortened to the usual reply length.

Run it with `python -m inference.devserver --model-id zephyr-7b-beta --port 8081` or
`python manage.py tgi_devserver ...` (same arguments); tests use `serve_in_thread()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from inference import devserver_text as text

log = logging.getLogger("inference.devserver")

FAULT_MODES = (
    "overload", "overload-http", "error-mid-stream", "cut", "stall", "drop", "http-500", "unhealthy",
)
_MID_STREAM_FAULTS = {"error-mid-stream", "cut", "stall", "drop"}
_MARKER = re.compile(r"\[\[devserver:([a-z0-9-]+)(?::(\d+))?\]\]")
_MARKER_AND_SPACES = re.compile(r"[ \t]*\[\[devserver:[^\]]*\]\][ \t]*")
ECHO_MARKER = "echo"  # `[[devserver:echo]]`: reply with the last user message
# TGI's default when the request has no max_new_tokens: what fits, but at most this many.
_DEFAULT_GENERATION_LENGTH = 1024
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


@dataclass
class DevServerConfig:
    model_id: str
    time_to_first_token: float = 0.2
    tokens_per_second: float = 30
    max_concurrent_requests: int = 128
    max_input_tokens: int = 3072
    max_total_tokens: int = 4096
    max_stop_sequences: int = 4
    fault: str | None = None
    fault_after_tokens: int = 5
    fault_count: int | None = None
    stall_seconds: float = 3600

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULT_MODES:
            raise ValueError(f"unknown fault {self.fault!r}; choose from {', '.join(FAULT_MODES)}")


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


@dataclass
class ServerState:
    config: DevServerConfig
    fault: FaultState
    queued: int = 0  # admitted, waiting for their first token
    decoding: int = 0  # producing tokens
    requests: int = 0
    successes: int = 0
    failures: Counter = field(default_factory=Counter)

    @property
    def in_flight(self) -> int:
        return self.queued + self.decoding


STATE = web.AppKey("devserver_state", ServerState)
OUTCOME = web.RequestKey("devserver_outcome", str)  # what happened, for the log line


# --- request handling helpers ----------------------------------------------------------------

class InvalidRequest(Exception):
    """A request TGI would refuse as `validation` (HTTP 422, or an error event when streaming)."""


def _error(payload: dict, status: int) -> web.Response:
    return web.json_response(payload, status=status)


def _validation_error(message: str) -> dict:
    return {"error": f"Input validation error: {message}", "error_type": "validation"}


def _number(params: Mapping, name: str) -> float | None:
    value = params.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise InvalidRequest(f"`{name}` must be a number")
    return value


def validate(config: DevServerConfig, inputs: str, params: Mapping) -> int:
    """TGI's checks, in TGI's order. Returns the max_new_tokens to use; raises InvalidRequest."""
    temperature = _number(params, "temperature")
    if temperature is not None and temperature <= 0:
        raise InvalidRequest("`temperature` must be strictly positive")
    top_p = _number(params, "top_p")
    if top_p is not None and not 0 < top_p < 1:
        raise InvalidRequest("`top_p` must be > 0.0 and < 1.0")
    top_k = _number(params, "top_k")
    if top_k is not None and top_k <= 0:
        raise InvalidRequest("`top_k` must be strictly positive")
    max_new_tokens = _number(params, "max_new_tokens")
    if max_new_tokens is not None and max_new_tokens <= 0:
        raise InvalidRequest("`max_new_tokens` must be strictly positive")
    stop = params.get("stop") or []
    if len(stop) > config.max_stop_sequences:
        raise InvalidRequest(
            f"`stop` supports up to {config.max_stop_sequences} stop sequences. Given: {len(stop)}"
        )
    if not inputs:
        raise InvalidRequest("`inputs` cannot be empty")
    input_length = text.count_input_tokens(inputs)
    if max_new_tokens is None:
        max_new_tokens = min(max(config.max_total_tokens - input_length, 1), _DEFAULT_GENERATION_LENGTH)
    if input_length + max_new_tokens > config.max_total_tokens:
        raise InvalidRequest(
            f"`inputs` tokens + `max_new_tokens` must be <= {config.max_total_tokens}. "
            f"Given: {input_length} `inputs` tokens and {int(max_new_tokens)} `max_new_tokens`"
        )
    if input_length > config.max_input_tokens:
        raise InvalidRequest(
            f"`inputs` must have less than {config.max_input_tokens} tokens. Given: {input_length}"
        )
    return int(max_new_tokens)


@dataclass
class Generation:
    """Everything one request will send: the last token carries generated_text and details."""

    tokens: list[text.Token]
    finish_reason: str
    seed: int | None
    input_length: int
    prefix: str = ""  # the prompt, when return_full_text is asked for

    @property
    def generated_text(self) -> str:
        return self.prefix + "".join(t.text for t in self.tokens if not t.special)

    def stream_details(self) -> dict:
        return {"finish_reason": self.finish_reason, "generated_tokens": len(self.tokens),
                "seed": self.seed, "input_length": self.input_length}

    def details(self) -> dict:
        return {"finish_reason": self.finish_reason, "generated_tokens": len(self.tokens),
                "seed": self.seed, "prefill": [], "tokens": [t.as_json() for t in self.tokens]}


def plan_generation(config: DevServerConfig, inputs: str, params: Mapping, max_new_tokens: int) -> Generation:
    seed = params.get("seed")
    if wants_echo(inputs):
        reply = text.tokenize(text.last_user_message(without_markers(inputs)))
    else:
        reply = text.reply_tokens(config.model_id, without_markers(inputs), seed)
    stops = [s for s in params.get("stop") or [] if s]
    tokens: list[text.Token] = []
    produced = ""
    finish_reason = "eos_token"
    for token in reply:
        if len(tokens) == max_new_tokens:
            finish_reason = "length"
            break
        tokens.append(token)
        produced += token.text
        # TGI checks stop sequences against the end of the text after each token.
        if any(produced.endswith(stop) for stop in stops):
            finish_reason = "stop_sequence"
            break
    else:
        if len(tokens) < max_new_tokens:
            tokens.append(text.eos_token())
        else:
            finish_reason = "length"
    return Generation(
        tokens=tokens,
        finish_reason=finish_reason,
        seed=seed,
        input_length=text.count_input_tokens(inputs),
        prefix=inputs if params.get("return_full_text") else "",
    )


def without_markers(inputs: str) -> str:
    """The prompt as if it had no fault markers, so that they don't change the reply."""
    def replace(match: re.Match) -> str:
        # "a [[devserver:cut]] b" -> "a b"; at either end of a word run, the spaces go too.
        both_sides = match.group()[0] in " \t" and match.group()[-1] in " \t"
        inside = 0 < match.start() and match.end() < len(inputs)
        return " " if both_sides and inside else ""
    return _MARKER_AND_SPACES.sub(replace, inputs)


def wants_echo(inputs: str) -> bool:
    """Does the prompt ask for its last user message back (`[[devserver:echo]]`)?"""
    return any(marker.group(1) == ECHO_MARKER for marker in _MARKER.finditer(inputs))


def _fault_for_request(state: ServerState, inputs: str) -> Fault | None:
    for marker in _MARKER.finditer(inputs):
        mode, after = marker.group(1), marker.group(2)
        if mode == ECHO_MARKER:
            continue
        if mode in FAULT_MODES and mode != "unhealthy":
            return Fault(mode, int(after) if after else state.config.fault_after_tokens)
        log.warning("ignoring unknown fault marker %r", marker.group(0))
        break
    return state.fault.take()


def _token_delay(config: DevServerConfig) -> float:
    return 1 / config.tokens_per_second if config.tokens_per_second > 0 else 0.0


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


class _Slot:
    """One admitted request (TGI's concurrency permit): queued until its first token, then decoding."""

    def __init__(self, state: ServerState):
        self.state = state
        self.decoding = False
        state.queued += 1

    def start_decoding(self) -> None:
        self.state.queued -= 1
        self.state.decoding += 1
        self.decoding = True

    def release(self) -> None:
        if self.decoding:
            self.state.decoding -= 1
        else:
            self.state.queued -= 1


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
        return _error(_validation_error("the body must be JSON with a string `inputs`"), 422)
    if stream is None:
        stream = bool(body.get("stream"))

    fault = _fault_for_request(state, inputs)
    if fault and fault.mode == "http-500":
        state.failures["injected"] += 1
        request[OUTCOME] = "fault http-500"
        return web.Response(status=500, text=PROXY_ERROR_PAGE, content_type="text/html")
    if fault and fault.mode == "overload-http":
        state.failures["overloaded"] += 1
        request[OUTCOME] = "fault overload-http"
        return _error(OVERLOADED, 429)
    # Like TGI: no queueing past the limit, and the concurrency check comes before validation.
    if (fault and fault.mode == "overload") or state.in_flight >= state.config.max_concurrent_requests:
        state.failures["overloaded"] += 1
        request[OUTCOME] = "overloaded"
        return await _stream_error(request, OVERLOADED) if stream else _error(OVERLOADED, 429)

    slot = _Slot(state)  # taken before any await, so concurrent requests can't both squeeze in
    try:
        try:
            max_new_tokens = validate(state.config, inputs, params)
        except InvalidRequest as exc:
            state.failures["validation"] += 1
            request[OUTCOME] = f"validation: {exc}"
            error = _validation_error(str(exc))
            return await _stream_error(request, error) if stream else _error(error, 422)
        generation = plan_generation(state.config, inputs, params, max_new_tokens)
        fault = fault if fault and fault.mode in _MID_STREAM_FAULTS else None
        if stream:
            return await _stream_reply(request, state, slot, generation, fault)
        with_details = bool(params.get("details"))
        return await _single_reply(request, state, slot, generation, fault, as_list, with_details)
    finally:
        slot.release()


async def _single_reply(request, state, slot, generation, fault, as_list, with_details) -> web.StreamResponse:
    config = state.config
    delay = _token_delay(config)
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
            return _error(GENERATION_FAILED, 424)
        elif fault.mode == "cut":
            # What TGI itself answers when a generation ends without its final message.
            state.failures["incomplete"] += 1
            return _error(INCOMPLETE, 500)
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
    delay = _token_delay(config)
    fault_at = min(fault.after_tokens, len(generation.tokens) - 1) if fault else None
    last = len(generation.tokens) - 1
    response = await _start_stream(request)
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
            await _send_event(response, event)
    except ConnectionResetError:
        request[OUTCOME] = "client went away"
        return response
    state.successes += 1
    request.setdefault(OUTCOME, f"{generation.finish_reason}, {len(generation.tokens)} tokens")
    return response


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
        return _error(UNHEALTHY, 503)
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


# --- runtime fault switch --------------------------------------------------------------------

async def fault_get(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].fault.as_json())


async def fault_set(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
        mode = body.get("fault")
        after = body.get("after_tokens", state.config.fault_after_tokens)
        count = body.get("count")
        if mode is not None and mode not in FAULT_MODES:
            raise ValueError(f"unknown fault {mode!r}; choose from {', '.join(FAULT_MODES)}")
        if not isinstance(after, int) or after < 0:
            raise ValueError("`after_tokens` must be an integer >= 0")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("`count` must be an integer >= 1 or null")
    except (ValueError, AttributeError) as exc:
        return _error({"error": str(exc), "error_type": "validation"}, 400)
    state.fault = FaultState(mode, after, count if mode else None)
    log.info("fault set to %s", state.fault.as_json())
    return web.json_response(state.fault.as_json())


# --- the application -------------------------------------------------------------------------

@web.middleware
async def _log_request(request: web.Request, handler) -> web.StreamResponse:
    """One line per request, written when it ends (for a stream: after its last event)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    status: int | str = "error"
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = "cancelled (client went away)"
        raise
    finally:
        outcome = request.get(OUTCOME)
        log.info("%s %s %s %.2fs%s", request.method, request.path, status, loop.time() - started,
                 f" [{outcome}]" if outcome else "")


def build_app(config: DevServerConfig) -> web.Application:
    app = web.Application(middlewares=[_log_request])
    fault = FaultState(config.fault, config.fault_after_tokens, config.fault_count if config.fault else None)
    app[STATE] = ServerState(config=config, fault=fault)
    app.router.add_post("/", compat_generate)
    app.router.add_post("/generate", generate)
    app.router.add_post("/generate_stream", generate_stream)
    app.router.add_get("/info", info)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/__devserver__/fault", fault_get)
    app.router.add_post("/__devserver__/fault", fault_set)
    return app


# handler_cancellation: a client that hangs up cancels its request, as it does in TGI's batch.
_SERVER_OPTIONS = {"access_log": None, "handler_cancellation": True}


def _describe(config: DevServerConfig) -> str:
    fault = f", fault {config.fault} after {config.fault_after_tokens} tokens" if config.fault else ""
    return (f"model {config.model_id}, time to first token {config.time_to_first_token}s, "
            f"{config.tokens_per_second} tokens/s, max {config.max_concurrent_requests} concurrent{fault}")


def run(config: DevServerConfig, host: str = "127.0.0.1", port: int = 8081) -> None:
    """Serve until interrupted (Ctrl+C / SIGTERM)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    log.info("TGI dev server on http://%s:%s (%s)", host, port, _describe(config))
    web.run_app(build_app(config), host=host, port=port, print=None, shutdown_timeout=2.0, **_SERVER_OPTIONS)


@contextlib.contextmanager
def serve_in_thread(config: DevServerConfig, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the server on a background thread with its own event loop; yields its base URL."""
    runner = web.AppRunner(build_app(config), shutdown_timeout=0.5, **_SERVER_OPTIONS)
    ready = threading.Event()
    loop_holder: dict = {}

    async def serve() -> None:
        stop = asyncio.Event()
        loop_holder["loop"], loop_holder["stop"] = asyncio.get_running_loop(), stop
        try:
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
        except BaseException as exc:
            loop_holder["error"] = exc
            raise
        finally:
            ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="tgi-devserver", daemon=True)
    thread.start()
    ready.wait()
    if "error" in loop_holder:
        thread.join()
        raise loop_holder["error"]
    bound_port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        loop_holder["loop"].call_soon_threadsafe(loop_holder["stop"].set)
        thread.join(timeout=10)


# --- command line ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options, shared with `manage.py tgi_devserver`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--model-id", required=True, help="the model this server pretends to be")
    parser.add_argument("--ttft", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument("--tokens-per-second", type=float, default=30, help="0 = no delay")
    parser.add_argument("--max-concurrent-requests", type=int, default=128)
    parser.add_argument("--max-input-tokens", type=int, default=3072)
    parser.add_argument("--max-total-tokens", type=int, default=4096)
    parser.add_argument("--fault", choices=FAULT_MODES, default=None)
    parser.add_argument("--fault-after-tokens", type=int, default=5)
    parser.add_argument("--fault-count", type=int, default=None, help="default: the fault never ends")
    parser.add_argument("--stall-seconds", type=float, default=3600)


def config_from_options(options: Mapping) -> DevServerConfig:
    """A config from parsed options (argparse's `vars(namespace)` or Django's `**options`)."""
    return DevServerConfig(
        model_id=options["model_id"],
        time_to_first_token=options["ttft"],
        tokens_per_second=options["tokens_per_second"],
        max_concurrent_requests=options["max_concurrent_requests"],
        max_input_tokens=options["max_input_tokens"],
        max_total_tokens=options["max_total_tokens"],
        fault=options["fault"],
        fault_after_tokens=options["fault_after_tokens"],
        fault_count=options["fault_count"],
        stall_seconds=options["stall_seconds"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inference.devserver",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    run(config_from_options(options), options["host"], options["port"])


if __name__ == "__main__":
    main()
