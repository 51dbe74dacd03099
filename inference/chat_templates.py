"""Chat-template presets: turn a conversation into the exact prompt string a model was tuned on.

TGI's `/generate_stream` takes raw text, so the prompt is built here (the client's streaming chat
call is unusable against current TGI). Each preset also names the stop sequences that end an
assistant turn and the model card's recommended sampling parameters.
"""

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class TemplatePreset:
    key: str
    label: str
    stop: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    supports_system: bool = True


def _zephyr(messages: list[ChatMessage]) -> str:
    parts = [f"<|{m['role']}|>\n{m['content']}</s>\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"


def _mistral_instruct(messages: list[ChatMessage]) -> str:
    # No system role: a system message is folded into the first user message.
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    out = "<s>"
    first_user = True
    for m in messages:
        if m["role"] == "user":
            content = f"{system}\n\n{m['content']}" if first_user and system else m["content"]
            first_user = False
            out += f"[INST] {content} [/INST]"
        elif m["role"] == "assistant":
            out += f"{m['content']}</s> "
    return out


def _llama2_chat(messages: list[ChatMessage]) -> str:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    out = ""
    first_user = True
    for m in messages:
        if m["role"] == "user":
            content = m["content"]
            if first_user and system:
                content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
            first_user = False
            out += f"<s>[INST] {content} [/INST]"
        elif m["role"] == "assistant":
            out += f" {m['content']} </s>"
    return out


def _chatml(messages: list[ChatMessage]) -> str:
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


_RENDERERS = {
    "zephyr": _zephyr,
    "mistral-instruct": _mistral_instruct,
    "llama-2-chat": _llama2_chat,
    "chatml": _chatml,
}

PRESETS: dict[str, TemplatePreset] = {
    "zephyr": TemplatePreset(
        "zephyr",
        "Zephyr",
        stop=("</s>", "<|user|>"),
        # Zephyr-7B-beta model card.
        defaults={"temperature": 0.7, "top_k": 50, "top_p": 0.95, "max_new_tokens": 256, "do_sample": True},
    ),
    "mistral-instruct": TemplatePreset(
        "mistral-instruct",
        "Mistral Instruct",
        stop=("</s>", "[INST]"),
        defaults={"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 256, "do_sample": True},
        supports_system=False,
    ),
    "llama-2-chat": TemplatePreset(
        "llama-2-chat",
        "Llama 2 chat",
        stop=("</s>", "[INST]"),
        defaults={"temperature": 0.6, "top_p": 0.9, "max_new_tokens": 256, "do_sample": True},
    ),
    "chatml": TemplatePreset(
        "chatml",
        "ChatML",
        stop=("<|im_end|>", "<|im_start|>"),
        defaults={"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 256, "do_sample": True},
    ),
}

TEMPLATE_CHOICES = [(p.key, p.label) for p in PRESETS.values()]


def prompt_render(template: str, messages: list[ChatMessage]) -> str:
    """The prompt string for `messages` (system?, user, assistant, ..., user) under `template`."""
    try:
        renderer = _RENDERERS[template]
    except KeyError:
        raise ValueError(f"Unknown chat template {template!r}; choose one of {sorted(_RENDERERS)}") from None
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("A conversation to answer must end with a user message")
    return renderer(messages)


def parameters_effective(template: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The template's default parameters with a model's overrides applied; stop lists are merged."""
    preset = PRESETS[template]
    params = {**preset.defaults, **overrides}
    stop = list(dict.fromkeys([*preset.stop, *overrides.get("stop", [])]))
    params["stop"] = stop
    return params
