"""Writes. Every change to battles, turns, replies and votes goes through a function here.

Functions are keyword-only and named `<entity>_<action>`. Work for Celery is queued with
`transaction.on_commit`, so a task never sees a row that might still roll back.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
import numpy as np

from arena import events, ratings
from arena.clients import ClientIdentity
from arena.errors import ArenaError, NoModelsAvailable, NotAllowed, RateLimited
from arena.models import Battle, ChatModel, PairCount, Reply, Turn, Vote
from arena.live import live_redis, live_text
from arena.publish import group_publish
from arena.sampling import pair_draw
from arena.selectors import (
    battle_get_for_client,
    battle_has_vote,
    battle_replies_summary,
    models_drawable,
    replies_current,
    turn_last,
)
from inference.backends import GenerationRequest, failure_facts
from inference.chat_templates import PRESETS, ChatMessage
from inference.parameters import parameters_problems

_rng = random.SystemRandom()
log = logging.getLogger(__name__)


# --- rate limits -----------------------------------------------------------------------------


def _rate_limit(bucket: str, keys: list[str], limit: int, window_seconds: int, message: str) -> None:
    """Fixed-window counters in Redis, per session and per IP hash (new sessions don't reset)."""
    window = int(timezone.now().timestamp()) // window_seconds
    hits = _counters_incr([f"arena:rl:{bucket}:{key}:{window}" for key in keys if key], window_seconds + 5)
    if any(count > limit for count in hits):
        raise RateLimited(message)


def _counters_incr(names: list[str], ttl_seconds: int) -> list[int]:
    """Add one to each counter in Redis, in one round trip; a counter expires `ttl_seconds` after
    its first count (INCR, then EXPIRE NX)."""
    pipe = live_redis().pipeline(transaction=False)
    for name in names:
        pipe.incr(name)
        pipe.expire(name, ttl_seconds, nx=True)
    return pipe.execute()[0::2]


def _client_keys(client: ClientIdentity) -> list[str]:
    return [f"s:{client.client_id}", f"ip:{client.ip_hash}" if client.ip_hash else ""]


# --- battles and turns -----------------------------------------------------------------------


@transaction.atomic
def battle_start(*, client: ClientIdentity, text: object) -> Turn:
    """A new battle between two different drawable models (sides at random) and its first turn."""
    prompt = _prompt_clean(text)
    _rate_limit(
        "battle", _client_keys(client), settings.ARENA_BATTLES_PER_MINUTE, 60,
        "You're starting battles too quickly; wait a minute and try again.",
    )
    candidates = models_drawable()
    try:
        model_a, model_b = pair_draw(candidates, [m.weight for m in candidates], _rng)
    except ValueError:
        raise NoModelsAvailable(
            "Not enough models are available right now (at least two healthy ones are needed). "
            "Please try again later."
        ) from None
    battle = Battle.objects.create(
        model_a=model_a, model_b=model_b, client_id=client.client_id, ip_hash=client.ip_hash
    )
    turn = Turn.objects.create(battle=battle, index=0, prompt=prompt)
    _replies_queue(turn, sides=("a", "b"))
    return turn


def _prompt_clean(text: object) -> str:
    if not isinstance(text, str):
        raise ArenaError("The prompt must be text.")
    text = text.strip()
    if not text:
        raise ArenaError("Type a prompt first.")
    if len(text) > settings.ARENA_PROMPT_MAX_CHARS:
        raise ArenaError(
            f"The prompt is too long ({len(text):,} characters; the limit is {settings.ARENA_PROMPT_MAX_CHARS:,})."
        )
    # JSON can carry what PostgreSQL can't store: NUL characters and unpaired surrogates.
    if "\x00" in text or _has_lone_surrogate(text):
        raise ArenaError("The prompt contains characters that can't be stored (NUL or invalid Unicode).")
    return text


def text_storable(text: str) -> str:
    """Model text as PostgreSQL can store it: NULs dropped, unpaired surrogates replaced."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@transaction.atomic
def turn_submit(*, battle_id, client: ClientIdentity, text: object) -> Turn:
    """Add a user message to a battle and queue both sides' replies."""
    prompt = _prompt_clean(text)
    battle = battle_get_for_client(battle_id=battle_id, client=client, for_update=True)
    if battle_has_vote(battle):
        raise NotAllowed("This battle is over; start a new round.")
    last = turn_last(battle)
    if last is not None:
        replies = replies_current(last)
        if any(r.status != Reply.Status.DONE for r in replies.values()):
            raise NotAllowed("Wait until both replies have finished (regenerate a failed one).")
        if last.index + 1 >= settings.ARENA_MAX_TURNS:
            raise NotAllowed(f"A battle has at most {settings.ARENA_MAX_TURNS} turns; vote or start a new round.")
    _rate_limit(
        "turn", _client_keys(client), settings.ARENA_TURNS_PER_MINUTE, 60,
        "You're sending prompts too quickly; wait a minute and try again.",
    )
    turn = Turn.objects.create(battle=battle, index=0 if last is None else last.index + 1, prompt=prompt)
    _replies_queue(turn, sides=("a", "b"))
    return turn


@transaction.atomic
def turn_regenerate(*, battle_id, client: ClientIdentity, side: str | None = None) -> Turn:
    """Re-run the last turn: both sides, or only `side` when that side failed."""
    battle = battle_get_for_client(battle_id=battle_id, client=client, for_update=True)
    if battle_has_vote(battle):
        raise NotAllowed("This battle is over; start a new round.")
    turn = turn_last(battle)
    if turn is None:
        raise NotAllowed("Nothing to regenerate yet.")
    replies = replies_current(turn)
    if any(not r.finished for r in replies.values()):
        raise NotAllowed("Wait until both replies have finished.")
    if side is not None and side not in ("a", "b"):
        raise ArenaError("side must be 'a' or 'b'.")
    _rate_limit(
        "turn", _client_keys(client), settings.ARENA_TURNS_PER_MINUTE, 60,
        "You're regenerating too quickly; wait a minute and try again.",
    )
    turn.attempt += 1
    turn.save(update_fields=["attempt"])
    if side is None:
        _replies_queue(turn, sides=("a", "b"))
    else:
        # Keep the other side's answer: copy it forward into the new attempt unchanged.
        other = replies[("b" if side == "a" else "a")]
        Reply.objects.create(
            turn=turn, side=other.side, attempt=turn.attempt, model=other.model, status=other.status,
            failure_reason=other.failure_reason, failure_kind=other.failure_kind, text=other.text, finish_reason=other.finish_reason,
            token_count=other.token_count, ttft_ms=other.ttft_ms, duration_ms=other.duration_ms,
            names_identity=other.names_identity, started_at=other.started_at, finished_at=other.finished_at,
        )
        _replies_queue(turn, sides=(side,))
    return turn


def _replies_queue(turn: Turn, *, sides: tuple[str, ...]) -> None:
    from inference.tasks import reply_generate  # tasks import services; import here to avoid a cycle

    battle = turn.battle
    for side in sides:
        model = battle.model_a if side == "a" else battle.model_b
        reply = Reply.objects.create(turn=turn, side=side, attempt=turn.attempt, model=model)
        transaction.on_commit(lambda reply_id=reply.id: reply_generate.delay(reply_id))


# --- replies (called by the generation task) -------------------------------------------------


@dataclass(frozen=True)
class GenerationJob:
    reply_id: int
    model_id: int
    request: GenerationRequest
    group: str
    ref: events.ReplyRef


def reply_claim(*, reply_id: int) -> GenerationJob | None:
    """Mark a queued reply as streaming and return what to generate; None if someone else has it."""
    claimed = Reply.objects.filter(id=reply_id, status=Reply.Status.QUEUED).update(
        status=Reply.Status.STREAMING, started_at=timezone.now()
    )
    if claimed != 1:
        return None
    reply = Reply.objects.select_related("turn__battle", "model").get(id=reply_id)
    turn, model = reply.turn, reply.model
    messages: list[ChatMessage] = []
    if model.system_prompt:
        messages.append({"role": "system", "content": model.system_prompt})
    # The conversation so far, this side's answers: two queries however many turns there were.
    earlier = list(Turn.objects.filter(battle=turn.battle, index__lt=turn.index).order_by("index").values_list("index", "prompt"))
    answers = dict(
        Reply.objects.filter(
            turn__battle=turn.battle, turn__index__lt=turn.index, side=reply.side, attempt=F("turn__attempt")
        ).values_list("turn__index", "text")
    ) if earlier else {}
    for index, prompt in earlier:
        messages.append({"role": "user", "content": prompt})
        messages.append({"role": "assistant", "content": answers.get(index, "")})
    messages.append({"role": "user", "content": turn.prompt})
    request = GenerationRequest(
        endpoint_url=model.endpoint_url,
        template=model.template,
        messages=messages,
        parameters=dict(model.parameters or {}),
        timeout_seconds=float(model.timeout_seconds),
        stall_seconds=settings.ARENA_STALL_SECONDS,
    )
    ref = events.reply_ref(battle_id=turn.battle_id, turn_index=turn.index, attempt=reply.attempt, side=reply.side)
    return GenerationJob(reply_id=reply.id, model_id=model.id, request=request, group=events.battle_group(turn.battle_id), ref=ref)


def reply_requeue(*, reply_id: int) -> None:
    """Give a streaming reply back to the queue (a transient failure before any text was sent)."""
    Reply.objects.filter(id=reply_id, status=Reply.Status.STREAMING).update(status=Reply.Status.QUEUED)


def reply_finish(
    *,
    reply_id: int,
    text: str,
    token_count: int = 0,
    finish_reason: str = "",
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
    failure: str | None = None,
    failure_kind: str = "",
) -> bool:
    """Store a reply's outcome once; False if it was already finished (e.g. by the sweeper).

    `failure`: the sentence the user reads; `failure_kind`: its GenerationFailure kind."""
    status = Reply.Status.FAILED if failure else Reply.Status.DONE
    text = text_storable(text)
    with transaction.atomic():
        updated = Reply.objects.filter(id=reply_id, status=Reply.Status.STREAMING).update(
            status=status,
            text=text,
            token_count=token_count,
            finish_reason=finish_reason,
            ttft_ms=ttft_ms,
            duration_ms=duration_ms,
            failure_reason=failure or "",
            failure_kind=failure_kind if failure else "",
            names_identity=text_names_identity(text),
            finished_at=timezone.now(),
        )
        if updated != 1:
            return False
        battle_id, turn_index, attempt, side = Reply.objects.values_list(
            "turn__battle_id", "turn__index", "attempt", "side"
        ).get(id=reply_id)
        ref = events.reply_ref(battle_id=battle_id, turn_index=turn_index, attempt=attempt, side=side)
        group = events.battle_group(battle_id)
        if failure:
            event: dict = {**ref, "type": "reply.failed", "reason": failure, "text": text, **failure_facts(failure_kind)}
        else:
            event = {
                **ref, "type": "reply.done", "text": text, "token_count": token_count,
                "ttft_ms": ttft_ms, "duration_ms": duration_ms,
            }
        transaction.on_commit(lambda: group_publish(group, event))
    return True


def replies_sweep(*, now=None) -> int:
    """Fail replies no worker will finish: queued too long, streaming with no heartbeat, too old.

    A worker refreshes a reply's heartbeat key in Redis while it streams; a killed worker stops
    doing so, and its reply is failed here within a heartbeat period plus the sweep interval.
    """
    from inference.relay import heartbeat_key

    now = now or timezone.now()
    queued_cutoff = now - timedelta(seconds=settings.ARENA_REPLY_QUEUE_TIMEOUT_SECONDS)
    stale_cutoff = now - timedelta(seconds=settings.ARENA_REPLY_STALE_SECONDS)
    grace_cutoff = now - timedelta(seconds=settings.ARENA_REPLY_HEARTBEAT_SECONDS)
    swept = 0
    for reply_id in Reply.objects.filter(status=Reply.Status.QUEUED, created_at__lt=queued_cutoff).values_list("id", flat=True):
        # Claim it as the worker would, so a late worker can't start it afterwards.
        if Reply.objects.filter(id=reply_id, status=Reply.Status.QUEUED).update(status=Reply.Status.STREAMING):
            swept += reply_finish(
                reply_id=reply_id, text="", failure="No worker was free to generate this reply. Regenerate to try again.",
                failure_kind="no_worker",
            )
    streaming = Reply.objects.filter(status=Reply.Status.STREAMING, started_at__lt=grace_cutoff).values_list("id", "started_at")
    redis = live_redis()
    for reply_id, started_at in streaming:
        alive = redis.exists(heartbeat_key(reply_id))
        if alive and started_at >= stale_cutoff:
            continue
        text = live_text(reply_id)
        reason = (
            "The worker generating this reply stopped. Regenerate to try again."
            if not alive
            else "This reply took too long and was stopped. Regenerate to try again."
        )
        swept += reply_finish(reply_id=reply_id, text=text, failure=reason, failure_kind="worker_lost" if not alive else "timeout")
    return swept


# --- votes -----------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _identity_pattern(words: tuple[str, ...]) -> re.Pattern | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w.strip().lower()) for w in words if w.strip())
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)


def text_names_identity(text: str) -> bool:
    """Does a reply name a model or vendor ("I am ChatGPT, made by OpenAI")? Replies only, never prompts."""
    pattern = _identity_pattern(tuple(settings.ARENA_IDENTITY_WORDS))
    return bool(pattern and text and pattern.search(text))


@transaction.atomic
def vote_cast(*, battle_id, client: ClientIdentity, outcome: object, turn_seen: tuple[int, int] | None = None) -> Vote:
    """Record the one vote of a battle and reveal the models; the one-to-one key forbids a second.

    `turn_seen`: the (turn index, attempt) the voter's page showed. If another tab of the battle
    has sent a follow-up or regenerated since, the vote would judge replies this page never
    showed: refused with code "stale".
    """
    if outcome not in Vote.Outcome.values:
        raise ArenaError(f"Unknown vote {outcome!r}; use one of {', '.join(Vote.Outcome.values)}.")
    # A vote committed while this waited for the lock isn't in the joined row; the insert below
    # then fails on the one-to-one key, with the same answer.
    battle = battle_get_for_client(battle_id=battle_id, client=client, for_update=True, with_vote=True)
    if battle_has_vote(battle):
        raise NotAllowed("This battle already has a vote.")
    replies = battle_replies_summary(battle)
    # Checked under the battle's lock, which turn_submit and turn_regenerate take too.
    if turn_seen is not None and replies.last_turn != turn_seen:
        raise ArenaError("The replies changed in another tab; here they are now. Read them, then vote.", code="stale")
    if len(replies.statuses) != 2 or any(status != Reply.Status.DONE for status in replies.statuses.values()):
        raise NotAllowed("You can vote once both replies have finished.")
    flagged = replies.names_identity
    _rate_limit(
        "vote", _client_keys(client), settings.ARENA_VOTES_PER_DAY, 86_400,
        "You've reached today's vote limit; thank you, and come back tomorrow.",
    )
    try:
        with transaction.atomic():
            vote = Vote.objects.create(battle=battle, outcome=outcome, client_id=client.client_id, identity_flagged=flagged)
    except IntegrityError:
        raise NotAllowed("This battle already has a vote.") from None
    if _vote_countable(battle=battle, identity_flagged=flagged):
        # Counted in batches by the refresh task (votes_count_pending), not here: counting locks
        # both models' rows, which would queue every vote on a popular pair behind the others.
        transaction.on_commit(leaderboard_refresh_schedule)
    reveal: events.BattleRevealed = {
        "type": "battle.revealed",
        "battle": str(battle.id),
        "outcome": vote.outcome,
        "model_a": battle.model_a.name,
        "model_b": battle.model_b.name,
    }
    transaction.on_commit(lambda: group_publish(events.battle_group(battle.id), reveal))
    return vote


# --- ratings ---------------------------------------------------------------------------------

OUTCOME_CODES = {
    Vote.Outcome.A: ratings.A_WINS,
    Vote.Outcome.B: ratings.B_WINS,
    Vote.Outcome.TIE: ratings.TIE,
    Vote.Outcome.BOTHBAD: ratings.BOTH_BAD,
}


def _vote_countable(*, battle: Battle, identity_flagged: bool) -> bool:
    return battle.anonymous and (settings.ARENA_RATINGS_INCLUDE_FLAGGED or not identity_flagged)


VOTES_COUNT_BATCH = 5000


def _votes_pending():
    pending = Vote.objects.filter(counted=False, battle__anonymous=True)
    if not settings.ARENA_RATINGS_INCLUDE_FLAGGED:
        pending = pending.filter(identity_flagged=False)
    return pending


def votes_count_pending(*, batch_size: int = VOTES_COUNT_BATCH) -> int:
    """Add every vote not yet counted to the pair counts and the online Elo; returns how many.

    Votes are taken in id order (the order they were cast), locked with SKIP LOCKED so two runs
    never count one vote twice, and both models of every pair in the batch are locked in id order
    while their cells and online Elo change, so concurrent runs can't deadlock or lose an update.
    """
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                _votes_pending()
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("id")
                .values_list("id", "battle__model_a_id", "battle__model_b_id", "outcome")[:batch_size]
            )
            if not rows:
                return total
            _votes_add(rows)
        total += len(rows)
        if len(rows) < batch_size:
            return total


def _votes_add(rows: list[tuple[int, int, int, str]]) -> None:
    model_ids = sorted({r[1] for r in rows} | {r[2] for r in rows})
    models = {m.id: m for m in ChatModel.objects.select_for_update().filter(id__in=model_ids).order_by("id")}
    cells: dict[tuple[int, int, int], int] = {}
    elo = {model_id: model.elo_online for model_id, model in models.items()}
    for _, a, b, outcome in rows:
        code = OUTCOME_CODES[outcome]
        cells[(a, b, code)] = cells.get((a, b, code), 0) + 1
        elo[a], elo[b] = ratings.elo_step(elo[a], elo[b], code)
    existing = set(
        PairCount.objects.filter(model_a_id__in=model_ids, model_b_id__in=model_ids)
        .values_list("model_a_id", "model_b_id", "outcome")
    )
    for (a, b, code), n in cells.items():
        if (a, b, code) in existing:
            PairCount.objects.filter(model_a_id=a, model_b_id=b, outcome=code).update(count=F("count") + n)
    PairCount.objects.bulk_create(
        [PairCount(model_a_id=a, model_b_id=b, outcome=code, count=n) for (a, b, code), n in cells.items() if (a, b, code) not in existing]
    )
    for model_id, model in models.items():
        model.elo_online = elo[model_id]
    ChatModel.objects.bulk_update(models.values(), ["elo_online"])
    Vote.objects.filter(id__in=[r[0] for r in rows]).update(counted=True)


def leaderboard_refresh_schedule() -> None:
    """Queue one live refresh; votes arriving meanwhile ride along with it (debounced)."""
    from arena.tasks import leaderboard_live_refresh

    if cache.add("leaderboard:live-pending", 1, timeout=5):
        leaderboard_live_refresh.apply_async(countdown=0.05)


@transaction.atomic
def leaderboard_rebuild() -> int:
    """Recount every vote from the database (after an import, a deletion or a change of the
    counting rules)."""
    # Resetting every model's Elo locks their rows: a concurrent counting run waits for this
    # transaction before it can count (or mark) any vote.
    ChatModel.objects.update(elo_online=ratings.INITIAL_RATING)
    PairCount.objects.all().delete()
    Vote.objects.update(counted=False)
    eligible = Vote.objects.filter(battle__anonymous=True)
    if not settings.ARENA_RATINGS_INCLUDE_FLAGGED:
        eligible = eligible.filter(identity_flagged=False)
    # Marked first, then read back by that mark: a vote committed in between is neither marked
    # nor counted here (the next counting run takes it), never marked without being counted.
    eligible.update(counted=True)
    rows = list(
        eligible.filter(counted=True).order_by("created_at", "id").values_list("battle__model_a_id", "battle__model_b_id", "outcome")
    )
    # Published after the commit even with no votes left (the last one was deleted).
    transaction.on_commit(leaderboard_refresh_schedule)
    if not rows:
        return 0
    ids = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {model_id: i for i, model_id in enumerate(ids)}
    a = np.fromiter((index[r[0]] for r in rows), dtype=np.int64, count=len(rows))
    b = np.fromiter((index[r[1]] for r in rows), dtype=np.int64, count=len(rows))
    o = np.fromiter((OUTCOME_CODES[r[2]] for r in rows), dtype=np.int64, count=len(rows))
    counts = ratings.counts_from_battles(a, b, o, len(ids))
    elo = ratings.elo_online(a, b, o, len(ids))
    cells = [
        PairCount(model_a_id=ids[i], model_b_id=ids[j], outcome=k, count=int(counts[i, j, k]))
        for i, j, k in zip(*np.nonzero(counts), strict=True)
    ]
    PairCount.objects.bulk_create(cells, batch_size=5000)
    for model_id, rating in zip(ids, elo, strict=True):
        ChatModel.objects.filter(id=model_id).update(elo_online=float(rating))
    return len(rows)


def leaderboard_rebuild_schedule() -> None:
    """Queue a full recount (`leaderboard_rebuild`) for a worker."""
    from arena.tasks import leaderboard_rebuild as rebuild_task

    rebuild_task.delay()


@transaction.atomic
def votes_delete(*, vote_ids: list[int]) -> int:
    """Delete votes and take them out of the leaderboard; returns how many were deleted.

    A counted vote is in the pair counts and moved its models' online Elo, which later votes built
    on, so only a recount removes it: a full rebuild is queued once the deletion commits.
    """
    deleted, _ = Vote.objects.filter(id__in=vote_ids).delete()
    if deleted:
        transaction.on_commit(leaderboard_rebuild_schedule)
    return deleted


@transaction.atomic
def battles_delete(*, battle_ids: list) -> int:
    """Delete battles (their turns, replies and vote with them); recount if a vote went too."""
    had_votes = Vote.objects.filter(battle_id__in=battle_ids).exists()
    _, per_model = Battle.objects.filter(id__in=battle_ids).delete()
    if had_votes:
        transaction.on_commit(leaderboard_rebuild_schedule)
    return per_model.get(Battle._meta.label, 0)


# --- model registry --------------------------------------------------------------------------


def model_failures_key(model_id: int) -> str:
    """The Redis counter of a model's failed generations in the current window."""
    return f"arena:health:failures:{model_id}"


def model_failure_record(*, model_id: int, error: str) -> bool:
    """Count a failed generation; enough of them in the window mark the model unhealthy."""
    failures = _counters_incr([model_failures_key(model_id)], settings.ARENA_MODEL_FAILURE_WINDOW_SECONDS)[0]
    if failures < settings.ARENA_MODEL_FAILURES_UNHEALTHY:
        return False
    ChatModel.objects.filter(id=model_id).update(
        healthy=False, last_error=f"{failures} failed generations recently; last: {error}"[:2000],
        health_checked_at=timezone.now(),
    )
    return True


@dataclass(frozen=True)
class HealthVerdict:
    """What a probe's result came to once stored: the model's health and why not."""

    healthy: bool
    error: str


def model_health_record(
    *, model_id: int, healthy: bool, error: str = "", info: dict | None = None, endpoint_url: str | None = None
) -> HealthVerdict:
    """Store a probe's verdict and return it: a server that answers is not enough when the model
    failed generations recently (it stays unhealthy until the window ends) or when its parameters
    don't fit the limits the server's /info has just reported (every generation would fail).

    `endpoint_url`: the server probed. The verdict is dropped if the model has been pointed
    elsewhere meanwhile (it says nothing about the new server, whose own probe is queued).
    """
    model = ChatModel.objects.filter(id=model_id)
    if endpoint_url is not None:
        model = model.filter(endpoint_url=endpoint_url)
    if healthy and info:
        # The admin can only check limits it knows: a new model is saved before its server's /info
        # is, so a max_new_tokens beyond the server's total would otherwise slip through.
        row = model.values_list("parameters", "template").first()
        preset = PRESETS.get(row[1]) if row else None
        problems = parameters_problems(row[0], template_stops=preset.stop if preset else (), server_info=info) if row else []
        if problems:
            healthy, error = False, "Its parameters don't fit this server: " + " ".join(problems)
    failures = int(live_redis().get(model_failures_key(model_id)) or 0)
    if healthy and failures >= settings.ARENA_MODEL_FAILURES_UNHEALTHY:
        healthy, error = False, f"/health is fine but {failures} generations failed recently"
    fields = {"healthy": healthy, "last_error": error[:2000], "health_checked_at": timezone.now()}
    if info:
        fields["server_info"] = info
    model.update(**fields)
    return HealthVerdict(healthy=healthy, error=error)


NOT_PROBED_YET = "Not probed yet: the model joins battles once its server answers."


def model_server_changed(*, model_id: int) -> None:
    """A model was added, or pointed at another server: out of the draw until that server answers.

    Its health, server info and failure count belonged to the old server (or to nobody), so they
    are cleared, and a probe of the new server is queued for when this transaction commits: a
    server that answers brings the model in within seconds, a dead or mistyped one shows its
    error in the admin. The periodic probe catches anything this misses.
    """
    ChatModel.objects.filter(id=model_id).update(
        healthy=False, health_checked_at=None, server_info={}, last_error=NOT_PROBED_YET
    )
    live_redis().delete(model_failures_key(model_id))
    transaction.on_commit(lambda: _model_probe_queue(model_id))


def _model_probe_queue(model_id: int) -> None:
    from inference.tasks import NEW_MODEL_PROBE_RETRIES, models_probe  # tasks import services

    try:
        models_probe.delay(model_ids=[model_id], retries=NEW_MODEL_PROBE_RETRIES)
    except Exception:  # noqa: BLE001 - the model is saved; the periodic probe will get to it
        log.warning("Could not queue the probe of model %s; the periodic probe will check it", model_id, exc_info=True)
