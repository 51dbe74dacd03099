"""Judged runs through a real Celery worker against development-server models: every pair judged
in both orders, verdicts stored as battles of the judge, garbage and failures left invalid."""

from __future__ import annotations

import pytest
import requests

from arena import services
from arena.models import Battle, JudgeAnswer, JudgeGame, JudgeRun, Vote, WorkStatus
from arena.verdicts import verdict_swapped
from tests.arena.judging_helpers import expected_verdict, judged_models, prompt_set, run_finished
from tests.helpers import devserver_stats, devserver_stats_reset
from tests.reliability.helpers import fault_set

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def models_and_judge(transactional_db):
    with judged_models() as pair:
        yield pair


def judge_url(judge) -> str:
    return judge.endpoint_url.removesuffix("/v1")


def test_every_pair_is_judged_in_both_orders_and_stored_as_the_judge_s_battles(
    models_and_judge, celery_worker_process
):
    _, judge = models_and_judge
    prompts = prompt_set(prompts=["How do I keep basil alive?", "Explain recursion.", "Why is the sky blue?"])
    devserver_stats_reset(judge_url(judge))
    run = services.judge_run_create(prompt_set_id=prompts.id, judge_id=judge.id, concurrency=4)
    run = run_finished(run.id)

    assert run.status == JudgeRun.Status.DONE
    games = list(JudgeGame.objects.filter(run=run).select_related("run", "prompt"))
    assert len(games) == 3 * 3 * 2  # prompts x pairs x both orders
    assert JudgeAnswer.objects.filter(run=run, status=WorkStatus.DONE).count() == 3 * 3
    assert {g.status for g in games} == {WorkStatus.DONE}
    # Both orders were asked of the judge, once each (its verdicts are readable at once).
    assert devserver_stats(judge_url(judge))["requests"] == len(games)
    assert all(g.attempts == 1 for g in games)
    assert run.generations == 9 + 18
    by_order = {(g.prompt_id, g.model_a_id, g.model_b_id): g for g in games}
    for g in games:
        assert g.verdict == expected_verdict(g)
        # The development judge follows the answers, not their places: the other order agrees.
        assert by_order[(g.prompt_id, g.model_b_id, g.model_a_id)].verdict == verdict_swapped(g.verdict)
        battle = Battle.objects.select_related("vote").get(id=g.battle_id)
        assert battle.judge == "model:judge-model"
        assert (battle.model_a_id, battle.model_b_id) == (g.model_a_id, g.model_b_id)
        assert battle.vote.outcome == g.verdict
        assert "[[" in battle.vote.reasoning and battle.vote.reasoning == g.reasoning
        replies = {r.side: r.text for r in battle.turns.get().replies.all()}
        answers = {a.model_id: a.texts[0] for a in JudgeAnswer.objects.filter(run=run, prompt_id=g.prompt_id)}
        assert replies == {"a": answers[g.model_a_id], "b": answers[g.model_b_id]}
    # Never mixed into the people's leaderboard.
    assert not Vote.objects.countable().exists()


def test_a_judge_answering_garbage_is_asked_again_then_left_invalid(models_and_judge, celery_worker_process):
    models, judge = models_and_judge
    prompts = prompt_set(prompts=["Why is the sky blue?"])
    devserver_stats_reset(judge_url(judge))
    # Without the answers' delimiters the development judge doesn't see a judge prompt: it chats.
    garbage = "Say something about {question}, given {answer_a} and {answer_b}."
    run = services.judge_run_create(
        prompt_set_id=prompts.id, judge_id=judge.id, model_ids=[m.id for m in models[:2]], judge_prompt=garbage,
    )
    run = run_finished(run.id)
    games = list(JudgeGame.objects.filter(run=run))
    assert len(games) == 2
    assert {g.status for g in games} == {WorkStatus.INVALID}
    assert all(g.attempts == 2 and g.verdict == "" and g.battle_id is None and g.reasoning for g in games)
    assert devserver_stats(judge_url(judge))["requests"] == 4
    assert not Vote.objects.exists()


def test_a_failing_judge_leaves_invalid_verdicts_not_votes(models_and_judge, celery_worker_process):
    models, judge = models_and_judge
    prompts = prompt_set(prompts=["Why is the sky blue?"])
    fault_set(judge_url(judge), "http-500")
    try:
        run = services.judge_run_create(
            prompt_set_id=prompts.id, judge_id=judge.id, model_ids=[m.id for m in models[:2]],
        )
        run = run_finished(run.id)
    finally:
        fault_set(judge_url(judge), None)
    games = list(JudgeGame.objects.filter(run=run))
    assert {g.status for g in games} == {WorkStatus.INVALID}
    assert all(g.error and g.battle_id is None for g in games)
    assert not Vote.objects.exists()
    assert JudgeAnswer.objects.filter(run=run, status=WorkStatus.DONE).count() == 2


def test_the_judge_s_leaderboard_and_json_are_its_own(models_and_judge, celery_worker_process, live_stack):
    models, judge = models_and_judge
    prompts = prompt_set(prompts=["How do I keep basil alive?", "Explain recursion."])
    run = run_finished(services.judge_run_create(prompt_set_id=prompts.id, judge_id=judge.id).id)
    votes = JudgeGame.objects.filter(run=run, status=WorkStatus.DONE).count()
    board = requests.get(f"{live_stack.base_url}/api/leaderboard/", params={"judge": "model:judge-model"},
                         timeout=10).json()
    assert board["judge"] == "model:judge-model" and board["total_votes"] == votes == 12
    assert sorted(board["names"]) == sorted(m.name for m in models)
    assert set(board["agreement"]) == {"with_ties", "without_ties"}
    people = requests.get(f"{live_stack.base_url}/api/leaderboard/", timeout=10).json()
    assert people["total_votes"] == 0 and "judge" not in people
    page = requests.get(f"{live_stack.base_url}/leaderboard/", params={"judge": "model:judge-model"}, timeout=10)
    assert page.status_code == 200 and "judged by model:judge-model" in page.text
    assert requests.get(f"{live_stack.base_url}/api/leaderboard/", params={"judge": "model:nobody"},
                        timeout=10).status_code == 404
