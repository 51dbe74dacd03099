"""`manage.py models_sync`: the model registry from ARENA_MODELS (or --file), idempotent, all or nothing."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from arena import services
from arena.management.commands.models_sync import entries_parse
from arena.models import ChatModel

from .stack import ROOT, compose_raw, compose_resolved, container_env

ZEPHYR = {"name": "zephyr-7b-beta", "url": "http://tgi-zephyr:80", "template": "zephyr"}
MISTRAL = {
    "name": "mistral-7b-instruct-v0.2",
    "url": "http://tgi-mistral:80",
    "template": "mistral-instruct",
    "weight": 2.5,
    "parameters": {"temperature": 0.5, "max_new_tokens": 512, "stop": ["###"]},
    "system_prompt": "Be brief.",
    "timeout_seconds": 300,
    "enabled": False,
}


def sync(monkeypatch, entries, *args: str) -> str:
    monkeypatch.setenv("ARENA_MODELS", entries if isinstance(entries, str) else json.dumps(entries))
    out = StringIO()
    call_command("models_sync", *args, stdout=out)
    return out.getvalue()


def snapshot() -> list[dict]:
    return list(ChatModel.objects.order_by("name").values())


@pytest.mark.django_db
def test_creates_the_listed_models_with_defaults_for_missing_fields(monkeypatch):
    out = sync(monkeypatch, [ZEPHYR, MISTRAL])
    zephyr = ChatModel.objects.get(name="zephyr-7b-beta")
    assert (zephyr.endpoint_url, zephyr.template) == ("http://tgi-zephyr:80", "zephyr")
    assert (zephyr.weight, zephyr.parameters, zephyr.system_prompt, zephyr.timeout_seconds, zephyr.enabled) == (
        1.0, {}, "", 180, True
    )
    mistral = ChatModel.objects.get(name="mistral-7b-instruct-v0.2")
    assert mistral.endpoint_url == "http://tgi-mistral:80" and mistral.template == "mistral-instruct"
    assert mistral.weight == 2.5 and mistral.timeout_seconds == 300 and mistral.enabled is False
    assert mistral.parameters == {"temperature": 0.5, "max_new_tokens": 512, "stop": ["###"]}
    assert mistral.system_prompt == "Be brief."
    assert "Added zephyr-7b-beta" in out and "2 added, 0 updated, 0 unchanged" in out


@pytest.mark.django_db
def test_a_second_run_changes_nothing(monkeypatch):
    sync(monkeypatch, [ZEPHYR, MISTRAL])
    before = snapshot()
    out = sync(monkeypatch, [ZEPHYR, MISTRAL])
    assert snapshot() == before
    assert "0 added, 0 updated, 2 unchanged" in out
    assert ChatModel.objects.count() == 2


@pytest.mark.django_db
def test_updates_the_fields_an_entry_sets_and_leaves_the_rest(monkeypatch):
    existing = ChatModel.objects.create(
        name="zephyr-7b-beta", endpoint_url="http://old-host:8080", template="chatml", weight=3.0,
        system_prompt="Edited in the admin.", parameters={"temperature": 0.2}, healthy=False,
    )
    other = ChatModel.objects.create(name="openhermes", endpoint_url="http://gpu-2:8080", template="chatml")
    other_before = ChatModel.objects.filter(pk=other.pk).values().get()

    out = sync(monkeypatch, [{**ZEPHYR, "weight": 1.5}])

    existing.refresh_from_db()
    assert existing.endpoint_url == "http://tgi-zephyr:80"
    assert existing.template == "zephyr" and existing.weight == 1.5
    # Not in the entry: kept as edited.
    assert existing.system_prompt == "Edited in the admin." and existing.parameters == {"temperature": 0.2}
    assert existing.healthy is False  # health belongs to the probe
    assert ChatModel.objects.filter(pk=other.pk).values().get() == other_before
    assert "Updated zephyr-7b-beta: url, template, weight" in out
    assert "0 added, 1 updated, 0 unchanged; 1 other model(s) left as they are" in out


@pytest.mark.django_db
def test_one_invalid_entry_changes_nothing_and_says_which_and_why(monkeypatch):
    ChatModel.objects.create(name="zephyr-7b-beta", endpoint_url="http://old-host:8080", template="zephyr")
    before = snapshot()
    entries = [
        {**ZEPHYR, "weight": 4.0},  # a valid update
        MISTRAL,  # a valid creation
        {"name": "llama-2-13b-chat", "url": "http://tgi-llama:80", "template": "llama2"},
    ]
    with pytest.raises(CommandError) as exc:
        sync(monkeypatch, entries)
    message = str(exc.value)
    assert "nothing was changed" in message
    assert "ARENA_MODELS[2] ('llama-2-13b-chat'): template: 'llama2' is not a template" in message
    assert "llama-2-chat" in message  # the valid choices are listed
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"name": "m", "template": "zephyr"}, "ARENA_MODELS[1] ('m'): missing required field 'url'"),
        ({"url": "http://h:80", "template": "zephyr"}, "ARENA_MODELS[1]: missing required field 'name'"),
        ({**ZEPHYR, "name": "m", "url": "ftp://h"}, "('m'): url: 'ftp://h' must start with http:// or https://"),
        ({**ZEPHYR, "name": "m", "url": "http://h:99999"}, "('m'): url: 'http://h:99999' has an invalid port"),
        ({**ZEPHYR, "name": "m", "url": "http://-h-:80/"}, "('m'): url: 'http://-h-:80/' has no valid host name"),
        ({**ZEPHYR, "name": "m", "url": "http://:80/"}, "('m'): url: 'http://:80/' has no valid host name"),
        ({**ZEPHYR, "name": "m", "weight": -1}, "('m'): weight: must be a number >= 0, got -1"),
        ({**ZEPHYR, "name": "m", "weight": "2"}, "('m'): weight: must be a number >= 0, got '2'"),
        ({**ZEPHYR, "name": "m", "timeout_seconds": 0}, "('m'): timeout_seconds: must be a whole number"),
        ({**ZEPHYR, "name": "m", "timeout_seconds": 1.5}, "('m'): timeout_seconds: must be a whole number"),
        ({**ZEPHYR, "name": "m", "enabled": "yes"}, "('m'): enabled: must be true or false, got 'yes'"),
        ({**ZEPHYR, "name": "m", "parameters": [1]}, "('m'): parameters: must be an object"),
        ({**ZEPHYR, "name": "m", "parameters": {"stop": "###"}}, "('m'): parameters: 'stop' must be a list of strings"),
        ({**ZEPHYR, "name": "m", "system_prompt": None}, "('m'): system_prompt: must be a string"),
        ({**ZEPHYR, "name": "m", "endpoint": "http://h:80"},
         "('m'): unknown field(s) endpoint; allowed: name, protocol"),
        ({**ZEPHYR, "name": " "}, "ARENA_MODELS[1]: name: must be a non-empty string"),
        ({**ZEPHYR, "name": "x" * 101}, "name: must be at most 100 characters"),
        (ZEPHYR, "ARENA_MODELS[1] ('zephyr-7b-beta'): name: 'zephyr-7b-beta' is already used by ARENA_MODELS[0]"),
        ("zephyr", "ARENA_MODELS[1]: must be an object, got a string"),
    ],
)
def test_each_kind_of_bad_entry_is_named(monkeypatch, entry, expected):
    with pytest.raises(CommandError) as exc:
        sync(monkeypatch, [ZEPHYR, entry])
    assert expected in str(exc.value)
    assert ChatModel.objects.count() == 0


@pytest.mark.django_db
def test_every_problem_is_reported_at_once(monkeypatch):
    with pytest.raises(CommandError) as exc:
        sync(monkeypatch, [{**ZEPHYR, "weight": -1}, {"name": "b", "url": "nope", "template": "x"}])
    lines = str(exc.value).splitlines()
    assert len([line for line in lines if line.startswith("  ARENA_MODELS[")]) == 3, lines


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text, expected",
    [
        ('[{"name": "a", "url": "http://h:80",', "ARENA_MODELS is not valid JSON: Expecting"),
        (
            "[{'name': 'a'}]",
            "ARENA_MODELS is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 3",
        ),
        ('{"name": "a"}', "ARENA_MODELS must be a JSON list of model objects, got an object"),
        ("   ", "ARENA_MODELS is not set"),
    ],
)
def test_bad_json_is_a_clear_error(monkeypatch, text, expected):
    with pytest.raises(CommandError) as exc:
        sync(monkeypatch, text)
    assert expected in str(exc.value)
    assert ChatModel.objects.count() == 0


@pytest.mark.django_db
def test_unset_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ARENA_MODELS", raising=False)
    with pytest.raises(CommandError, match=r"ARENA_MODELS is not set.*--file"):
        call_command("models_sync", stdout=StringIO())


@pytest.mark.django_db
def test_an_empty_list_leaves_every_model_alone(monkeypatch):
    ChatModel.objects.create(name="kept", endpoint_url="http://h:80", template="zephyr")
    before = snapshot()
    out = sync(monkeypatch, [])
    assert snapshot() == before and "1 other model(s) left as they are" in out


@pytest.mark.django_db
def test_reads_a_file_instead(monkeypatch, tmp_path):
    monkeypatch.setenv("ARENA_MODELS", "not json at all")  # --file wins
    path = tmp_path / "models.json"
    path.write_text(json.dumps([ZEPHYR]))
    call_command("models_sync", "--file", str(path), stdout=StringIO())
    assert ChatModel.objects.get().name == "zephyr-7b-beta"
    path.write_text('[{"name": "b"}]')
    with pytest.raises(CommandError, match=rf"{path}\[0\] \('b'\): missing required field 'url'"):
        call_command("models_sync", "--file", str(path), stdout=StringIO())
    with pytest.raises(CommandError, match=r"Can't read .*missing.json"):
        call_command("models_sync", "--file", str(tmp_path / "missing.json"), stdout=StringIO())


@pytest.mark.django_db
def test_dry_run_reports_and_writes_nothing(monkeypatch):
    out = sync(monkeypatch, [ZEPHYR, MISTRAL], "--dry-run")
    assert "Dry run, nothing written: 2 added" in out
    assert ChatModel.objects.count() == 0


@pytest.mark.django_db
def test_the_compose_files_models_register_and_are_drawable(monkeypatch):
    from arena.selectors import models_drawable

    text = container_env(compose_raw()["services"]["migrate"], {})["ARENA_MODELS"]
    sync(monkeypatch, text)
    models = {m.name: m for m in ChatModel.objects.all()}
    assert models["zephyr-7b-beta"].endpoint_url == "http://tgi-zephyr:80"
    assert models["mistral-7b-instruct-v0.2"].endpoint_url == "http://tgi-mistral:80"
    assert models["mistral-7b-instruct-v0.2"].template == "mistral-instruct"
    for model in models.values():
        model.full_clean()  # what the admin will check when someone edits it later
    # New models wait for their server to answer the probe queued for them; then they are drawn.
    assert not {m.name for m in models_drawable()} & set(models)
    for model in models.values():
        services.model_health_record(model_id=model.id, healthy=True, endpoint_url=model.endpoint_url)
    assert {m.name for m in models_drawable()} >= set(models)
    # The migrate container runs it at every start: the second start changes nothing.
    assert "0 added, 0 updated, 2 unchanged" in sync(monkeypatch, text)


@pytest.mark.django_db
def test_the_vllm_profile_adds_its_model_beside_the_others(monkeypatch):
    from arena.selectors import models_drawable

    compose = compose_resolved()["services"]
    sync(monkeypatch, container_env(compose["migrate"], {})["ARENA_MODELS"])
    tgi_before = snapshot()
    vllm_models = container_env(compose["vllm-register"], {})["ARENA_MODELS"]
    out = sync(monkeypatch, vllm_models)
    assert "1 added, 0 updated, 0 unchanged; 2 other model(s) left as they are" in out
    assert [m for m in snapshot() if m["protocol"] == "tgi"] == tgi_before
    model = ChatModel.objects.get(protocol="openai")
    argv = compose["vllm"]["command"]
    assert model.name == model.served_model == argv[argv.index("--served-model-name") + 1]
    assert model.endpoint_url == "http://vllm:8000/v1"
    assert model.max_concurrent == int(argv[argv.index("--max-num-seqs") + 1])
    assert model.api_key_env == model.api_key_file == "" and model.extra_headers == {}
    model.full_clean()
    services.model_health_record(model_id=model.id, healthy=True, endpoint_url=model.endpoint_url)
    assert model.name in {m.name for m in models_drawable()}
    assert "0 added, 0 updated, 1 unchanged" in sync(monkeypatch, vllm_models)


def test_a_bad_list_fails_the_process_with_the_message(tmp_path):
    """What the migrate container shows (and why web then doesn't start): exit 1, the reason on stderr."""
    env = {**os.environ, "ARENA_MODELS": '[{"name": "a", "url": "http://h:80", "template": "nope"}]'}
    result = subprocess.run(
        [sys.executable, "manage.py", "models_sync"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "ARENA_MODELS[0] ('a'): template: 'nope' is not a template" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db
def test_a_new_model_or_a_new_server_is_probed_before_it_is_drawn(monkeypatch, django_capture_on_commit_callbacks):
    from arena import queue
    from arena.services.registry import NEW_MODEL_PROBE_RETRIES

    queued = []
    monkeypatch.setattr(queue, "models_probe_queue", lambda **kw: queued.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        sync(monkeypatch, [ZEPHYR, MISTRAL])
    ids = dict(ChatModel.objects.values_list("name", "id"))
    assert sorted(q["model_ids"][0] for q in queued) == sorted(ids.values())
    assert not ChatModel.objects.filter(healthy=True).exists()

    ChatModel.objects.update(healthy=True)
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sync(monkeypatch, [{**ZEPHYR, "weight": 2.0}, {**MISTRAL, "url": "http://tgi-mistral-2:80"}])
    assert queued == [{"model_ids": [ids["mistral-7b-instruct-v0.2"]], "retries": NEW_MODEL_PROBE_RETRIES}]
    healthy = dict(ChatModel.objects.values_list("name", "healthy"))
    assert healthy == {"zephyr-7b-beta": True, "mistral-7b-instruct-v0.2": False}


def _readme_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)


def test_the_readmes_arena_models_examples_are_valid_entries():
    blocks = _readme_blocks("json")
    openai = 0
    for block in blocks:
        data = json.loads(block)
        entries = entries_parse(json.dumps(data if isinstance(data, list) else [data]), "README")
        openai += sum(e.get("protocol") == "openai" for e in entries)
        for entry in entries:
            assert not {"api_key", "key"} & set(entry), "keys are given by reference only"
    assert openai >= 3, "the README shows OpenAI-protocol entries (vLLM, a hosted API)"


def test_the_readmes_add_model_commands_parse():
    from arena.management.commands.add_model import Command

    commands = [
        shlex.split(line.split("manage.py", 1)[1])
        for block in _readme_blocks("sh")
        for line in block.replace("\\\n", " ").splitlines()
        if "manage.py add_model" in line
    ]
    parser = Command().create_parser("manage.py", "add_model")
    protocols = set()
    for argv in commands:
        assert argv[0] == "add_model"
        options = parser.parse_args(argv[1:])
        protocols.add(options.protocol)
        if options.protocol == "openai":
            assert options.url.endswith("/v1"), "an OpenAI client's base URL"
    assert protocols == {"tgi", "openai"}
