"""Rating bookkeeping: counting votes into the pair counts and online Elo, recounting them all."""

from __future__ import annotations

import uuid
from functools import partial

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F

from arena import metrics, queue, ratings
from arena.models import ChatModel, PairCount, Vote
from arena.sampling import vote_weight, vote_weights
from arena.services.screening import votes_screen
from arena.services.traits import battles_traits_fill

VOTES_COUNT_BATCH = 5000
# What counting needs of a vote: its id, its pair and outcome, how its pair was drawn.
_VOTE_FIELDS = (
    "id", "battle__model_a_id", "battle__model_b_id", "outcome", "battle__draw_probability", "battle__draw_pairs",
    "battle_id",
)
_VoteRow = tuple[int, int, int, str, float | None, int | None, uuid.UUID]
LIVE_REFRESH_PENDING = "leaderboard:live-pending"


def votes_count_pending(*, batch_size: int = VOTES_COUNT_BATCH) -> int:
    """Add every countable vote not yet counted to the pair counts and the online Elo; returns how many.

    Votes are taken in id order (the order they were cast), locked with SKIP LOCKED so two runs
    never count one vote twice, and both models of every pair in the batch are locked in id order
    while their cells and online Elo change, so concurrent runs can't deadlock or lose an update.
    """
    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                Vote.objects.countable().filter(counted=False)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("id")
                .values_list(*_VOTE_FIELDS)[:batch_size]
            )
            if not rows:
                return total
            taken = len(rows)
            # Traits are the battle's, whatever review decides of the vote; read and labelled by
            # a task of their own, off the path that makes a vote show on the leaderboard.
            transaction.on_commit(partial(queue.battle_traits_queue, battle_ids=[str(r[6]) for r in rows]))
            if settings.ARENA_VOTE_DETECTION:
                # Flagged votes wait for review instead of being counted (arena/services/screening.py).
                screened = votes_screen(vote_ids=[r[0] for r in rows])
                if screened.held and not settings.ARENA_RATINGS_INCLUDE_FLAGGED:
                    rows = [r for r in rows if r[0] not in screened.held]
                if screened.recount and not settings.ARENA_RATINGS_INCLUDE_FLAGGED:
                    transaction.on_commit(leaderboard_rebuild_schedule)
            if rows:
                _votes_add(rows)
        metrics.VOTES_COUNTED.inc(len(rows))  # committed
        total += len(rows)
        if taken < batch_size:
            return total


def _votes_add(rows: list[_VoteRow]) -> None:
    model_ids = sorted({r[1] for r in rows} | {r[2] for r in rows})
    models = {m.id: m for m in ChatModel.objects.select_for_update().filter(id__in=model_ids).order_by("id")}
    cells: dict[tuple[int, int, int], tuple[int, float, float]] = {}
    elo = {model_id: model.elo_online for model_id, model in models.items()}
    for _, a, b, outcome, probability, pairs, _ in rows:
        code = Vote.Outcome(outcome).code
        n, w, w2 = cells.get((a, b, code), (0, 0.0, 0.0))
        weight = vote_weight(probability, pairs)
        cells[(a, b, code)] = (n + 1, w + weight, w2 + weight * weight)
        elo[a], elo[b] = ratings.elo_step(elo[a], elo[b], code)
    existing = set(
        PairCount.objects.filter(model_a_id__in=model_ids, model_b_id__in=model_ids)
        .values_list("model_a_id", "model_b_id", "outcome")
    )
    for (a, b, code), (n, w, w2) in cells.items():
        if (a, b, code) in existing:
            PairCount.objects.filter(model_a_id=a, model_b_id=b, outcome=code).update(
                count=F("count") + n, weight=F("weight") + w, weight_sq=F("weight_sq") + w2
            )
    PairCount.objects.bulk_create([
        PairCount(model_a_id=a, model_b_id=b, outcome=code, count=n, weight=w, weight_sq=w2)
        for (a, b, code), (n, w, w2) in cells.items() if (a, b, code) not in existing
    ])
    for model_id, model in models.items():
        model.elo_online = elo[model_id]
    ChatModel.objects.bulk_update(models.values(), ["elo_online"])
    Vote.objects.filter(id__in=[r[0] for r in rows]).update(counted=True)


def leaderboard_refresh_schedule() -> None:
    """Queue one live refresh; votes arriving meanwhile ride along with it (debounced)."""
    if cache.add(LIVE_REFRESH_PENDING, 1, timeout=5):
        queue.leaderboard_refresh_queue(countdown=0.05)


@transaction.atomic
def leaderboard_rebuild() -> int:
    """Recount every vote from the database (after an import, a deletion or a change of the
    counting rules)."""
    # Resetting every model's Elo locks their rows: a concurrent counting run waits for this
    # transaction before it can count (or mark) any vote.
    ChatModel.objects.update(elo_online=ratings.INITIAL_RATING)
    PairCount.objects.all().delete()
    Vote.objects.update(counted=False)
    eligible = Vote.objects.countable()
    # Marked first, then read back by that mark: a vote committed in between is neither marked
    # nor counted here (the next counting run takes it), never marked without being counted.
    eligible.update(counted=True)
    rows = list(eligible.filter(counted=True).order_by("created_at", "id").values_list(*_VOTE_FIELDS))
    # Published after the commit even with no votes left (the last one was deleted).
    transaction.on_commit(leaderboard_refresh_schedule)
    battles_traits_fill()
    if not rows:
        return 0
    ids = sorted({r[1] for r in rows} | {r[2] for r in rows})
    index = {model_id: i for i, model_id in enumerate(ids)}
    a = np.fromiter((index[r[1]] for r in rows), dtype=np.int64, count=len(rows))
    b = np.fromiter((index[r[2]] for r in rows), dtype=np.int64, count=len(rows))
    o = np.fromiter((Vote.Outcome(r[3]).code for r in rows), dtype=np.int64, count=len(rows))
    # None (not recorded) becomes NaN, which vote_weights counts as 1
    w = vote_weights(np.array([r[4] for r in rows], dtype=np.float64), np.array([r[5] for r in rows], dtype=np.float64))
    counts = ratings.counts_from_battles(a, b, o, len(ids))
    sums = ratings.counts_from_battles(a, b, o, len(ids), weights=w)
    squares = ratings.counts_from_battles(a, b, o, len(ids), weights=w * w)
    elo = ratings.elo_online(a, b, o, len(ids))
    cells = [
        PairCount(
            model_a_id=ids[i], model_b_id=ids[j], outcome=k, count=int(counts[i, j, k]),
            weight=float(sums[i, j, k]), weight_sq=float(squares[i, j, k]),
        )
        for i, j, k in zip(*np.nonzero(counts), strict=True)
    ]
    PairCount.objects.bulk_create(cells, batch_size=5000)
    for model_id, rating in zip(ids, elo, strict=True):
        ChatModel.objects.filter(id=model_id).update(elo_online=float(rating))
    return len(rows)


def leaderboard_rebuild_schedule() -> None:
    """Queue a full recount (`leaderboard_rebuild`) for a worker."""
    queue.leaderboard_rebuild_queue()
