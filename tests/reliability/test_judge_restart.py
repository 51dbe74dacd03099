"""A judged run whose worker is killed mid-run finishes after a new worker starts, with no
ordered pair judged twice."""

from __future__ import annotations

import os
import signal

import pytest
from celery import current_app

from arena import queue, services
from arena.models import Battle, JudgeGame, JudgeRun, Vote, WorkStatus
from tests.arena.judging_helpers import judged_models, prompt_set, run_finished
from tests.helpers import wait_until, worker_start
from tests.reliability.helpers import dedicated_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "reliability-judge"
HEARTBEAT = 1.5
SETTINGS_ENV = {"CELERY_QUEUE": QUEUE, "ARENA_REPLY_HEARTBEAT_SECONDS": str(HEARTBEAT),
                "ARENA_REPLY_QUEUE_TIMEOUT_SECONDS": "4"}


def test_a_run_interrupted_by_killing_its_worker_finishes_after_a_restart(
    transactional_db, live_logs, monkeypatch, settings
):
    settings.ARENA_REPLY_HEARTBEAT_SECONDS = HEARTBEAT
    settings.ARENA_REPLY_QUEUE_TIMEOUT_SECONDS = 4
    # This process's tasks go to the dedicated workers' queue; theirs go there by their CELERY_QUEUE.
    monkeypatch.setattr(queue, "_send", lambda name, countdown=None, **kwargs: current_app.send_task(
        name, kwargs=kwargs, countdown=countdown, queue=QUEUE))
    with judged_models(tokens_per_second=40) as (_, judge):
        prompts = prompt_set()
        doomed = worker_start(live_logs, name="judge-doomed", extra_env=SETTINGS_ENV)
        try:
            run = services.judge_run_create(prompt_set_id=prompts.id, judge_id=judge.id, concurrency=6)
            total = JudgeGame.objects.filter(run=run).count()
            wait_until(lambda: JudgeGame.objects.filter(run=run, status=WorkStatus.DONE).count() >= 3, 60,
                       "the first verdicts")
        finally:
            os.killpg(doomed.pid, signal.SIGKILL)  # mid-run, no goodbye
            doomed.wait(timeout=5)
        held = JudgeGame.objects.filter(run=run, status=WorkStatus.CLAIMED).count() + run.answers.filter(
            status=WorkStatus.CLAIMED).count()
        done_before = JudgeGame.objects.filter(run=run, status=WorkStatus.DONE).count()
        assert held > 0 and done_before < total, "the run must be interrupted with work in hand"

        with dedicated_worker(live_logs, "judge-restarted", QUEUE, **{k: v for k, v in SETTINGS_ENV.items()
                                                                       if k != "CELERY_QUEUE"}):
            # As celery beat would: the sweep gives back the dead worker's items and pumps the run.
            run = run_finished(run.id, timeout=90, sweep=True)

    assert run.status == JudgeRun.Status.DONE
    games = list(JudgeGame.objects.filter(run=run))
    assert len(games) == total and {g.status for g in games} == {WorkStatus.DONE}
    # One battle and one vote per ordered pair and prompt: none judged twice.
    battles = Battle.objects.filter(judge="model:judge-model")
    assert battles.count() == total == Vote.objects.filter(battle__in=battles).count()
    assert len({(g.prompt_id, g.model_a_id, g.model_b_id) for g in games}) == total
    assert {g.battle_id for g in games} == set(battles.values_list("id", flat=True))
