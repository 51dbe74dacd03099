"""Event payloads shared by their producers (generation tasks, services) and the websocket consumers.

Each payload travels over the channel layer as a dict whose `type` names the consumer method that
handles it ("reply.delta" → `reply_delta`). The consumer forwards it to the browser with `type`
rewritten to the public name (`delta`, `done`, ...). None of these carries a model's name except
`BattleRevealed`, which is only sent after the vote has committed.
"""

from typing import Literal, TypedDict


def battle_group(battle_id: object) -> str:
    return f"battle-{battle_id}"


LEADERBOARD_GROUP = "leaderboard"


class ReplyRef(TypedDict):
    battle: str
    turn: int  # turn index within the battle
    attempt: int
    side: Literal["a", "b"]


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
    ttft_ms: int | None
    duration_ms: int | None


class ReplyFailed(ReplyRef):
    type: Literal["reply.failed"]
    reason: str
    text: str  # whatever was received before the failure
    # inference.backends.failure_facts of the reply's stored failure kind:
    failure_kind: str  # GenerationFailure.kind: "too_long", "misconfigured", "unavailable", …
    retryable: bool  # false when Retry / Regenerate would fail the same way


class BattleRevealed(TypedDict):
    type: Literal["battle.revealed"]
    battle: str
    outcome: str
    model_a: str
    model_b: str


class LeaderboardUpdated(TypedDict):
    type: Literal["leaderboard.updated"]
    leaderboard: dict


def reply_ref(*, battle_id: object, turn_index: int, attempt: int, side: str) -> ReplyRef:
    return {"battle": str(battle_id), "turn": turn_index, "attempt": attempt, "side": side}  # type: ignore[typeddict-item]
