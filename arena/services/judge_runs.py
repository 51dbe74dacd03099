"""Judged runs: prompt sets imported, runs planned, their work handed to workers and taken back.

A run is planned whole when it is created: one `JudgeAnswer` per prompt and contestant, one
`JudgeGame` per prompt and ordered pair (both orders of every pair, to cancel position bias).
`judge_run_pump` then hands out work under the run's row lock, at most `concurrency` items held
at once: answers first, a verdict once both its answers are in. Handing out is a claim: a new
claim id on the row and a heartbeat key in Redis that the worker keeps alive; a worker that dies
lets its heartbeat lapse, and `judge_runs_sweep` gives its items back. Every write of a result
is conditional on the claim, so a message replayed after a restart changes nothing, and the
unique keys make a second verdict on one ordered pair impossible.
"""

from __future__ import annotations

import functools
import itertools
import random
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from arena import queue, sampling
from arena.errors import ArenaError
from arena.live import judge_claim_key, live_redis
from arena.models import ChatModel, JudgeAnswer, JudgeGame, JudgeRun, Prompt, PromptSet, WorkStatus
from arena.prompt_files import PromptRecord
from arena.selectors import pairing_current
from arena.verdicts import DEFAULT_JUDGE_PROMPT, judge_prompt_problems

_rng = random.SystemRandom()
PAIRS_POLICIES = tuple(JudgeRun.Pairs.values)


@transaction.atomic
def prompt_set_import(*, name: str, records: list[PromptRecord]) -> PromptSet:
    """A new prompt set holding `records` in order; refused if the name is taken or it is empty."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ArenaError("A prompt set needs a name of 1 to 100 characters.")
    if not records:
        raise ArenaError("The file holds no prompts.")
    try:
        with transaction.atomic():
            prompt_set = PromptSet.objects.create(name=name)
    except IntegrityError:
        raise ArenaError(f"A prompt set named “{name}” exists already; choose another name.") from None
    Prompt.objects.bulk_create(
        Prompt(prompt_set=prompt_set, index=i, turns=r.turns, category=r.category, question_id=r.question_id,
               reference=r.reference)
        for i, r in enumerate(records)
    )
    return prompt_set


def _contestants(model_ids: list[int] | None) -> list[ChatModel]:
    if model_ids is None:
        return list(ChatModel.objects.filter(enabled=True).exclude(endpoint_url="").order_by("id"))
    found = {m.id: m for m in ChatModel.objects.filter(id__in=model_ids)}
    missing = [i for i in model_ids if i not in found]
    if missing:
        raise ArenaError(f"No model with id {missing[0]}.")
    served = [m for m in found.values() if m.endpoint_url]
    if len(served) < len(found):
        raise ArenaError("Every model of a judged run needs an endpoint URL (imported models have none).")
    return sorted(served, key=lambda m: m.id)


def _pairs_for_prompt(policy: str, models: list[ChatModel]) -> list[tuple[ChatModel, ChatModel]]:
    every = list(itertools.combinations(models, 2))
    if policy == JudgeRun.Pairs.ALL:
        return every
    # The arena's adaptive policy over these models: the pair whose verdict says most now.
    state = pairing_current()
    ids = [m.id for m in models]
    weights = sampling.boosted_weights([1.0] * len(models), [state.votes.get(i, 0) for i in ids], 0)
    draw = sampling.pair_draw(sampling.pair_probabilities("adaptive", weights, state.gains_for(ids)), _rng)
    return [(models[min(draw.a, draw.b)], models[max(draw.a, draw.b)])]


@transaction.atomic
def judge_run_create(
    *, prompt_set_id: int, judge_id: int, model_ids: list[int] | None = None, pairs: str = JudgeRun.Pairs.ALL,
    judge_prompt: str = DEFAULT_JUDGE_PROMPT, concurrency: int = 8, max_generations: int | None = None,
) -> JudgeRun:
    """Plan a run and start it: `model_ids` None takes every enabled model that has a server."""
    if pairs not in PAIRS_POLICIES:
        raise ArenaError(f"pairs must be one of {', '.join(PAIRS_POLICIES)}.")
    if problems := judge_prompt_problems(judge_prompt):
        raise ArenaError(" ".join(problems))
    if concurrency < 1 or (max_generations is not None and max_generations < 1):
        raise ArenaError("concurrency and the most generations must be at least 1.")
    prompt_set = PromptSet.objects.filter(id=prompt_set_id).first()
    judge = ChatModel.objects.filter(id=judge_id).first()
    if prompt_set is None or judge is None:
        raise ArenaError("No such prompt set or judge model.")
    if not judge.endpoint_url:
        raise ArenaError(f"The judge “{judge.name}” has no endpoint URL.")
    models = _contestants(model_ids)
    if len(models) < 2:
        raise ArenaError("A judged run needs at least two models with a server.")
    run = JudgeRun.objects.create(
        prompt_set=prompt_set, judge=judge, pairs=pairs, judge_prompt=judge_prompt, concurrency=concurrency,
        max_generations=max_generations,
    )
    run.contestants.set(models)
    answers: list[JudgeAnswer] = []
    games: list[JudgeGame] = []
    planned = 0
    for prompt in Prompt.objects.filter(prompt_set=prompt_set).order_by("index"):
        chosen = _pairs_for_prompt(pairs, models)
        answering = sorted({m.id for pair in chosen for m in pair})
        cost = len(answering) + 2 * len(chosen)
        if max_generations is not None and planned + cost > max_generations:
            break
        planned += cost
        answers += [JudgeAnswer(run=run, prompt=prompt, model_id=m) for m in answering]
        for x, y in chosen:  # both orders: a judge favouring one position favours both models alike
            games += [JudgeGame(run=run, prompt=prompt, model_a=x, model_b=y),
                      JudgeGame(run=run, prompt=prompt, model_a=y, model_b=x)]
    if not games:
        raise ArenaError("Nothing to judge: the prompt set is empty or the most generations allow no prompt.")
    JudgeAnswer.objects.bulk_create(answers)
    JudgeGame.objects.bulk_create(games)
    transaction.on_commit(functools.partial(queue.judge_run_pump_queue, run.id))
    return run


def _claim(items, *, grace_seconds: float) -> list[tuple[int, str]]:
    """Claim rows (already locked with the run): a new claim id each, its heartbeat set to last
    until a worker starts on it."""
    now = timezone.now()
    claimed = []
    redis = live_redis().pipeline(transaction=False)
    for item in items:
        claim = str(uuid.uuid4())
        type(item).objects.filter(id=item.id).update(status=WorkStatus.CLAIMED, claim=claim, claimed_at=now)
        redis.set(judge_claim_key(claim), 1, px=int(grace_seconds * 1000))
        claimed.append((item.id, claim))
    redis.execute()
    return claimed


def judge_run_pump(*, run_id: int) -> int:
    """Hand out the run's next work, up to its concurrency; finish the run when nothing is left.
    Returns how many items were handed out."""
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().filter(id=run_id, status=JudgeRun.Status.RUNNING).first()
        if run is None:
            return 0
        answers = JudgeAnswer.objects.filter(run=run)
        games = JudgeGame.objects.filter(run=run)
        open_statuses = (WorkStatus.PENDING, WorkStatus.CLAIMED)
        held = answers.filter(status=WorkStatus.CLAIMED).count() + games.filter(status=WorkStatus.CLAIMED).count()
        if held == 0 and not answers.filter(status__in=open_statuses).exists() \
                and not games.filter(status__in=open_statuses).exists():
            run.status, run.finished_at = JudgeRun.Status.DONE, timezone.now()
            run.save(update_fields=["status", "finished_at"])
            return 0
        free = run.concurrency - held
        if free <= 0:
            return 0
        grace = settings.ARENA_REPLY_QUEUE_TIMEOUT_SECONDS
        pending_answers = list(answers.filter(status=WorkStatus.PENDING).order_by("prompt__index", "id")[:free])
        answer_claims = _claim(pending_answers, grace_seconds=grace)
        done = JudgeAnswer.objects.filter(run=run, prompt=OuterRef("prompt"), status=WorkStatus.DONE)
        ready = (
            games.filter(status=WorkStatus.PENDING)
            .filter(Exists(done.filter(model=OuterRef("model_a"))), Exists(done.filter(model=OuterRef("model_b"))))
            .order_by("prompt__index", "id")
        )
        game_claims = _claim(list(ready[:free - len(answer_claims)]), grace_seconds=grace)
        for answer_id, claim in answer_claims:
            transaction.on_commit(functools.partial(queue.judge_answer_generate_queue, answer_id, claim))
        for game_id, claim in game_claims:
            transaction.on_commit(functools.partial(queue.judge_game_judge_queue, game_id, claim))
        return len(answer_claims) + len(game_claims)


def _stale_released(run_ids: list[int] | None = None) -> set[int]:
    """Give back claimed items whose worker's heartbeat lapsed; returns their runs' ids."""
    cutoff = timezone.now() - timedelta(seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS)
    redis = live_redis()
    runs: set[int] = set()
    for model in (JudgeAnswer, JudgeGame):
        held = model.objects.filter(
            status=WorkStatus.CLAIMED, claimed_at__lt=cutoff, run__status=JudgeRun.Status.RUNNING
        )
        if run_ids is not None:
            held = held.filter(run_id__in=run_ids)
        for item_id, claim, run_id in held.values_list("id", "claim", "run_id"):
            if claim is not None and redis.exists(judge_claim_key(claim)):
                continue
            # Conditional on the claim: a worker finishing it meanwhile keeps its result.
            if model.objects.filter(id=item_id, status=WorkStatus.CLAIMED, claim=claim).update(
                status=WorkStatus.PENDING, claim=None
            ):
                runs.add(run_id)
    return runs


def judge_runs_sweep() -> int:
    """Give back the work of dead workers and pump every running run (the periodic job); returns
    how many items were handed out."""
    _stale_released()
    running = JudgeRun.objects.filter(status=JudgeRun.Status.RUNNING).values_list("id", flat=True)
    return sum(judge_run_pump(run_id=run_id) for run_id in running)


def judge_run_resume(*, run_id: int) -> int:
    """Take a cancelled or stuck run up again where it stopped; returns how many items were handed out."""
    JudgeRun.objects.filter(id=run_id, status=JudgeRun.Status.CANCELLED).update(
        status=JudgeRun.Status.RUNNING, finished_at=None
    )
    _stale_released([run_id])
    return judge_run_pump(run_id=run_id)


def judge_run_cancel(*, run_id: int) -> bool:
    """Stop handing out the run's work (items held finish; nothing new starts)."""
    return bool(JudgeRun.objects.filter(id=run_id, status=JudgeRun.Status.RUNNING).update(
        status=JudgeRun.Status.CANCELLED, finished_at=timezone.now()
    ))
