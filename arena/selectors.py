"""Reads. Nothing here writes; nothing here returns a model's name for a battle without a vote."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count

from arena.battle_rows import BattleRow, battle_row, battle_state_rows, battle_summary_rows
from arena.categories import OVERALL
from arena.clients import ClientIdentity
from arena.errors import NotFound
from arena.leaderboard import CACHE_CURRENT, leaderboard_snapshot
from arena.leaderboard_variants import variant_snapshot
from arena.models import Battle, ChatModel, JudgeAnswer, JudgeGame, JudgeRun, Reply, Vote
from arena.pairing import CACHE_PAIRING, PairingState, pairing_state
from arena.rules import BattleNow, SideNow, battle_controls, controls_closed, failure_facts


def _drawable():
    return ChatModel.objects.filter(enabled=True, healthy=True, weight__gt=0)


def models_drawable() -> list[ChatModel]:
    return list(_drawable())


def models_drawable_weights() -> list[tuple[int, float]]:
    """(id, weight) of every drawable model: what a draw needs, no rows built."""
    return list(_drawable().values_list("id", "weight"))


def models_available() -> bool:
    """Whether a new battle can start: at least two drawable models (one small query, no rows built)."""
    return _drawable()[:2].count() >= 2


def _battle_uuid(battle_id) -> uuid.UUID:
    try:
        return uuid.UUID(str(battle_id))
    except ValueError:
        raise NotFound("This battle doesn't exist or isn't yours.") from None


def battle_get_for_client(
    *, battle_id: uuid.UUID | str, client: ClientIdentity, for_update: bool = False
) -> Battle:
    """The client's battle (another client's looks missing)."""
    battle_id = _battle_uuid(battle_id)
    qs = Battle.objects.select_related("model_a", "model_b")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    try:
        return qs.get(id=battle_id, client_id=client.client_id)
    except Battle.DoesNotExist:
        # Another client's battle looks exactly like a missing one.
        raise NotFound("This battle doesn't exist or isn't yours.") from None


@dataclass(frozen=True)
class RepliesSummary:
    """A battle's replies as the rules need them, read in one query."""

    last_turn: tuple[int, int] | None  # (index, attempt) of the last turn; None before the first
    sides: dict[str, SideNow]  # the last turn's current replies
    names_identity: bool  # whether any reply of the battle named a model or vendor


def battle_replies_summary(battle: Battle | BattleRow) -> RepliesSummary:
    rows = battle_summary_rows(battle.id)
    last = max(((row[0], row[1]) for row in rows), default=None)
    sides = {
        side: SideNow(status, kind) for index, _, attempt, side, status, kind, _ in rows if (index, attempt) == last
    }
    return RepliesSummary(last_turn=last, sides=sides, names_identity=any(row[6] for row in rows))


def battle_now(
    battle: Battle | BattleRow, *, summary: RepliesSummary | None = None, voted: bool | None = None
) -> BattleNow:
    """The battle as its rules (arena.rules) see it; reads what isn't given."""
    summary = summary or battle_replies_summary(battle)
    if voted is None:
        voted = Vote.objects.filter(battle_id=battle.id).exists()
    return BattleNow(
        voted=voted,
        turn_index=summary.last_turn[0] if summary.last_turn else None,
        sides=summary.sides,
        max_turns=settings.ARENA_MAX_TURNS,
    )


def battle_row_for_client(*, battle_id: uuid.UUID | str, client: ClientIdentity, for_update: bool = False) -> BattleRow:
    """The client's battle as a plain row with its models' names and its vote (another client's
    looks missing); see `battle_rows.battle_row` for `for_update`."""
    row = battle_row(battle_id=_battle_uuid(battle_id), client_id=client.client_id, for_update=for_update)
    if row is None:
        raise NotFound("This battle doesn't exist or isn't yours.")
    return row


def battle_state_for_client(
    *, battle_id: uuid.UUID | str, client: ClientIdentity, live_text: Callable[[uuid.UUID | None], str] | None = None
) -> dict[str, Any]:
    """Everything the arena page needs to (re)draw a battle. Names only after the vote.

    `live_text(stream_id) -> str` supplies the text so far of a reply still streaming.
    """
    battle = battle_row_for_client(battle_id=battle_id, client=client)
    # One query, plain tuples: every turn's current replies (a turn is created with its replies).
    rows = battle_state_rows(battle.id)
    state_turns: list[dict[str, Any]] = []
    for (
        stream_id, index, attempt, prompt, side, status, text, reason, kind, tokens, finish_reason, ttft_ms,
        duration_ms,
    ) in rows:
        if not state_turns or state_turns[-1]["index"] != index:
            state_turns.append({"index": index, "attempt": attempt, "prompt": prompt, "sides": {}})
        if status == Reply.Status.STREAMING and live_text is not None:
            text = live_text(stream_id)
        state_turns[-1]["sides"][side] = {
            "status": status,
            "text": text,
            "offset": len(text),
            "reason": reason,
            "token_count": tokens,
            "finish_reason": finish_reason,
            "ttft_ms": ttft_ms,
            "duration_ms": duration_ms,
        }
        if status == Reply.Status.FAILED:
            state_turns[-1]["sides"][side].update(failure_facts(kind))
    last = state_turns[-1] if state_turns else None
    # The rows read above already hold what the rules need: no second query for the summary.
    summary = RepliesSummary(
        last_turn=(last["index"], last["attempt"]) if last else None,
        sides={s: SideNow(side["status"], side.get("failure_kind", "")) for s, side in last["sides"].items()}
        if last else {},
        names_identity=False,  # not a rule's concern
    )
    now = battle_now(battle, summary=summary, voted=battle.voted)
    controls = controls_closed() if battle.voted else battle_controls(now)
    state: dict[str, Any] = {
        "battle": str(battle.id), "turns": state_turns, "voted": battle.voted, "controls": controls,
    }
    if battle.voted:
        state["reveal"] = {
            "outcome": battle.vote_outcome, "model_a": battle.model_a_name, "model_b": battle.model_b_name,
        }
    return state


def models_to_probe(*, model_ids: list[int] | None = None) -> list[ChatModel]:
    """Every enabled model (the periodic probe), or the given ones that have a server."""
    if model_ids is None:
        return list(ChatModel.objects.filter(enabled=True))
    return list(ChatModel.objects.filter(id__in=model_ids).exclude(endpoint_url=""))


def leaderboard_current() -> dict[str, Any]:
    """The last published leaderboard, or a fresh one if none is cached (e.g. Redis restarted)."""
    snapshot = cache.get(CACHE_CURRENT)
    if snapshot is None:
        snapshot = leaderboard_snapshot()
        cache.set(CACHE_CURRENT, snapshot, timeout=None)
    return snapshot


def leaderboard_for_view(*, style: bool, category: str) -> dict[str, Any]:
    """The leaderboard a page asked for: the live one, or a category's and/or style-controlled."""
    current = leaderboard_current()
    if not style and category == OVERALL:
        return current
    return variant_snapshot(style=style, category=category, total_votes=current["total_votes"])


def pairing_current() -> PairingState:
    """What the sampling policy needs, as the last leaderboard refresh computed it (or fresh)."""
    state = cache.get(CACHE_PAIRING)
    if state is None:
        state = pairing_state()
        cache.set(CACHE_PAIRING, state, timeout=None)
    return state


@dataclass(frozen=True)
class RunProgress:
    """A judged run's work by state: answers (per prompt and model) and verdicts (per ordered pair)."""

    status: str
    generations: int
    answers: dict[str, int]
    games: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + sum(self.games.values())

    @property
    def finished(self) -> int:
        """Items ended, whatever the outcome."""
        open_ = ("pending", "claimed")
        return sum(n for s, n in self.answers.items() if s not in open_) + sum(
            n for s, n in self.games.items() if s not in open_
        )

    def summary(self) -> str:
        g = self.games
        return (
            f"{self.finished}/{self.total} done · verdicts {g.get('done', 0)} · invalid {g.get('invalid', 0)} · "
            f"skipped {g.get('skipped', 0)} · answers failed {self.answers.get('failed', 0)} · "
            f"{self.generations} generations"
        )


def judge_run_progress(run_id: int) -> RunProgress:
    run = JudgeRun.objects.values("status", "generations").get(id=run_id)

    def by_status(model) -> dict[str, int]:
        return dict(model.objects.filter(run_id=run_id).values_list("status").annotate(n=Count("id")))

    return RunProgress(run["status"], run["generations"], by_status(JudgeAnswer), by_status(JudgeGame))
