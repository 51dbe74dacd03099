"""judge_run from the command line (waits with progress, or --no-wait), and the judge's battles
exported in the clean_battle schema and imported back."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from arena import services
from arena.judge_board import judge_leaderboard
from arena.models import Battle, JudgeGame, JudgeRun, Vote, WorkStatus
from tests.arena.judging_helpers import judged_models, prompt_set

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def models_and_judge(transactional_db):
    with judged_models(contestants=2) as pair:
        yield pair


def test_judge_run_waits_until_done_then_exports_and_imports_back(
    models_and_judge, celery_worker_process, capsys, tmp_path
):
    models, _ = models_and_judge
    prompt_set(name="two", prompts=["Why is the sky blue?", "How do magnets work?"])
    call_command("judge_run", "--prompts", "two", "--judge", "judge-model",
                 "--models", ",".join(m.name for m in models), "--concurrency", "2")
    out = capsys.readouterr()
    run = JudgeRun.objects.get()
    assert run.status == JudgeRun.Status.DONE
    assert f"Judged run {run.id} done" in out.out
    assert "8/8 done · verdicts 4 · invalid 0" in out.out  # 2 prompts x (2 answers + 2 verdicts)
    assert f"run {run.id}:" in out.err and "8/8" in out.err  # the progress bar
    assert JudgeGame.objects.filter(run=run, status=WorkStatus.DONE).count() == 4
    before = judge_leaderboard("model:judge-model")

    exported = tmp_path / "judged.jsonl"
    call_command("export_battles", str(exported))
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(records) == 4 and {r["judge"] for r in records} == {"model:judge-model"}
    assert all("[[" in r["judge_reasoning"] for r in records)
    assert all(len(r["conversation_a"]) == 2 for r in records)

    Battle.objects.all().delete()
    call_command("import_battles", str(exported), "--no-progress")
    assert Vote.objects.filter(battle__judge="model:judge-model").count() == 4
    assert all(v.reasoning for v in Vote.objects.all())
    after = judge_leaderboard("model:judge-model")
    assert [(r["model"], r["rating"]) for r in after["models"]] == [(r["model"], r["rating"]) for r in before["models"]]

    # And rated from the file alone, the judge's battles apart from people's.
    capsys.readouterr()
    call_command("leaderboard", "--battles", str(exported), "--judge", "model:judge-model", "--json")
    rated = json.loads(capsys.readouterr().out)
    assert rated["battles"] == 4
    call_command("leaderboard", "--battles", str(exported), "--json")
    assert json.loads(capsys.readouterr().out)["battles"] == 0


def test_judge_run_no_wait_queues_and_returns(models_and_judge, capsys):
    prompt_set(name="one", prompts=["Why is the sky blue?"])
    call_command("judge_run", "--prompts", "one", "--judge", "judge-model", "--no-wait", "--max-generations", "4")
    run = JudgeRun.objects.get()
    assert f"Judged run {run.id} queued." in capsys.readouterr().out
    # Every enabled model with a server, one prompt: 2 answers + 2 verdicts fit in 4 generations.
    assert JudgeGame.objects.filter(run=run).count() == 2 and run.answers.count() == 2
    services.judge_run_cancel(run_id=run.id)  # nothing left for a worker once the servers are gone


@pytest.mark.parametrize(("args", "problem"), [
    (["--prompts", "nope", "--judge", "judge-model"], "No prompt set named"),
    (["--prompts", "one", "--judge", "nobody"], "No model named “nobody”"),
    (["--prompts", "one", "--judge", "judge-model", "--models", "judged-zephyr,ghost"], "No model named “ghost”"),
    (["--prompts", "one", "--judge", "judge-model", "--models", "judged-zephyr"], "at least two models"),
    (["--prompts", "one", "--judge", "judge-model", "--max-generations", "3"], "Nothing to judge"),
])
def test_judge_run_refuses_bad_arguments_and_starts_nothing(models_and_judge, args, problem):
    prompt_set(name="one", prompts=["Why is the sky blue?"])
    with pytest.raises(CommandError, match=problem):
        call_command("judge_run", *args, "--no-wait")
    assert not JudgeRun.objects.exists()
