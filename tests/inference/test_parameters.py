"""A model's parameters, checked per protocol, and renamed for the OpenAI protocol's requests."""

import pytest

from inference.openai_chat import request_options
from inference.protocols import model_parameters_problems


def test_tgi_parameters_are_checked_against_the_template_and_the_servers_limits():
    problems = model_parameters_problems(
        "tgi", {"max_new_tokens": 5000, "stop": ["a", "b", "c"]}, template="zephyr",
        server_info={"max_total_tokens": 4096, "max_stop_sequences": 4},
    )
    assert any("max_total_tokens (4096)" in p for p in problems)
    assert any("at most 2 can be added" in p for p in problems)  # zephyr's template already has two


@pytest.mark.parametrize(
    "parameters, problem",
    [
        ({"do_sample": True}, "“do_sample” is not a parameter of the OpenAI protocol (TGI's only)"),
        ({"best_of": 2}, "“best_of” is not a parameter of the OpenAI protocol; allowed:"),
        ({"temperature": 2.5}, "temperature must be a number from 0 to 2 (got 2.5)."),
        ({"top_p": 0}, "top_p must be a number > 0 and <= 1"),
        ({"presence_penalty": -3}, "presence_penalty must be a number from -2 to 2"),
        ({"stop": ["1", "2", "3", "4", "5"]}, "at most 4 stop sequences"),
    ],
)
def test_openai_parameters_are_refused_with_a_reason(parameters, problem):
    problems = model_parameters_problems("openai", parameters, template="")
    assert any(problem in p for p in problems), problems


def test_openai_parameters_that_fit_pass_and_the_context_length_bounds_the_reply():
    fine = {"temperature": 0, "top_p": 1, "max_new_tokens": 512, "seed": 7, "top_k": 40, "stop": ["###"]}
    assert model_parameters_problems("openai", fine, template="") == []
    problems = model_parameters_problems("openai", {"max_new_tokens": 8192}, template="",
                                         server_info={"max_model_len": 8192})
    assert problems and "context length (8192)" in problems[0]


def test_the_arenas_names_become_the_apis_and_vllms_extras_go_in_the_body():
    options = request_options({"max_new_tokens": 64, "temperature": 0.2, "stop": ["###"], "top_k": 40,
                               "repetition_penalty": 1.1})
    assert options == {"max_tokens": 64, "temperature": 0.2, "stop": ["###"],
                       "extra_body": {"top_k": 40, "repetition_penalty": 1.1}}
    assert request_options({}) == {"max_tokens": 256}  # the templates' reply length, on every protocol
