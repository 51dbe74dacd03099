"""The wire protocols a model can be served over, and what each means: backend, probe, parameters.

`tgi`: text-generation-inference's `/generate_stream`, prompts rendered here with the model's chat
template. `openai`: OpenAI's `/v1/chat/completions` (vLLM, SGLang, TGI's Messages API, Ollama,
hosted APIs), messages sent as they are and templated by the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from inference.backends import Backend, ProbeResult
from inference.chat_templates import PRESETS
from inference.openai_chat import OpenAIChatBackend, openai_probe
from inference.parameters import openai_parameters_problems, parameters_problems
from inference.tgi import TgiBackend, server_probe


class Protocol(StrEnum):
    TGI = "tgi"
    OPENAI = "openai"

    @property
    def label(self) -> str:
        return {"tgi": "TGI (/generate_stream)", "openai": "OpenAI-compatible (/v1/chat/completions)"}[self.value]

    @property
    def needs_template(self) -> bool:
        """Only TGI's native route takes a rendered prompt; OpenAI-compatible servers template themselves."""
        return self is Protocol.TGI


_BACKENDS: dict[Protocol, Backend] = {Protocol.TGI: TgiBackend(), Protocol.OPENAI: OpenAIChatBackend()}


def backend_for(protocol: str) -> Backend:
    return _BACKENDS[Protocol(protocol)]


@dataclass(frozen=True)
class ProbeTarget:
    protocol: str
    url: str
    served_model: str = ""
    api_key: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


async def target_probe(target: ProbeTarget, timeout: float = 5.0) -> ProbeResult:
    if Protocol(target.protocol) is Protocol.OPENAI:
        return await openai_probe(
            target.url, target.served_model, api_key=target.api_key, headers=target.headers, timeout=timeout
        )
    return await server_probe(target.url, timeout)


async def targets_probe(targets: list[ProbeTarget], timeout: float = 5.0) -> list[ProbeResult]:
    """`target_probe` for several servers at once, in the given order."""
    return list(await asyncio.gather(*(target_probe(t, timeout) for t in targets)))


def model_parameters_problems(
    protocol: str, parameters: object, *, template: str, server_info: dict[str, Any] | None = None
) -> list[str]:
    """Why a model's parameters would be refused by its server, one sentence each."""
    if Protocol(protocol) is Protocol.OPENAI:
        return openai_parameters_problems(parameters, server_info=server_info)
    preset = PRESETS.get(template)
    return parameters_problems(parameters, template_stops=preset.stop if preset else (), server_info=server_info)


def concurrency_from_info(protocol: str, info: Mapping[str, Any]) -> int | None:
    """How many requests the server says it takes at once (TGI's /info), if it says."""
    value = info.get("max_concurrent_requests") if Protocol(protocol) is Protocol.TGI else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
