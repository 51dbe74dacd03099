"""A judged run's items as a worker does them: a contestant's answers, the judge's verdict.

`*_start` checks the worker still holds the item (its claim) and says what to ask; `*_finish`
stores the outcome under the same condition, then pumps the run for its next work. A verdict
becomes a battle (`judge = "model:<judge>"`) with the two answers as its replies and one vote
carrying the judge's reasoning; a verdict the judge failed to give, or gave unreadably, is
recorded as invalid and makes no vote.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from arena import queue
from arena.credentials import CredentialMissing
from arena.models import (
    Battle,
    ChatModel,
    JudgeAnswer,
    JudgeGame,
    JudgeRun,
    Reply,
    Turn,
    Vote,
    WorkStatus,
    judge_label,
)
from arena.services.counting import leaderboard_refresh_schedule
from arena.services.registry import model_credentials
from arena.text import text_names_identity, text_storable
from arena.verdicts import judge_prompt_render
from inference.backends import GenerationRequest
from inference.chat_templates import ChatMessage

MAX_ANSWER_ATTEMPTS = 3  # an answer failing for a reason a retry may fix is tried this often
MAX_JUDGE_FAILURES = 3  # requests to the judge, failing at the server for a passing reason, before "invalid"
ASKS_PER_VERDICT = 2  # an unreadable verdict is asked for once more, then recorded as invalid


@dataclass(frozen=True)
class ModelCall:
    """What a worker needs to ask one model: its request's fixed part and its limits."""

    model_id: int
    model_name: str
    protocol: str
    concurrency_limit: int | None
    request: GenerationRequest  # messages empty: each call adds its own

    def with_messages(self, messages: list[ChatMessage]) -> GenerationRequest:
        return GenerationRequest(**{**self.request.__dict__, "messages": messages})


@dataclass(frozen=True)
class AnswerJob:
    answer_id: int
    claim: str
    call: ModelCall
    system_prompt: str
    turns: list[str]


@dataclass(frozen=True)
class GameJob:
    game_id: int
    claim: str
    call: ModelCall
    prompt: str  # the judge's, answers laid in


def _model_call(model: ChatModel) -> ModelCall:
    """Raises CredentialMissing when the model's key reference gives nothing."""
    api_key, headers = model_credentials(model)
    request = GenerationRequest(
        endpoint_url=model.endpoint_url, template=model.template, messages=[],
        parameters=dict(model.parameters or {}), timeout_seconds=float(model.timeout_seconds),
        stall_seconds=settings.ARENA_STALL_SECONDS, served_model=model.served_model_name,
        api_key=api_key, headers=headers,
    )
    return ModelCall(model.id, model.name, model.protocol, model.concurrency_limit, request)


def _held(model, item_id: int, claim: str):
    """The item's row if this claim still holds it (None after a restart gave it to another)."""
    return model.objects.filter(id=item_id, status=WorkStatus.CLAIMED, claim=claim)


def judge_answer_start(*, answer_id: int, claim: str) -> AnswerJob | None:
    if not _held(JudgeAnswer, answer_id, claim).update(attempts=F("attempts") + 1):
        return None
    answer = JudgeAnswer.objects.select_related("model", "prompt").get(id=answer_id)
    try:
        call = _model_call(answer.model)
    except CredentialMissing as exc:
        judge_answer_finish(answer_id=answer_id, claim=claim, texts=[], failure=str(exc), retryable=False)
        return None
    return AnswerJob(answer_id, claim, call, answer.model.system_prompt, list(answer.prompt.turns))


def judge_answer_finish(
    *, answer_id: int, claim: str, texts: list[str], token_count: int = 0, requests: int = 0,
    failure: str | None = None, retryable: bool = False,
) -> bool:
    """Store a contestant's answers, or its failure: tried again while a retry may help, else
    failed, and the verdicts that needed it skipped. False if the claim no longer holds."""
    with transaction.atomic():
        answer = _held(JudgeAnswer, answer_id, claim).select_for_update().first()
        if answer is None:
            return False
        JudgeRun.objects.filter(id=answer.run_id).update(generations=F("generations") + requests)
        if failure is None:
            answer.status, answer.texts, answer.token_count, answer.error = (
                WorkStatus.DONE, [text_storable(t) for t in texts], token_count, "",
            )
        elif retryable and answer.attempts < MAX_ANSWER_ATTEMPTS:
            answer.status, answer.error = WorkStatus.PENDING, failure
        else:
            answer.status, answer.error = WorkStatus.FAILED, failure
            JudgeGame.objects.filter(run_id=answer.run_id, prompt_id=answer.prompt_id, status=WorkStatus.PENDING) \
                .filter(Q(model_a_id=answer.model_id) | Q(model_b_id=answer.model_id)) \
                .update(status=WorkStatus.SKIPPED, error=f"An answer could not be generated: {failure}"[:2000])
        answer.claim = None
        answer.save(update_fields=["status", "texts", "token_count", "error", "claim"])
        transaction.on_commit(functools.partial(queue.judge_run_pump_queue, answer.run_id))
    return True


def _answers_of(game: JudgeGame) -> dict[int, list[str]]:
    """Both contestants' answers (one per turn) to the game's prompt, by model id."""
    return dict(
        JudgeAnswer.objects.filter(
            run_id=game.run_id, prompt_id=game.prompt_id, model_id__in=[game.model_a_id, game.model_b_id]
        ).values_list("model_id", "texts")
    )


def judge_game_start(*, game_id: int, claim: str) -> GameJob | None:
    if not _held(JudgeGame, game_id, claim).exists():
        return None
    game = JudgeGame.objects.select_related("run__judge", "prompt").get(id=game_id)
    texts = _answers_of(game)
    prompt = game.prompt
    rendered = judge_prompt_render(
        game.run.judge_prompt, turns=prompt.turns, answers_a=texts[game.model_a_id], answers_b=texts[game.model_b_id],
        reference="\n\n".join(prompt.reference or []),
    )
    try:
        call = _model_call(game.run.judge)
    except CredentialMissing as exc:
        judge_game_finish(game_id=game_id, claim=claim, verdict=None, reasoning="", error=str(exc))
        return None
    return GameJob(game_id, claim, call, rendered)


def judge_game_finish(
    *, game_id: int, claim: str, verdict: str | None, reasoning: str, error: str = "", requests: int = 0,
    retry: bool = False,
) -> bool:
    """Store the judge's verdict as a battle and its vote; with none, the game is invalid (or,
    `retry`, handed out again). False if the claim no longer holds."""
    with transaction.atomic():
        game = _held(JudgeGame, game_id, claim).select_for_update().select_related("run__judge", "prompt").first()
        if game is None:
            return False
        run = game.run
        JudgeRun.objects.filter(id=run.id).update(generations=F("generations") + requests)
        game.attempts += requests
        game.reasoning = text_storable(reasoning)
        game.claim = None
        if verdict is not None:
            game.status, game.verdict, game.error = WorkStatus.DONE, verdict, ""
            game.battle = _battle_record(game, verdict)
            # Counted in the people's leaderboard only when ARENA_RATINGS_INCLUDE_JUDGED says so.
            transaction.on_commit(leaderboard_refresh_schedule)
        elif retry and game.attempts < MAX_JUDGE_FAILURES:
            game.status, game.error = WorkStatus.PENDING, error
        else:
            game.status, game.error = WorkStatus.INVALID, error or "The judge gave no readable verdict."
        game.save(update_fields=["status", "verdict", "reasoning", "attempts", "error", "battle", "claim"])
        transaction.on_commit(functools.partial(queue.judge_run_pump_queue, run.id))
    return True


def _battle_record(game: JudgeGame, verdict: str) -> Battle:
    run = game.run
    texts = _answers_of(game)
    battle = Battle.objects.create(
        model_a_id=game.model_a_id, model_b_id=game.model_b_id, client_id=f"judge-run:{run.id}",
        judge=judge_label(run.judge.name)[:200], anonymous=True,
        # One battle per ordered pair, prompt and run: a replayed verdict can't add a second.
        source_id=f"judge:{run.id}:{game.prompt_id}:{game.model_a_id}:{game.model_b_id}",
    )
    named = False
    for index, prompt in enumerate(game.prompt.turns):
        turn = Turn.objects.create(battle=battle, index=index, prompt=prompt)
        for side, model_id in (("a", game.model_a_id), ("b", game.model_b_id)):
            answers = texts[model_id]
            text = answers[index] if index < len(answers) else ""
            named = named or text_names_identity(text)
            Reply.objects.create(turn=turn, side=side, model_id=model_id, status=Reply.Status.DONE, text=text,
                                 names_identity=text_names_identity(text))
    Vote.objects.create(
        battle=battle, outcome=verdict, client_id=battle.judge, identity_flagged=named,
        reasoning=text_storable(game.reasoning),
    )
    return battle
