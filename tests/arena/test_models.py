"""The model registry's checks when a model is saved (ChatModel.clean)."""


import pytest
from django.core.exceptions import ValidationError

from arena.models import ChatModel

pytestmark = pytest.mark.django_db


def model_with(parameters, **fields) -> ChatModel:
    return ChatModel(name="m", endpoint_url="http://tgi:80", template="zephyr", parameters=parameters, **fields)


def parameter_errors(model: ChatModel) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        model.full_clean()
    return exc.value.message_dict["parameters"]


def test_unknown_and_out_of_range_parameters_are_refused_one_message_each():
    errors = parameter_errors(model_with({"temperature": -1, "bogus": 3}))
    assert len(errors) == 2
    assert "temperature must be a number > 0 (got -1)." in errors
    unknown = next(e for e in errors if "bogus" in e)
    assert "“bogus” is not a generation parameter; allowed:" in unknown
    assert "temperature" in unknown and "max_new_tokens" in unknown and "stop" in unknown


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"temperature": 0}, "temperature must be a number > 0 (got 0)."),
        ({"temperature": True}, "temperature must be a number > 0 (got true)."),
        ({"temperature": "0.7"}, 'temperature must be a number > 0 (got "0.7").'),
        ({"top_p": 1.0}, "top_p must be a number > 0 and < 1 (got 1.0)."),
        ({"typical_p": 0}, "typical_p must be a number > 0 and < 1 (got 0)."),
        ({"top_k": 0}, "top_k must be a whole number > 0 (got 0)."),
        ({"max_new_tokens": 12.5}, "max_new_tokens must be a whole number > 0 (got 12.5)."),
        ({"max_new_tokens": -5}, "max_new_tokens must be a whole number > 0 (got -5)."),
        ({"truncate": 0}, "truncate must be a whole number > 0 (got 0)."),
        ({"repetition_penalty": 0}, "repetition_penalty must be a number > 0 (got 0)."),
        ({"frequency_penalty": 2.5}, "frequency_penalty must be a number > 0 and <= 2 (got 2.5)."),
        ({"seed": -1}, "seed must be a whole number >= 0 (got -1)."),
        ({"do_sample": "yes"}, 'do_sample must be true or false (got "yes").'),
        ({"stop": "###"}, 'stop must be a list of non-empty strings, e.g. ["###"] (got "###").'),
        ({"stop": ["###", ""]}, 'stop must be a list of non-empty strings'),
        # zephyr's template sends 2 stop sequences of its own; TGI accepts 4 by default.
        ({"stop": ["a", "b", "c"]},
         "stop: the server accepts at most 4 stop sequences and the chat template already uses 2"),
        ([1, 2], "Parameters must be a JSON object"),
    ],
)
def test_each_bad_parameter_is_named_with_what_it_must_be(parameters, message):
    errors = parameter_errors(model_with(parameters))
    assert any(message in e for e in errors), errors


def test_the_server_s_own_limits_apply_once_known():
    info = {"max_total_tokens": 4096, "max_input_tokens": 3072, "max_stop_sequences": 6}
    errors = parameter_errors(model_with({"max_new_tokens": 4096, "truncate": 4000}, server_info=info))
    assert (
        "max_new_tokens must be less than the server's max_total_tokens (4096), "
        "which also counts the prompt (got 4096)." in errors
    )
    assert "truncate must be at most the server's max_input_tokens (3072) (got 4000)." in errors
    # A server allowing 6 stop sequences takes 4 more than zephyr's 2.
    model_with({"stop": ["a", "b", "c", "d"], "max_new_tokens": 1024}, server_info=info).full_clean()


def test_every_allowed_parameter_is_one_the_client_sends_and_good_values_pass():
    import inspect

    from text_generation import AsyncClient
    from text_generation.types import Parameters

    from inference.parameters import CLIENT_KEYWORDS, PARAMETERS

    accepted = set(inspect.signature(AsyncClient.generate_stream).parameters)
    assert accepted >= CLIENT_KEYWORDS and "stop_sequences" in accepted
    assert set(PARAMETERS) - CLIENT_KEYWORDS == {"stop"}
    good = {
        "do_sample": True, "frequency_penalty": 0.5, "max_new_tokens": 512, "repetition_penalty": 1.1,
        "return_full_text": False, "seed": 42, "temperature": 0.7, "top_k": 50, "top_n_tokens": 2, "top_p": 0.95,
        "truncate": 1000, "typical_p": 0.9, "watermark": False, "stop": ["###"],
    }
    model_with(good).full_clean()
    Parameters(**{k: v for k, v in good.items() if k != "stop"}, stop=good["stop"])  # the client's own checks agree
