"""When a battle accepts a follow-up, a regenerate, a retry of one side, or a vote.

One home for these rules: the services refuse what they don't allow, and the page is told what
they allow (`controls`, in every state snapshot and with every finished reply and reveal), so it
never works the rules out for itself. Pure: computed from plain values, no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from arena.events import Controls, FailureFacts
from inference.failures import FailureKind

SIDES = ("a", "b")
DONE, FAILED = "done", "failed"  # Reply.Status values, as plain strings: the rules need no Django


@dataclass(frozen=True)
class SideNow:
    """The current attempt of one side of the last turn."""

    status: str
    failure_kind: str = ""

    @property
    def hopeless(self) -> bool:
        """Failed in a way no retry can fix."""
        if self.status != FAILED:
            return False
        try:
            return FailureKind(self.failure_kind).permanent
        except ValueError:  # no kind (a reply failed before kinds were stored)
            return False


@dataclass(frozen=True)
class BattleNow:
    voted: bool
    turn_index: int | None  # the last turn's index; None before the first
    sides: Mapping[str, SideNow]  # the last turn's current replies
    max_turns: int

    @property
    def finished(self) -> bool:
        """Both replies of the last turn are done."""
        return len(self.sides) == 2 and all(s.status == DONE for s in self.sides.values())

    @property
    def ended(self) -> bool:
        """Both replies of the last turn have ended, well or not."""
        return len(self.sides) == 2 and all(s.status in (DONE, FAILED) for s in self.sides.values())


def send_refusal(now: BattleNow) -> str:
    """Why a follow-up prompt is refused; "" when it is accepted."""
    if now.voted:
        return "This battle is over; start a new round."
    if now.turn_index is None:
        return ""
    if not now.finished:
        return "Wait until both replies have finished (regenerate a failed one)."
    if now.turn_index + 1 >= now.max_turns:
        return f"A battle has at most {now.max_turns} turns; vote or start a new round."
    return ""


def regenerate_refusal(now: BattleNow, side: str | None) -> str:
    """Why re-running the last turn (both sides, or only `side`) is refused; "" when accepted."""
    if now.voted:
        return "This battle is over; start a new round."
    if now.turn_index is None:
        return "Nothing to regenerate yet."
    if not now.ended:
        return "Wait until both replies have finished."
    hopeless = [s for s in SIDES if s in now.sides and now.sides[s].hopeless]
    if (side is None and hopeless) or side in hopeless:
        return "Retrying won't help: " + _hopeless_reason(now, hopeless[0] if side is None else side)
    return ""


def vote_refusal(now: BattleNow) -> str:
    if now.voted:
        return "This battle already has a vote."
    if not now.finished:
        return "You can vote once both replies have finished."
    return ""


def _hopeless_reason(now: BattleNow, side: str) -> str:
    if now.sides[side].failure_kind == FailureKind.TOO_LONG:
        return f"this conversation is too long for model {side.upper()}. Start a new round with a shorter prompt."
    return f"model {side.upper()} can't answer until an admin changes its settings. Start a new round."


def _send_hint(now: BattleNow) -> str:
    """The page's sentence for why Send is off."""
    if now.voted or now.turn_index is None:
        return ""
    if now.finished:
        if now.turn_index + 1 >= now.max_turns:
            return f"This battle has reached its {now.max_turns} turns; vote, or start a new round."
        return ""
    if not now.ended:
        return "Both models are still answering; you can send your next prompt when they have finished."
    failed = [s for s in SIDES if now.sides[s].status == FAILED]
    hopeless = [s for s in failed if now.sides[s].hopeless]
    if hopeless:
        one = f"model {hopeless[0].upper()}" if len(hopeless) == 1 else ""
        if any(now.sides[s].failure_kind == FailureKind.TOO_LONG for s in hopeless):
            return (f"This conversation is too long for {one or 'both models'}, so retrying won't help. "
                    "Start a new round with a shorter prompt.")
        who = f"{one} can't" if one else "neither model can"
        return f"Retrying won't help: {who} answer until an admin changes its settings. Start a new round."
    if len(failed) == 2:
        return "Both replies failed. Press Regenerate (or start a new round) before sending another prompt."
    return f"Model {failed[0].upper()}'s reply failed. Retry it (or start a new round) before sending another prompt."


def battle_controls(now: BattleNow) -> Controls:
    """What the battle accepts now, as the page is told it."""
    return {
        "may_send": not send_refusal(now),
        "may_vote": not vote_refusal(now),
        "may_regenerate": not regenerate_refusal(now, None),
        "may_retry": [
            s for s in SIDES if s in now.sides and now.sides[s].status == FAILED and not regenerate_refusal(now, s)
        ],
        "hint": _send_hint(now),
    }


def controls_closed() -> Controls:
    """A battle that has its vote: nothing more is accepted in it."""
    return {"may_send": False, "may_vote": False, "may_regenerate": False, "may_retry": [], "hint": ""}


def failure_facts(kind: str) -> FailureFacts:
    """What a page needs to know of a failed reply beyond its sentence: its kind, and whether
    Retry or Regenerate can help (not for a conversation too long for the model, or a model an
    admin must fix)."""
    return {"failure_kind": kind, "retryable": not SideNow(FAILED, kind).hopeless}
