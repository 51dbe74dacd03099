"""Prompt sets from JSON lines (MT-Bench's and Arena-Hard's forms), and the import command."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from arena.models import Prompt, PromptSet
from arena.prompt_files import PromptFileError, prompts_read


def write(path, lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_mt_bench_arena_hard_and_plain_prompts_are_read(tmp_path):
    path = write(tmp_path / "p.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["Write a blog post.", "Rewrite it."],
         "reference": ["ref 1", "ref 2"]},
        "",
        {"question_id": "abc", "turns": [{"content": "  Arena-Hard style  "}]},
        {"prompt": "Just one", "reference": "only this"},
    ])
    records = list(prompts_read(path))
    assert [r.turns for r in records] == [["Write a blog post.", "Rewrite it."], ["Arena-Hard style"], ["Just one"]]
    assert [r.question_id for r in records] == ["81", "abc", ""]
    assert records[0].category == "writing" and records[2].reference == ["only this"]


@pytest.mark.parametrize(("line", "problem"), [
    ("not json", "line 2: not valid JSON"),
    ('["a list"]', "line 2: a prompt must be a JSON object"),
    ('{"turns": []}', 'line 2: give "turns"'),
    ('{"turns": [""]}', "line 2: a turn is not a usable prompt"),
    ('{"turns": ["ok"], "category": 5}', "line 2: category must be a string"),
    ('{"turns": ["ok"], "reference": [1]}', "line 2: reference must be"),
])
def test_a_malformed_line_is_named(tmp_path, line, problem):
    path = write(tmp_path / "p.jsonl", [{"prompt": "fine"}, line])
    with pytest.raises(PromptFileError, match=problem):
        list(prompts_read(path))


@pytest.mark.django_db
def test_the_command_imports_a_set_and_says_its_size(tmp_path, capsys):
    path = write(tmp_path / "p.jsonl", [{"turns": ["a", "b"]}, {"prompt": "c"}])
    call_command("prompts_import", str(path), "--name", "mine")
    assert "2 prompts, 3 turns" in capsys.readouterr().out
    prompt_set = PromptSet.objects.get(name="mine")
    assert list(Prompt.objects.filter(prompt_set=prompt_set).values_list("index", "turns")) == [
        (0, ["a", "b"]), (1, ["c"])]


@pytest.mark.django_db
def test_the_command_imports_nothing_from_a_bad_file_or_under_a_taken_name(tmp_path):
    bad = write(tmp_path / "bad.jsonl", [{"prompt": "fine"}, "{oops"])
    with pytest.raises(CommandError, match=r"line 2: not valid JSON.*nothing was imported"):
        call_command("prompts_import", str(bad), "--name", "bad")
    assert not PromptSet.objects.exists() and not Prompt.objects.exists()
    good = write(tmp_path / "good.jsonl", [{"prompt": "fine"}])
    call_command("prompts_import", str(good), "--name", "taken")
    with pytest.raises(CommandError, match="exists already"):
        call_command("prompts_import", str(good), "--name", "taken")
    assert Prompt.objects.count() == 1
    with pytest.raises(CommandError, match="No such file"):
        call_command("prompts_import", str(tmp_path / "missing.jsonl"), "--name", "x")
