"""Replies, as the generation task drives them: claimed, given back, finished, swept."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from arena import events, metrics
from arena.credentials import CredentialMissing
from arena.live import StreamKeys, live_redis, live_text, stream_keys
from arena.models import Battle, Reply, Turn
from arena.publish import group_publish
from arena.rules import battle_controls, failure_facts
from arena.selectors import battle_now
from arena.services.registry import model_credentials, model_misconfigured
from arena.style import markdown_counts
from arena.text import text_names_identity, text_storable
from inference.backends import GenerationRequest
from inference.chat_templates import ChatMessage
from inference.failures import FailureKind, GenerationFailure


@dataclass(frozen=True)
class GenerationJob:
    reply_id: int
    model_id: int
    request: GenerationRequest
    group: str
    ref: events.ReplyRef
    stream_id: uuid.UUID  # this claim's: names the live text and heartbeat in Redis
    protocol: str = "tgi"
    model_name: str = ""  # the `model` label of its metrics
    concurrency_limit: int | None = None  # requests in flight at once for this model, across workers
    # Known before any request: e.g. the model's API key variable is unset. The reply fails at once.
    failure: GenerationFailure | None = None

    @property
    def keys(self) -> StreamKeys:
        return stream_keys(self.stream_id)


def reply_claim(*, reply_id: int) -> GenerationJob | None:
    """Mark a queued reply as streaming and return what to generate; None if someone else has it.

    Each claim gives the reply a new stream id, which names its live text and heartbeat."""
    stream_id = uuid.uuid4()
    claimed_at = timezone.now()
    claimed = Reply.objects.filter(id=reply_id, status=Reply.Status.QUEUED).update(
        status=Reply.Status.STREAMING, started_at=claimed_at, stream_id=stream_id
    )
    if claimed != 1:
        return None
    reply = Reply.objects.select_related("turn__battle", "model").get(id=reply_id)
    turn, model = reply.turn, reply.model
    # A retried reply counts its wait again from its creation: the user has waited all along.
    metrics.REPLY_QUEUE_WAIT.labels(model=model.name).observe(max((claimed_at - reply.created_at).total_seconds(), 0))
    failure = None
    try:
        api_key, headers = model_credentials(model)
    except CredentialMissing as exc:
        api_key, headers = "", {}
        failure = GenerationFailure(
            FailureKind.MISCONFIGURED,
            "This model is not set up correctly; an admin has been told. Start a new battle to meet other models.",
        )
        model_misconfigured(model_id=model.id, error=str(exc))
    request = GenerationRequest(
        endpoint_url=model.endpoint_url,
        template=model.template,
        messages=_conversation(turn, side=reply.side, system_prompt=model.system_prompt),
        parameters=dict(model.parameters or {}),
        timeout_seconds=float(model.timeout_seconds),
        stall_seconds=settings.ARENA_STALL_SECONDS,
        served_model=model.served_model_name,
        api_key=api_key,
        headers=headers,
    )
    ref = events.reply_ref(battle_id=turn.battle_id, turn_index=turn.index, attempt=reply.attempt, side=reply.side)
    return GenerationJob(
        reply_id=reply.id, model_id=model.id, request=request, group=events.battle_group(turn.battle_id), ref=ref,
        stream_id=stream_id, protocol=model.protocol, model_name=model.name, concurrency_limit=model.concurrency_limit,
        failure=failure,
    )


def _conversation(turn: Turn, *, side: str, system_prompt: str) -> list[ChatMessage]:
    """The conversation so far as this side saw it, ending with the turn's prompt (two queries
    however many turns there were)."""
    messages: list[ChatMessage] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    earlier = list(
        Turn.objects.filter(battle_id=turn.battle_id, index__lt=turn.index)
        .order_by("index").values_list("index", "prompt")
    ) if turn.index else []  # a first turn has nothing before it
    answers = dict(
        Reply.objects.filter(
            turn__battle_id=turn.battle_id, turn__index__lt=turn.index, side=side, attempt=F("turn__attempt")
        ).values_list("turn__index", "text")
    ) if earlier else {}
    for index, prompt in earlier:
        messages.append({"role": "user", "content": prompt})
        messages.append({"role": "assistant", "content": answers.get(index, "")})
    messages.append({"role": "user", "content": turn.prompt})
    return messages


def reply_requeue(*, reply_id: int) -> None:
    """Give a streaming reply back to the queue (a transient failure before any text was sent)."""
    Reply.objects.filter(id=reply_id, status=Reply.Status.STREAMING).update(status=Reply.Status.QUEUED)


def reply_finish(
    *,
    reply_id: int,
    text: str,
    token_count: int = 0,
    prompt_tokens: int | None = None,
    finish_reason: str = "",
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
    failure: str | None = None,
    failure_kind: str = "",
) -> bool:
    """Store a reply's outcome once; False if it was already finished (e.g. by the sweeper).

    `failure`: the sentence the user reads; `failure_kind`: its FailureKind. The event published
    carries the battle's controls as they are now; the battle's row is locked first so that of two
    sides finishing together, the second sees the first and says the battle may go on."""
    status = Reply.Status.FAILED if failure else Reply.Status.DONE
    text = text_storable(text)
    markdown = markdown_counts(text)
    kind = failure_kind if failure else ""
    with transaction.atomic():
        battle_id, turn_index, attempt, side, model_name = Reply.objects.values_list(
            "turn__battle_id", "turn__index", "attempt", "side", "model__name"
        ).get(id=reply_id)
        battle = Battle.objects.select_for_update().get(id=battle_id)
        updated = Reply.objects.filter(id=reply_id, status=Reply.Status.STREAMING).update(
            status=status,
            text=text,
            token_count=token_count,
            prompt_tokens=prompt_tokens,
            finish_reason=finish_reason,
            ttft_ms=ttft_ms,
            duration_ms=duration_ms,
            failure_reason=failure or "",
            failure_kind=kind,
            names_identity=text_names_identity(text),
            header_count=markdown.headers,
            list_count=markdown.lists,
            bold_count=markdown.bold,
            finished_at=timezone.now(),
        )
        if updated != 1:
            return False
        # No vote yet: a battle takes one only once its last turn is done, and this reply was not.
        controls = battle_controls(battle_now(battle, voted=False))
        ref = events.reply_ref(battle_id=battle_id, turn_index=turn_index, attempt=attempt, side=side)
        event: events.ReplyFailed | events.ReplyDone
        if failure:
            event = {
                **ref, "type": "reply.failed", "reason": failure, "text": text, **failure_facts(kind),
                "controls": controls,
            }
        else:
            event = {
                **ref, "type": "reply.done", "text": text, "token_count": token_count, "finish_reason": finish_reason,
                "ttft_ms": ttft_ms, "duration_ms": duration_ms, "controls": controls,
            }
        group = events.battle_group(battle_id)
        transaction.on_commit(lambda: group_publish(group, event))
        ended = metrics.REPLIES.labels(model=model_name, outcome=status.value, failure_kind=kind)
        transaction.on_commit(ended.inc)  # every reply ends here: the worker's, and the sweep's
    return True


def replies_sweep(*, now: datetime | None = None) -> int:
    """Fail replies no worker will finish: queued too long, streaming with no heartbeat, too old.

    A worker refreshes a reply's heartbeat key in Redis while it streams; a killed worker stops
    doing so, and its reply is failed here within a heartbeat period plus the sweep interval.
    """
    now = now or timezone.now()
    queued_cutoff = now - timedelta(seconds=settings.ARENA_REPLY_QUEUE_TIMEOUT_SECONDS)
    stale_cutoff = now - timedelta(seconds=settings.ARENA_REPLY_STALE_SECONDS)
    grace_cutoff = now - timedelta(seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS)
    swept = 0
    queued = Reply.objects.filter(status=Reply.Status.QUEUED, created_at__lt=queued_cutoff).values_list("id", flat=True)
    for reply_id in queued:
        # Claim it as the worker would, so a late worker can't start it afterwards.
        if Reply.objects.filter(id=reply_id, status=Reply.Status.QUEUED).update(status=Reply.Status.STREAMING):
            swept += reply_finish(
                reply_id=reply_id, text="", failure_kind=FailureKind.NO_WORKER,
                failure="No worker was free to generate this reply. Regenerate to try again.",
            )
    streaming = Reply.objects.filter(status=Reply.Status.STREAMING, started_at__lt=grace_cutoff).values_list(
        "id", "started_at", "stream_id"
    )
    redis = live_redis()
    for reply_id, started_at, stream_id in streaming:
        alive = stream_id is not None and redis.exists(stream_keys(stream_id).heartbeat)
        if alive and started_at is not None and started_at >= stale_cutoff:
            continue
        if alive:
            reason, kind = "This reply took too long and was stopped. Regenerate to try again.", FailureKind.TIMEOUT
        else:
            reason, kind = "The worker generating this reply stopped. Regenerate to try again.", FailureKind.WORKER_LOST
        swept += reply_finish(reply_id=reply_id, text=live_text(stream_id), failure=reason, failure_kind=kind)
    return swept
