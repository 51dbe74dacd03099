"""Event payloads shared by their producers (generation tasks, services) and the websocket consumers.

Each payload travels over the channel layer as a dict whose `type` names the consumer method that
handles it ("reply.delta" → `reply_delta`). The consumer forwards it to the browser with `type`
rewritten to the public name (`delta`, `done`, ...). None of these carries a model's name except
`BattleRevealed`, which is only sent after the vote has committed. `arena.publish.group_publish`
accepts these types only.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

Side = Literal["a", "b"]


def battle_group(battle_id: object) -> str:
    return f"battle-{battle_id}"


LEADERBOARD_GROUP = "leaderboard"


class Controls(TypedDict):
    """What a battle accepts now (arena.rules), so the page needn't work it out."""

    may_send: bool  # a follow-up prompt
    may_vote: bool
    may_regenerate: bool  # both sides of the last turn again
    may_retry: list[str]  # sides whose failed reply may be retried
    hint: str  # why Send is off; "" when there is nothing to say


class FailureFacts(TypedDict):
    failure_kind: str  # inference.failures.FailureKind: "too_long", "misconfigured", "unavailable", …
    retryable: bool  # false when Retry / Regenerate would fail the same way


class ReplyRef(TypedDict):
    battle: str
    turn: int  # turn index within the battle
    attempt: int
    side: Side


class ReplyStarted(ReplyRef):
    type: Literal["reply.started"]


class ReplyDelta(ReplyRef):
    type: Literal["reply.delta"]
    offset: int  # characters of this reply before `text`; lets a client drop duplicates
    text: str


class ReplyDone(ReplyRef):
    type: Literal["reply.done"]
    text: str  # the authoritative final text (stop sequences stripped)
    token_count: int
    # "content_filter": the server's filter ended it (the page says so); else stop, length...
    finish_reason: str
    ttft_ms: int | None
    duration_ms: int | None
    controls: Controls  # the battle's, now that this reply is done


class ReplyFailed(ReplyRef, FailureFacts):
    type: Literal["reply.failed"]
    reason: str
    text: str  # whatever was received before the failure
    controls: Controls


class BattleRevealed(TypedDict):
    type: Literal["battle.revealed"]
    battle: str
    outcome: str
    model_a: str
    model_b: str
    controls: Controls


class LeaderboardUpdated(TypedDict):
    type: Literal["leaderboard.updated"]
    leaderboard: dict[str, Any]


Event = ReplyStarted | ReplyDelta | ReplyDone | ReplyFailed | BattleRevealed | LeaderboardUpdated


def reply_ref(*, battle_id: object, turn_index: int, attempt: int, side: str) -> ReplyRef:
    if side not in ("a", "b"):
        raise ValueError(f"side must be 'a' or 'b', not {side!r}")
    return {"battle": str(battle_id), "turn": turn_index, "attempt": attempt, "side": "a" if side == "a" else "b"}
