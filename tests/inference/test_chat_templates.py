import pytest

from inference.chat_templates import PRESETS, parameters_effective, prompt_render

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
]


def test_it_renders_zephyr_as_on_the_model_card():
    assert prompt_render("zephyr", CONVERSATION) == (
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
        "<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n"
    )


def test_it_renders_mistral_instruct_folding_the_system_prompt_into_the_first_user_turn():
    assert prompt_render("mistral-instruct", CONVERSATION) == (
        "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s> [INST] What is 2+2? [/INST]"
    )


def test_it_renders_mistral_instruct_without_system():
    expected = "<s>[INST] Hi [/INST]Hello!</s> [INST] What is 2+2? [/INST]"
    assert prompt_render("mistral-instruct", CONVERSATION[1:]) == expected


def test_it_renders_llama2_chat_with_sys_block():
    assert prompt_render("llama-2-chat", CONVERSATION) == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] What is 2+2? [/INST]"
    )


def test_it_renders_chatml():
    assert prompt_render("chatml", CONVERSATION[1:]) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_it_rejects_unknown_templates_and_conversations_not_ending_with_the_user():
    with pytest.raises(ValueError, match="Unknown chat template"):
        prompt_render("nope", CONVERSATION)
    with pytest.raises(ValueError, match="end with a user message"):
        prompt_render("zephyr", CONVERSATION[:3])


def test_zephyr_defaults_are_the_model_cards():
    params = parameters_effective("zephyr", {})
    assert params["temperature"] == 0.7 and params["top_k"] == 50 and params["top_p"] == 0.95
    assert params["max_new_tokens"] == 256
    assert "</s>" in params["stop"]


def test_overrides_win_and_stop_lists_merge():
    params = parameters_effective("chatml", {"temperature": 0.2, "stop": ["###"]})
    assert params["temperature"] == 0.2
    assert params["stop"] == [*PRESETS["chatml"].stop, "###"]
