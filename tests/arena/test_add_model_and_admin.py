import html

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from arena.live import model_failures_key
from arena.models import ChatModel
from devserver import DevServerConfig, serve_in_thread
from tests.helpers import free_port

pytestmark = pytest.mark.django_db


def test_add_model_creates_then_updates_by_name():
    call_command("add_model", "zephyr-7b-beta", "http://tgi:80", "--template", "zephyr", "--weight", "2",
                 "--param", "temperature=0.5", "--param", 'stop=["###"]', "--param", "do_sample=false")
    model = ChatModel.objects.get(name="zephyr-7b-beta")
    assert (model.endpoint_url, model.template, model.weight) == ("http://tgi:80", "zephyr", 2.0)
    assert model.parameters == {"temperature": 0.5, "stop": ["###"], "do_sample": False}
    call_command("add_model", "zephyr-7b-beta", "http://other:80", "--template", "chatml")
    assert ChatModel.objects.get().endpoint_url == "http://other:80"
    call_command("add_model", "zephyr-7b-beta", "http://third:80", "--template", "chatml", "--keep-existing")
    assert ChatModel.objects.get().endpoint_url == "http://other:80"


@pytest.mark.parametrize(
    "args, message",
    [
        (["m", "not a url", "--template", "zephyr"], "endpoint_url"),
        (["m", "http://x", "--template", "zephyr", "--weight", "-1"], "weight"),
        (["m", "http://x", "--template", "zephyr", "--param", "oops"], "key=value"),
    ],
)
def test_add_model_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("add_model", *args)
    assert not ChatModel.objects.exists()


def test_add_model_rejects_an_unknown_template():
    with pytest.raises(CommandError):
        call_command("add_model", "m", "http://x", "--template", "gpt")


def test_the_probe_action_shows_model_id_limits_and_health(client):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    with serve_in_thread(DevServerConfig(model_id="HuggingFaceH4/zephyr-7b-beta", time_to_first_token=0)) as url:
        up = ChatModel.objects.create(name="up", endpoint_url=url, template="zephyr")
        down = ChatModel.objects.create(name="down", endpoint_url=f"http://127.0.0.1:{free_port()}", template="zephyr")
        response = client.post(
            "/admin/arena/chatmodel/",
            {"action": "probe", "_selected_action": [up.id, down.id]},
            follow=True,
        )
    text = response.content.decode()
    # Model names keep their case (the admin capitalises each message's first letter).
    assert "“up” is healthy — model HuggingFaceH4/zephyr-7b-beta" in text
    assert "max total tokens 4096" in text
    assert "“down” is unhealthy" in text
    up.refresh_from_db(), down.refresh_from_db()
    assert up.healthy and up.server_info["model_id"] == "HuggingFaceH4/zephyr-7b-beta"
    assert not down.healthy and down.last_error


def test_model_changes_apply_to_the_next_battle_without_restart(chat_models, alice):
    from arena import services

    ChatModel.objects.filter(name="zephyr-7b-beta").update(enabled=False)
    with pytest.raises(Exception, match="Not enough models"):
        services.battle_start(client=alice, text="hi")
    ChatModel.objects.filter(name="zephyr-7b-beta").update(enabled=True)
    assert services.battle_start(client=alice, text="hi").battle_id


# --- generation parameters are checked when a model is saved ----------------------------------


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


def test_the_admin_shows_each_bad_parameter_on_the_field_and_saves_nothing(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post("/admin/arena/chatmodel/add/", {
        "name": "m", "endpoint_url": "http://tgi:80", "template": "zephyr", "system_prompt": "",
        "parameters": '{"temperature": -1, "bogus": 3}', "weight": "1", "enabled": "on", "timeout_seconds": "180",
    })
    assert response.status_code == 200  # the form again, with its errors
    html = response.content.decode()
    assert "temperature must be a number &gt; 0 (got -1)." in html
    assert "“bogus” is not a generation parameter; allowed: do_sample," in html
    assert not ChatModel.objects.exists()


@pytest.mark.parametrize(
    "param, message",
    [
        ("temperature=-1", "parameters: temperature must be a number > 0 (got -1)."),
        ("bogus=3", "parameters: “bogus” is not a generation parameter; allowed: do_sample,"),
        ("top_p=1", "parameters: top_p must be a number > 0 and < 1 (got 1)."),
    ],
)
def test_add_model_checks_parameters_as_the_admin_does(param, message):
    with pytest.raises(CommandError) as exc:
        call_command("add_model", "m", "http://tgi:80", "--template", "zephyr", "--param", param)
    assert message in str(exc.value)
    assert not ChatModel.objects.exists()


# --- a new model is probed as it is saved, and drawn only once its server answers -------------


@pytest.fixture
def probes_run_here(monkeypatch):
    """`models_probe.delay()` runs the probe in this process (no retries); returns the calls."""
    from arena import queue, tasks

    calls = []

    def delay(**kwargs):
        calls.append(kwargs)
        tasks.models_probe(model_ids=kwargs["model_ids"])

    monkeypatch.setattr(queue, "models_probe_queue", delay)
    return calls


def test_a_model_added_in_the_admin_is_out_of_the_draw_until_its_probe_succeeds(
    client, chat_models, probes_run_here, django_capture_on_commit_callbacks
):
    from arena.selectors import models_drawable

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    form = {"template": "zephyr", "system_prompt": "", "parameters": "{}", "weight": "1", "enabled": "on",
            "timeout_seconds": "180"}
    with serve_in_thread(DevServerConfig(model_id="new-model", time_to_first_token=0)) as url:
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(
                "/admin/arena/chatmodel/add/", {**form, "name": "new-model", "endpoint_url": url}, follow=True
            )
        model = ChatModel.objects.get(name="new-model")
        assert not model.healthy and "Not probed yet" in model.last_error  # saved, not yet drawn
        assert model not in models_drawable()
        assert "“new-model” joins battles once its server" in response.content.decode()
        for callback in callbacks:
            callback()
        assert probes_run_here == [{"model_ids": [model.id], "retries": 5}]
        model.refresh_from_db()
        assert model.healthy and model.server_info["model_id"] == "new-model" and model.health_checked_at
        assert model in models_drawable()

    dead = f"http://127.0.0.1:{free_port()}"
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/arena/chatmodel/add/", {**form, "name": "dead-model", "endpoint_url": dead})
    model = ChatModel.objects.get(name="dead-model")
    assert not model.healthy and model.health_checked_at and "Connect" in model.last_error
    assert model not in models_drawable()

    # Pointing a model at another server takes it out until that one answers; other edits don't.
    zephyr = chat_models[0]
    change = {**form, "name": zephyr.name, "template": zephyr.template, "timeout_seconds": "20"}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/admin/arena/chatmodel/{zephyr.id}/change/",
            {**change, "endpoint_url": zephyr.endpoint_url, "weight": "2"},
        )
    zephyr.refresh_from_db()
    assert zephyr.healthy and zephyr.weight == 2 and len(probes_run_here) == 2
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/arena/chatmodel/{zephyr.id}/change/", {**change, "endpoint_url": dead})
    zephyr.refresh_from_db()
    assert not zephyr.healthy and zephyr.endpoint_url == dead and len(probes_run_here) == 3


def test_add_model_queues_a_probe_for_a_new_server_only(django_capture_on_commit_callbacks, probes_run_here):
    with django_capture_on_commit_callbacks() as callbacks:
        call_command("add_model", "m", "http://127.0.0.1:9/", "--template", "zephyr")
    assert len(callbacks) == 1 and not ChatModel.objects.get().healthy
    ChatModel.objects.update(healthy=True, last_error="")
    for args in (["http://127.0.0.1:9/", "--weight", "3"], ["http://127.0.0.1:8/", "--keep-existing"]):
        with django_capture_on_commit_callbacks() as callbacks:
            call_command("add_model", "m", *args, "--template", "zephyr")
        assert callbacks == [] and ChatModel.objects.get().healthy  # same server, or left alone
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("add_model", "m", "http://127.0.0.1:8/", "--template", "zephyr")
    model = ChatModel.objects.get()
    assert len(callbacks) == 1 and not model.healthy and model.health_checked_at  # probed: nothing there


def test_a_first_probe_that_fails_is_retried_a_few_times(monkeypatch):
    from arena import queue, tasks
    from arena.services.registry import NEW_MODEL_PROBE_INTERVAL_SECONDS

    later = []
    monkeypatch.setattr(queue, "models_probe_queue", lambda **kw: later.append(kw))
    with serve_in_thread(DevServerConfig(model_id="up", time_to_first_token=0)) as url:
        up = ChatModel.objects.create(name="up", endpoint_url=url, template="zephyr", healthy=False)
        down = ChatModel.objects.create(name="down", endpoint_url=f"http://127.0.0.1:{free_port()}", template="zephyr")
        assert tasks.models_probe(model_ids=[up.id, down.id], retries=2) == 1
    assert later == [{"model_ids": [down.id], "retries": 1, "countdown": NEW_MODEL_PROBE_INTERVAL_SECONDS}]
    assert tasks.models_probe(model_ids=[down.id], retries=0) == 0 and len(later) == 1  # the last try


def test_a_probe_of_a_model_s_old_server_is_not_recorded(chat_models):
    from arena import services

    model = chat_models[0]
    services.model_health_record(model_id=model.id, healthy=False, error="old", endpoint_url="http://old:80")
    model.refresh_from_db()
    assert model.healthy and model.last_error == ""
    services.model_health_record(model_id=model.id, healthy=False, error="down", endpoint_url=model.endpoint_url)
    model.refresh_from_db()
    assert not model.healthy and model.last_error == "down"


def test_parameters_that_don_t_fit_the_server_keep_a_model_out_once_probed(client, monkeypatch):
    """The admin can't know the server's limits before the first /info; the probe checks them."""
    from arena import queue, tasks
    from arena.selectors import models_drawable

    later = []
    monkeypatch.setattr(queue, "models_probe_queue", lambda **kw: later.append(kw))
    with serve_in_thread(DevServerConfig(model_id="big", time_to_first_token=0)) as url:  # max_total_tokens 4096
        model = ChatModel.objects.create(
            name="big", endpoint_url=url, template="zephyr", parameters={"max_new_tokens": 5000}
        )
        model.full_clean()  # nothing known about the server yet: accepted
        assert tasks.models_probe(model_ids=[model.id], retries=3) == 0
        assert later == []  # the server answered: asking again wouldn't help
        model.refresh_from_db()
        assert not model.healthy and model not in models_drawable()
        assert "parameters don't fit this server" in model.last_error and "max_total_tokens (4096)" in model.last_error

        client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
        text = html.unescape(client.post(
            "/admin/arena/chatmodel/", {"action": "probe", "_selected_action": [model.id]}, follow=True
        ).content.decode())
        assert "“big” is unhealthy — Its parameters don't fit this server" in text

        ChatModel.objects.filter(id=model.id).update(parameters={"max_new_tokens": 512})
        assert tasks.models_probe(model_ids=[model.id]) == 1
    model.refresh_from_db()
    assert model.healthy and model.last_error == ""


def test_the_probe_action_reports_what_was_stored_not_the_raw_answer(client, chat_models):
    from arena.live import live_redis

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    model = chat_models[0]
    live_redis().set(model_failures_key(model.id), 5, ex=60)  # its generations kept failing
    answer = client.post("/admin/arena/chatmodel/", {"action": "probe", "_selected_action": [model.id]}, follow=True)
    text = answer.content.decode()
    model.refresh_from_db()
    assert not model.healthy
    assert f"“{model.name}” is unhealthy — /health is fine but 5 generations failed recently" in text
    assert "is healthy" not in text
