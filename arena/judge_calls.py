"""A judged run's requests, made by a worker: a contestant's answers turn by turn, the judge's verdict.

They run on the process's event loop (arena.background) like the arena's streams, through the
model's concurrency slots (arena.slots), so a run shares each model's limit with the battles
people are having. Nothing is streamed to a page: each request's text is collected whole.
While it works the worker keeps the item's claim alive in Redis (arena.live.judge_claim_key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from arena.background import PROCESS_LOOP
from arena.live import judge_claim_key
from arena.relay import RedisBatch
from arena.services.judge_work import ASKS_PER_VERDICT, AnswerJob, GameJob, ModelCall
from arena.slots import backend_limited
from arena.streams import STREAM_GRACE_SECONDS, process_redis_batch
from arena.verdicts import verdict_parse
from inference.backends import Finished
from inference.chat_templates import ChatMessage
from inference.failures import FailureKind, GenerationFailure
from inference.protocols import backend_for

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Answered:
    texts: list[str]
    token_count: int = 0
    requests: int = 0
    failure: GenerationFailure | None = None


@dataclass
class Judged:
    verdict: str | None
    reasoning: str = ""
    requests: int = 0
    failure: GenerationFailure | None = None


async def _ask(call: ModelCall, messages: list[ChatMessage], batch: RedisBatch, holder: str) -> tuple[str, int]:
    backend = backend_limited(
        backend_for(call.protocol), batch, model_id=call.model_id, limit=call.concurrency_limit, holder=holder,
        lease_seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS, wait_seconds=settings.ARENA_MODEL_SLOT_WAIT_SECONDS,
        model=call.model_name,
    )
    text, tokens = "", 0
    async for event in backend.stream(call.with_messages(messages)):
        if isinstance(event, Finished):
            text, tokens = event.text, event.token_count
    return text, tokens


async def _claim_kept(claim: str, batch: RedisBatch, work: Callable[[], Awaitable[T]]) -> T:
    """`work()`, the claim's heartbeat renewed meanwhile (left to expire after: the result is
    stored under the claim just after)."""
    key, lease_ms = judge_claim_key(claim), int(settings.ARENA_REPLY_HEARTBEAT_SECONDS * 1000)

    async def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # Redis may be back at the next beat
                await batch.run(("SET", key, 1, "PX", lease_ms))
            await asyncio.sleep(settings.ARENA_REPLY_HEARTBEAT_SECONDS / 3)

    beating = asyncio.create_task(beat())
    try:
        return await work()
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


def _timeout(call: ModelCall, requests: int) -> float:
    one = call.request.timeout_seconds + call.request.stall_seconds + STREAM_GRACE_SECONDS
    if call.concurrency_limit is not None:
        one += settings.ARENA_MODEL_SLOT_WAIT_SECONDS
    return one * requests


def _run(claim: str, work: Callable[[RedisBatch], Awaitable[T]], timeout: float) -> T:
    batch = process_redis_batch()
    return PROCESS_LOOP.run(lambda: _claim_kept(claim, batch, lambda: work(batch)), timeout)


def answer_generate(job: AnswerJob) -> Answered:
    """The contestant's answer to every turn, each turn asked with the conversation so far."""
    outcome = Answered(texts=[])

    async def work(batch: RedisBatch) -> Answered:
        messages: list[ChatMessage] = [{"role": "system", "content": job.system_prompt}] if job.system_prompt else []
        for turn in job.turns:
            messages.append({"role": "user", "content": turn})
            outcome.requests += 1
            text, tokens = await _ask(job.call, messages, batch, holder=f"{job.claim}:{outcome.requests}")
            outcome.texts.append(text)
            outcome.token_count += tokens
            messages.append({"role": "assistant", "content": text})
        return outcome

    try:
        return _run(job.claim, work, _timeout(job.call, len(job.turns)))
    except GenerationFailure as failure:
        outcome.failure = failure
    except Exception:
        log.warning("Answer %s of a judged run broke off", job.answer_id, exc_info=True)
        outcome.failure = GenerationFailure(FailureKind.INTERNAL, "The answer was interrupted by a server problem.")
    return outcome


def verdict_ask(job: GameJob) -> Judged:
    """The judge's verdict, asked again once if its answer names none (or two); None if it never does."""
    outcome = Judged(verdict=None)

    async def work(batch: RedisBatch) -> Judged:
        while outcome.requests < ASKS_PER_VERDICT:
            outcome.requests += 1
            text, _ = await _ask(job.call, [{"role": "user", "content": job.prompt}], batch,
                                 holder=f"{job.claim}:{outcome.requests}")
            outcome.reasoning = text
            outcome.verdict = verdict_parse(text)
            if outcome.verdict is not None:
                break
        return outcome

    try:
        return _run(job.claim, work, _timeout(job.call, ASKS_PER_VERDICT))
    except GenerationFailure as failure:
        outcome.failure = failure
    except Exception:
        log.warning("Verdict %s of a judged run broke off", job.game_id, exc_info=True)
        outcome.failure = GenerationFailure(FailureKind.INTERNAL, "The verdict was interrupted by a server problem.")
    return outcome
