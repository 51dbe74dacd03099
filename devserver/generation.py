"""What a request gets: TGI's parameter checks, then the tokens of the reply and why it ends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from devserver import judging, text
from devserver.config import DevServerConfig
from devserver.faults import wants_echo, without_markers

# TGI's default when the request has no max_new_tokens: what fits, but at most this many.
_DEFAULT_GENERATION_LENGTH = 1024


class InvalidRequest(Exception):
    """A request TGI would refuse as `validation` (HTTP 422, or an error event when streaming)."""


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
    judged = judging.answers_judged(text.last_user_message(without_markers(inputs)))
    if wants_echo(inputs):
        reply = text.tokenize(text.last_user_message(without_markers(inputs)))
    elif judged is not None:  # a pairwise judge prompt: a verdict from the answers' content
        reply = text.tokenize(judging.judgement_text(*judged))
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
