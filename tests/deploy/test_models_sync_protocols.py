"""models_sync entries for OpenAI-compatible servers: protocol, served model, keys by reference."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from arena.models import ChatModel

pytestmark = pytest.mark.django_db

VLLM = {
    "name": "llama-3-8b-instruct", "protocol": "openai", "url": "http://vllm:8000/v1",
    "served_model": "meta-llama/Meta-Llama-3-8B-Instruct", "max_concurrent": 16,
}
HOSTED = {
    "name": "gpt-4o-mini", "protocol": "openai", "url": "https://api.openai.com/v1", "served_model": "gpt-4o-mini",
    "api_key_env": "OPENAI_API_KEY", "headers": {"OpenAI-Organization": "env:OPENAI_ORG"},
    "parameters": {"temperature": 0.7, "max_new_tokens": 1024},
}


def sync(monkeypatch, entries) -> str:
    monkeypatch.setenv("ARENA_MODELS", json.dumps(entries))
    out = StringIO()
    call_command("models_sync", stdout=out)
    return out.getvalue()


def test_openai_entries_need_no_template_and_keep_only_references(monkeypatch):
    out = sync(monkeypatch, [VLLM, HOSTED, {"name": "zephyr", "url": "http://tgi:80", "template": "zephyr"}])
    assert "Added gpt-4o-mini → https://api.openai.com/v1 (openai, gpt-4o-mini)" in out
    rows = {m.name: m for m in ChatModel.objects.all()}
    assert rows["llama-3-8b-instruct"].served_model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert rows["llama-3-8b-instruct"].max_concurrent == 16
    assert rows["gpt-4o-mini"].api_key_env == "OPENAI_API_KEY"
    assert rows["gpt-4o-mini"].extra_headers == {"OpenAI-Organization": "env:OPENAI_ORG"}
    assert rows["zephyr"].protocol == "tgi"


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"name": "m", "url": "http://h:80"}, "missing required field 'template'"),
        ({**VLLM, "protocol": "grpc"}, "'grpc' is not a protocol; choose one of tgi, openai"),
        ({**VLLM, "api_key": "sk-123"}, "unknown field(s) api_key"),
        ({**VLLM, "api_key_env": "sk-live-123"}, "api_key_env: must be the NAME of an environment variable"),
        ({**VLLM, "api_key_file": "key.txt"}, "api_key_file: must be the absolute path"),
        ({**VLLM, "headers": {"X-Org": "org-123"}}, "headers: X-Org: "),
        ({**VLLM, "max_concurrent": 0}, "max_concurrent: must be a whole number >= 1 or null"),
        ({**VLLM, "parameters": {"truncate": 100}}, "not a parameter of the OpenAI protocol (TGI's only)"),
    ],
)
def test_each_kind_of_bad_openai_entry_is_named_and_nothing_changes(monkeypatch, entry, expected):
    with pytest.raises(CommandError) as error:
        sync(monkeypatch, [HOSTED, entry])
    assert expected in str(error.value)
    assert not ChatModel.objects.exists()


def test_a_new_key_reference_is_a_new_server_to_probe(monkeypatch, django_capture_on_commit_callbacks):
    from arena import queue

    sync(monkeypatch, [HOSTED])
    ChatModel.objects.update(healthy=True)
    queued = []
    monkeypatch.setattr(queue, "models_probe_queue", lambda **kw: queued.append(kw["model_ids"]))
    with django_capture_on_commit_callbacks(execute=True):
        sync(monkeypatch, [{**HOSTED, "parameters": {"temperature": 0.2}}])
    assert queued == [] and ChatModel.objects.get().healthy
    with django_capture_on_commit_callbacks(execute=True):
        sync(monkeypatch, [{**HOSTED, "api_key_env": "OPENAI_API_KEY_2"}])
    assert queued == [[ChatModel.objects.get().id]] and not ChatModel.objects.get().healthy
