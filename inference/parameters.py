"""The generation parameters a model may set, and their checks, per protocol.

`TgiBackend` passes these to the text_generation client's `generate_stream()` (`stop` goes as
`stop_sequences`, merged with the chat template's own). Each is checked as the client's
`Parameters` validators and TGI's router check it, so a bad value is refused when the model is
saved (admin, `add_model`, `models_sync`) instead of failing every generation afterwards.

On the OpenAI protocol the same names are used (so a model keeps its settings whichever way it is
served) and `OpenAIChatBackend` renames them to the API's (`max_new_tokens` -> `max_tokens`);
parameters only TGI has are refused there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeGuard

# TGI's launcher default for --max-stop-sequences; /info reports the server's own value.
TGI_DEFAULT_MAX_STOP_SEQUENCES = 4
_U64_MAX = 2**64 - 1


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def _positive_int(value: object) -> TypeGuard[int]:
    return _is_int(value) and value > 0


def _stop_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(s, str) and s for s in value)


def _positive_number(value: object) -> bool:
    return _is_number(value) and value > 0


def _open_unit(value: object) -> bool:
    return _is_number(value) and 0 < value < 1


# name -> (what a valid value is, its check). The client refuses `frequency_penalty` <= 0 and TGI
# refuses it outside [-2, 2], so together (0, 2].
PARAMETERS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "do_sample": ("true or false", _is_bool),
    "frequency_penalty": ("a number > 0 and <= 2", lambda v: _is_number(v) and 0 < v <= 2),
    "max_new_tokens": ("a whole number > 0", _positive_int),
    "repetition_penalty": ("a number > 0", _positive_number),
    "return_full_text": ("true or false", _is_bool),
    "seed": ("a whole number >= 0", lambda v: _is_int(v) and 0 <= v <= _U64_MAX),
    "stop": ('a list of non-empty strings, e.g. ["###"]', _stop_list),
    "temperature": ("a number > 0", _positive_number),
    "top_k": ("a whole number > 0", _positive_int),
    "top_n_tokens": ("a whole number > 0", _positive_int),
    "top_p": ("a number > 0 and < 1", _open_unit),
    "truncate": ("a whole number > 0", _positive_int),
    "typical_p": ("a number > 0 and < 1", _open_unit),
    "watermark": ("true or false", _is_bool),
}

# What `generate_stream()` takes as keyword arguments (stop sequences are passed separately).
CLIENT_KEYWORDS = frozenset(PARAMETERS) - {"stop"}

# OpenAI protocol: arena name -> the request's field; OpenAI's own ranges (temperature up to 2,
# penalties in [-2, 2], at most 4 stop sequences).
OPENAI_REQUEST_NAMES = {
    "max_new_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "stop": "stop",
    "seed": "seed", "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty",
}
# Not in OpenAI's API but read from the body by vLLM, SGLang and TGI's Messages API.
OPENAI_EXTRA_BODY = frozenset({"top_k", "repetition_penalty"})
OPENAI_MAX_STOP_SEQUENCES = 4
# The templates' reply length (inference.chat_templates), so replies are cut alike on either protocol.
OPENAI_DEFAULTS: dict[str, Any] = {"max_new_tokens": 256}


def _penalty(value: object) -> bool:
    return _is_number(value) and -2 <= value <= 2


OPENAI_PARAMETERS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "frequency_penalty": ("a number from -2 to 2", _penalty),
    "max_new_tokens": PARAMETERS["max_new_tokens"],
    "presence_penalty": ("a number from -2 to 2", _penalty),
    "repetition_penalty": PARAMETERS["repetition_penalty"],
    "seed": PARAMETERS["seed"],
    "stop": PARAMETERS["stop"],
    "temperature": ("a number from 0 to 2", lambda v: _is_number(v) and 0 <= v <= 2),
    "top_k": PARAMETERS["top_k"],
    "top_p": ("a number > 0 and <= 1", lambda v: _is_number(v) and 0 < v <= 1),
}


def openai_parameters_problems(parameters: object, *, server_info: dict[str, Any] | None = None) -> list[str]:
    """`parameters_problems` for a model served over the OpenAI protocol. `server_info`: its
    `/v1/models` entry, whose `max_model_len` (vLLM) bounds `max_new_tokens`."""
    if not isinstance(parameters, dict):
        return [_NOT_AN_OBJECT]

    def unknown(name: str) -> str:
        only_tgi = " (TGI's only)" if name in PARAMETERS else ""
        return f"“{name}” is not a parameter of the OpenAI protocol{only_tgi}; allowed: {', '.join(OPENAI_PARAMETERS)}."

    problems = _value_problems(parameters, OPENAI_PARAMETERS, unknown)
    stop = parameters.get("stop")
    if isinstance(stop, list) and len(stop) > OPENAI_MAX_STOP_SEQUENCES:
        problems.append(
            f"stop: the OpenAI protocol takes at most {OPENAI_MAX_STOP_SEQUENCES} stop sequences (got {len(stop)})."
        )
    context = (server_info or {}).get("max_model_len")
    max_new = parameters.get("max_new_tokens")
    if _positive_int(max_new) and _is_int(context) and max_new >= context:
        problems.append(
            f"max_new_tokens must be less than the server's context length ({context}), which also counts the prompt "
            f"(got {max_new})."
        )
    return problems


def parameters_problems(
    parameters: object, *, template_stops: tuple[str, ...] = (), server_info: dict[str, Any] | None = None
) -> list[str]:
    """Why `parameters` would be refused, one sentence per parameter; empty if they are fine.

    `template_stops`: the chat template's stop sequences, sent along with `stop`.
    `server_info`: the server's last /info answer, if known: its token and stop-sequence limits.
    """
    if not isinstance(parameters, dict):
        return [_NOT_AN_OBJECT]
    info = server_info if isinstance(server_info, dict) else {}
    allowed = ", ".join(PARAMETERS)
    problems = _value_problems(
        parameters, PARAMETERS, lambda name: f"“{name}” is not a generation parameter; allowed: {allowed}."
    )
    stop = parameters.get("stop")
    if isinstance(stop, list) and PARAMETERS["stop"][1](stop):
        limit = info.get("max_stop_sequences") or TGI_DEFAULT_MAX_STOP_SEQUENCES
        total = len(dict.fromkeys([*template_stops, *stop]))
        if total > limit:
            problems.append(
                f"stop: the server accepts at most {limit} stop sequences and the chat template already "
                f"uses {len(template_stops)}, so at most {max(limit - len(template_stops), 0)} can be added "
                f"(got {len(stop)})."
            )
    total_tokens, input_tokens = info.get("max_total_tokens"), info.get("max_input_tokens")
    max_new = parameters.get("max_new_tokens")
    if _positive_int(max_new) and _is_int(total_tokens) and max_new >= total_tokens:
        problems.append(
            f"max_new_tokens must be less than the server's max_total_tokens ({total_tokens}), "
            f"which also counts the prompt (got {max_new})."
        )
    truncate = parameters.get("truncate")
    if _positive_int(truncate) and _is_int(input_tokens) and truncate > input_tokens:
        problems.append(f"truncate must be at most the server's max_input_tokens ({input_tokens}) (got {truncate}).")
    return problems


_NOT_AN_OBJECT = 'Parameters must be a JSON object, e.g. {"temperature": 0.7, "max_new_tokens": 512}.'


def _value_problems(
    parameters: dict[str, Any], table: dict[str, tuple[str, Callable[[object], bool]]], unknown: Callable[[str], str]
) -> list[str]:
    """A sentence for each parameter the table doesn't know (`unknown(name)`) or whose value fails its check."""
    problems: list[str] = []
    for name, value in parameters.items():
        if name not in table:
            problems.append(unknown(name))
            continue
        expected, check = table[name]
        if not check(value):
            problems.append(f"{name} must be {expected} (got {_shown(value)}).")
    return problems


def _shown(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
