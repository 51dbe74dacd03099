"""How these tests talk to a dev server: a fast config, and streams read with the real client."""

from __future__ import annotations

import requests
from text_generation import AsyncClient, Client

from devserver import DevServerConfig

ZEPHYR_PROMPT = (
    "<|system|>\nYou are a helpful assistant.</s>\n"
    "<|user|>\nHow do I repot orchids without hurting the roots?</s>\n<|assistant|>\n"
)
CLIENT_TIMEOUT = 5


def fast_config(**overrides) -> DevServerConfig:
    options = {"model_id": "zephyr-7b-beta", "time_to_first_token": 0, "tokens_per_second": 0}
    return DevServerConfig(**(options | overrides))


def stream_sync(base_url: str, prompt: str = ZEPHYR_PROMPT, **kwargs) -> list:
    kwargs.setdefault("max_new_tokens", 256)
    return list(Client(base_url, timeout=CLIENT_TIMEOUT).generate_stream(prompt, **kwargs))


async def stream_async(base_url: str, prompt: str = ZEPHYR_PROMPT, timeout=CLIENT_TIMEOUT, **kwargs) -> list:
    kwargs.setdefault("max_new_tokens", 256)
    return [r async for r in AsyncClient(base_url, timeout=timeout).generate_stream(prompt, **kwargs)]


def visible_text(events) -> str:
    return "".join(e.token.text for e in events if not e.token.special)


def set_fault(base_url: str, **body) -> dict:
    answer = requests.post(f"{base_url}/__devserver__/fault", json=body, timeout=CLIENT_TIMEOUT)
    answer.raise_for_status()
    return answer.json()
