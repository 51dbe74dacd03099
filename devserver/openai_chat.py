"""OpenAI's chat-completions protocol, as vLLM serves it: `POST /v1/chat/completions`, `GET /v1/models`.

The chat template is this server's own: the messages are laid out in Zephyr's template (see
`chat_prompt`), so the reply to a conversation is the one TGI's routes give for the same
conversation sent as a Zephyr prompt, and prompt markers work in any message. Errors have vLLM's
bodies (`{"error": {"message", "type", "code"}}`); the streaming itself is in `openai_stream`.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from devserver import text
from devserver.config import DevServerConfig
from devserver.faults import MID_STREAM_FAULTS, fault_for_request
from devserver.generation import plan_generation
from devserver.openai_stream import OPENAI_MID_STREAM_FAULTS, single_reply, stream_reply
from devserver.state import OUTCOME, STATE, ServerState, Slot
from devserver.tgi import PROXY_ERROR_PAGE

_DEFAULT_GENERATION_LENGTH = 1024  # as on TGI's routes: what fits, but at most this many
_ROLES = ("system", "user", "assistant")


class BadRequest(Exception):
    """A request vLLM would refuse with HTTP 400."""


def error_body(message: str, type_: str, code: int | str) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def error_response(request: web.Request, outcome: str, status: int, body: dict,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    request[OUTCOME] = outcome
    return web.json_response(body, status=status, headers=headers)


def _unauthorized(request: web.Request) -> web.Response:
    return error_response(request, "unauthorized", 401, error_body(
        "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))


def _key_refused(request: web.Request) -> bool:
    key = request.app[STATE].config.api_key
    return key is not None and request.headers.get("Authorization") != f"Bearer {key}"


def overloaded(request: web.Request, outcome: str) -> web.Response:
    body = error_body("The server is overloaded, please retry later.", "RateLimitError", 429)
    retry_after = str(request.app[STATE].config.retry_after)
    return error_response(request, outcome, 429, body, headers={"Retry-After": retry_after})


# --- the conversation ------------------------------------------------------------------------

def _content(message: object) -> tuple[str, str]:
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        raise BadRequest(f"each message needs a role among {', '.join(_ROLES)}")
    content = message.get("content")
    if isinstance(content, list):  # content parts: only text ones mean anything here
        content = "".join(part.get("text", "") for part in content
                          if isinstance(part, dict) and part.get("type") == "text")
    if not isinstance(content, str):
        raise BadRequest("a message's `content` must be a string or a list of text parts")
    return message["role"], content


def chat_prompt(messages: object) -> str:
    """The messages in Zephyr's template, ending with the assistant's turn."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("`messages` must be a non-empty list")
    turns = [f"<|{role}|>\n{content}</s>\n" for role, content in map(_content, messages)]
    return "".join(turns) + "<|assistant|>\n"


def _number(body: Mapping, name: str) -> float | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise BadRequest(f"`{name}` must be a number")
    return value


def _integer(body: Mapping, name: str) -> int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadRequest(f"`{name}` must be an integer")
    return value


def sampling(config: DevServerConfig, body: Mapping, prompt: str) -> tuple[int, dict]:
    """(max_tokens, params for plan_generation) from the body; raises BadRequest."""
    temperature = _number(body, "temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        raise BadRequest("`temperature` must be between 0 and 2")
    top_p = _number(body, "top_p")
    if top_p is not None and not 0 < top_p <= 1:
        raise BadRequest("`top_p` must be in (0, 1]")
    seed = _integer(body, "seed")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequest("`stop` must be a string or a list of strings")
    if len(stops) > config.max_stop_sequences:
        raise BadRequest(f"`stop` supports up to {config.max_stop_sequences} sequences")
    max_tokens = _integer(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise BadRequest("`max_tokens` must be at least 1")
    prompt_tokens = text.count_input_tokens(prompt)
    if prompt_tokens > config.max_input_tokens:
        raise BadRequest(
            f"This model's maximum context length is {config.max_input_tokens} tokens. However, your "
            f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages.")
    if max_tokens is None:
        max_tokens = min(max(config.max_total_tokens - prompt_tokens, 1), _DEFAULT_GENERATION_LENGTH)
    wanted = prompt_tokens + max_tokens
    if wanted > config.max_total_tokens:
        raise BadRequest(
            f"This model's maximum context length is {config.max_total_tokens} tokens. However, you "
            f"requested {wanted} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). "
            "Please reduce the length of the messages or completion.")
    return max_tokens, {"seed": seed, "stop": stops}


# --- the routes ------------------------------------------------------------------------------

async def chat_completions(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE]
    state.requests += 1
    if _key_refused(request):
        state.failures["unauthorized"] += 1
        return _unauthorized(request)
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        prompt = chat_prompt(body.get("messages"))
    except (ValueError, BadRequest) as exc:
        state.failures["validation"] += 1
        message = str(exc) if isinstance(exc, BadRequest) else "the body must be JSON"
        return error_response(request, f"bad request: {message}", 400, error_body(message, "BadRequestError", 400))
    model = body.get("model")
    if model is not None and model != state.config.model_id:
        state.failures["validation"] += 1
        return error_response(request, "unknown model", 404,
                              error_body(f"The model `{model}` does not exist.", "NotFoundError", 404))

    fault = fault_for_request(state.fault, prompt, state.config.fault_after_tokens)
    mode = fault.mode if fault else None
    if mode == "http-500":
        state.failures["injected"] += 1
        request[OUTCOME] = "fault http-500"
        return web.Response(status=500, text=PROXY_ERROR_PAGE, content_type="text/html")
    if mode == "unauthorized":
        state.failures["unauthorized"] += 1
        return _unauthorized(request)
    if mode in ("overload", "overload-http") or state.in_flight >= state.config.max_concurrent_requests:
        state.failures["overloaded"] += 1
        return overloaded(request, f"fault {mode}" if mode else "overloaded")

    slot = Slot(state)  # taken before any await, so concurrent requests can't both squeeze in
    try:
        try:
            max_tokens, params = sampling(state.config, body, prompt)
        except BadRequest as exc:
            state.failures["validation"] += 1
            return error_response(request, f"bad request: {exc}", 400, error_body(str(exc), "BadRequestError", 400))
        generation = plan_generation(state.config, prompt, params, max_tokens)
        usable = MID_STREAM_FAULTS | OPENAI_MID_STREAM_FAULTS
        fault = fault if fault and fault.mode in usable else None
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return await stream_reply(request, state, slot, generation, params["stop"], fault, include_usage)
        return await single_reply(request, state, slot, generation, params["stop"], fault)
    finally:
        slot.release()


async def models(request: web.Request) -> web.Response:
    if _key_refused(request):
        return _unauthorized(request)
    model_id = request.app[STATE].config.model_id
    return web.json_response({"object": "list", "data": [
        {"id": model_id, "object": "model", "created": 0, "owned_by": "devserver"}]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
