"""`manage.py add_model`: registering a model from the command line."""


import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from arena.models import ChatModel

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
