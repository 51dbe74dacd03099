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


def test_add_model_registers_an_openai_protocol_model_with_its_key_by_reference(
    monkeypatch, django_capture_on_commit_callbacks
):
    from arena import queue

    queued = []
    monkeypatch.setattr(queue, "models_probe_queue", lambda **kw: queued.append(kw["model_ids"]))
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "add_model", "llama-3-70b", "http://gpu-host:8000/v1", "--protocol", "openai",
            "--served-model", "meta-llama/Meta-Llama-3-70B-Instruct", "--api-key-env", "VLLM_API_KEY",
            "--header", "OpenAI-Organization=env:OPENAI_ORG", "--max-concurrent", "8",
            "--param", "max_new_tokens=512",
        )
    model = ChatModel.objects.get(name="llama-3-70b")
    assert (model.protocol, model.endpoint_url, model.served_model) == (
        "openai", "http://gpu-host:8000/v1", "meta-llama/Meta-Llama-3-70B-Instruct")
    assert (model.api_key_env, model.api_key_file, model.extra_headers) == (
        "VLLM_API_KEY", "", {"OpenAI-Organization": "env:OPENAI_ORG"})
    assert model.max_concurrent == 8 and model.concurrency_limit == 8 and not model.healthy
    assert queued == [[model.id]]

    # Another served model is another server to probe; the same command again is not.
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        for served in ("other-model", "other-model"):
            call_command("add_model", "llama-3-70b", "http://gpu-host:8000/v1", "--protocol", "openai",
                         "--served-model", served)
    assert queued == [[model.id]]


def test_a_tgi_model_still_needs_its_template_and_the_default_protocol_is_tgi():
    with pytest.raises(CommandError, match="--template is required"):
        call_command("add_model", "m", "http://tgi:80")
    call_command("add_model", "m", "http://tgi:80", "--template", "zephyr")
    assert ChatModel.objects.get().protocol == "tgi"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--api-key-env", "sk-live-abc123"], "not an environment variable name"),
        (["--api-key-env", "KEY", "--api-key-file", "/run/secrets/key"], "not both"),
        (["--api-key-file", "secrets/key"], "must be absolute"),
        (["--header", "X-Org=org-1234"], "by reference only"),
        (["--header", "Authorization=env:TOKEN"], "Authorization is set from the API key"),
        (["--param", "do_sample=true"], "not a parameter of the OpenAI protocol"),
        (["--param", "temperature=3"], "temperature must be a number from 0 to 2"),
        (["--max-concurrent", "0"], "at least 1"),
    ],
)
def test_openai_settings_are_checked_before_anything_is_saved(extra, message):
    with pytest.raises(CommandError, match=message):
        call_command("add_model", "m", "http://gpu-host:8000/v1", "--protocol", "openai", *extra)
    assert not ChatModel.objects.exists()
