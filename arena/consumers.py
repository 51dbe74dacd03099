"""The arena websocket: a thin translator between browser frames and services/events.

Browser → server, one JSON object per frame:
  {"action": "prompt", "battle": <id or null>, "text": "..."}   (null: start a new battle)
  {"action": "regenerate", "battle": <id>, "side": "a" | "b" | null}
  {"action": "vote", "battle": <id>, "outcome": "a" | "b" | "tie" | "bothbad", "turn": <index>, "attempt": <n>}
      (turn and attempt, optional: the last turn the page showed; a vote on anything else is refused)
  {"action": "join", "battle": <id>}          (after a reconnect: snapshot, then live events)
  {"action": "new_round"}
Server → browser: {"type": "state", "state": {...}}, {"type": "started" | "delta" | "done" |
"failed", ...}, {"type": "revealed", ...}, {"type": "error", "code": ..., "message": ...}.
A `failed` event and a failed side of a `state` carry `retryable` (false: a retry would fail the
same way, e.g. the conversation is too long for the model) and `failure_kind`. A `state`, `done`,
`failed` and `revealed` carry `controls` (arena.rules): what the battle accepts now.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TypeGuard

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections

from arena import events, metrics, selectors, services
from arena.access import leaderboard_members_only, member_still_signed_in, members_required
from arena.clients import ClientIdentity, client_identity, client_ip
from arena.errors import ArenaError, NotFound
from arena.live import live_text

log = logging.getLogger(__name__)

ACTIONS = ("prompt", "regenerate", "vote", "join", "new_round")


def db(func):
    """Run a service or selector in the loop's thread pool rather than on the one thread-sensitive
    thread all database work of this process would otherwise queue on: services are
    self-contained (their own transaction, a connection from the pool), so one socket's query
    needn't wait for another's.

    The connection goes back to the pool inside the call itself, where Django's connection
    handler sees it; channels' `database_sync_to_async` tidies up outside the call's context,
    which off the shared thread would leave connections open.
    """

    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)


class DirectDispatch:
    """Events go straight to their handlers.

    channels runs `close_old_connections` on the process's one thread-sensitive thread before
    every event, which queues every streamed token behind database work. These consumers reach
    the database only through `db()`, which gives its connection back itself, so the hop does
    nothing for them.
    """

    async def dispatch(self, message: dict) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


def _signed_in_user_id(scope) -> int | None:
    """The account the socket's session is signed in to (Channels' AuthMiddleware), if any."""
    user = scope.get("user")
    return user.pk if user is not None and user.is_authenticated else None


def _battle_id_check(battle_id: str) -> None:
    """NotFound unless it is a battle id as the server writes them (a group's name is made of it)."""
    try:
        canonical = str(uuid.UUID(battle_id))
    except ValueError:
        canonical = ""
    if canonical != battle_id:
        raise NotFound("This battle doesn't exist or isn't yours.")


def _turn_seen(frame: dict) -> tuple[int, int] | None:
    """The (turn, attempt) a vote frame says its page showed; None if it doesn't say."""
    turn, attempt = frame.get("turn"), frame.get("attempt")
    if turn is None and attempt is None:
        return None
    if not (_whole(turn) and _whole(attempt)):
        raise ArenaError("turn and attempt must be whole numbers.")
    return turn, attempt


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SocketsCounted:
    """Counts the sockets accepted and not yet closed (`arena_websockets_open{page=...}`)."""

    page = ""
    _counted = False

    async def accept(self, subprotocol: str | None = None, headers: list | None = None) -> None:
        await super().accept(subprotocol, headers)  # type: ignore[misc]
        metrics.WEBSOCKETS_OPEN.labels(page=self.page).inc()
        self._counted = True

    async def websocket_disconnect(self, message: dict) -> None:
        try:
            await super().websocket_disconnect(message)  # type: ignore[misc]
        finally:  # it ends by raising StopConsumer
            if self._counted:
                metrics.WEBSOCKETS_OPEN.labels(page=self.page).dec()
                self._counted = False


class ArenaConsumer(SocketsCounted, DirectDispatch, AsyncWebsocketConsumer):
    page = "arena"
    battle_id: str | None = None
    client: ClientIdentity

    session_key = ""

    async def connect(self) -> None:
        session = self.scope.get("session")
        if session is None or not session.session_key:
            # The page view creates the session; a socket without one didn't come from our page.
            await self.close(code=4401)
            return
        user_id = _signed_in_user_id(self.scope) if members_required() else None
        if members_required() and user_id is None:
            await self.close(code=4401)
            return
        self.session_key = session.session_key
        headers = dict(self.scope.get("headers") or [])
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1") or None
        peer = (self.scope.get("client") or [None])[0]
        self.client = client_identity(
            session_key=session.session_key, ip=client_ip(peer, forwarded), user_id=user_id
        )
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.battle_id:
            await self.channel_layer.group_discard(events.battle_group(self.battle_id), self.channel_name)

    # --- browser → server ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        max_frame = settings.ARENA_PROMPT_MAX_CHARS * 4 + 4096
        if text_data is None or len(text_data) > max_frame:
            await self._error("bad_frame", "Frames must be JSON text of reasonable size.")
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            await self._error("bad_frame", "That message wasn't valid JSON.")
            return
        if not isinstance(frame, dict) or frame.get("action") not in ACTIONS:
            await self._error("bad_frame", f"Each message needs an action: one of {', '.join(ACTIONS)}.")
            return
        action = frame["action"]
        if self.client.user_id is not None and not await db(member_still_signed_in)(
            user_id=self.client.user_id, session_key=self.session_key
        ):
            # Signed out (elsewhere) or deactivated since the socket opened: nothing more from it.
            await self._error("signed_out", "You've been signed out; sign in again to go on.", action=action)
            await self.close(code=4401)
            return
        try:
            await getattr(self, f"_do_{action}")(frame)
        except ArenaError as exc:
            await self._error(exc.code, exc.message, action=action)

    async def _do_prompt(self, frame: dict) -> None:
        battle_id = frame.get("battle")
        if battle_id is None:
            turn = await db(services.battle_start)(client=self.client, text=frame.get("text"))
            # Joining after the replies were queued is safe: the snapshot sent next holds
            # whatever was streamed before the join.
            await self._follow(str(turn.battle_id))
        else:
            await db(services.turn_submit)(
                battle_id=self._battle_of(frame), client=self.client, text=frame.get("text")
            )
        await self._send_state()

    async def _do_regenerate(self, frame: dict) -> None:
        battle_id = self._battle_of(frame)
        await db(services.turn_regenerate)(
            battle_id=battle_id, client=self.client, side=frame.get("side")
        )
        await self._send_state()

    async def _do_vote(self, frame: dict) -> None:
        battle_id = self._battle_of(frame)
        try:
            await db(services.vote_cast)(
                battle_id=battle_id, client=self.client, outcome=frame.get("outcome"), turn_seen=_turn_seen(frame)
            )
        except ArenaError as exc:
            if exc.code == "stale":  # show the page what it missed
                await self._send_state()
            raise
        # The reveal arrives through the group once the vote has committed.

    async def _do_join(self, frame: dict) -> None:
        battle_id = frame.get("battle")
        if not isinstance(battle_id, str):
            raise ArenaError("join needs a battle id.")
        if battle_id == self.battle_id:
            await self._send_state()
            return
        _battle_id_check(battle_id)
        # Join the group before reading the snapshot: every delta is then either in the snapshot
        # or delivered afterwards (the browser drops the overlap by offset), so nothing is lost.
        # The snapshot's read is the ownership check too: a battle that isn't this client's is
        # left at once, and nothing of it is forwarded meanwhile, since the socket doesn't follow it.
        group = events.battle_group(battle_id)
        await self.channel_layer.group_add(group, self.channel_name)
        try:
            state = await self._state(battle_id)
        except BaseException:
            await self.channel_layer.group_discard(group, self.channel_name)
            raise
        if self.battle_id:
            await self.channel_layer.group_discard(events.battle_group(self.battle_id), self.channel_name)
        self.battle_id = battle_id
        await self.send(json.dumps({"type": "state", "state": state}))

    async def _do_new_round(self, frame: dict) -> None:
        await self._follow(None)
        await self.send(json.dumps({"type": "state", "state": None}))

    # --- server → browser (channel-layer events) ----------------------------------------------

    async def reply_started(self, event: events.ReplyStarted) -> None:
        await self._forward("started", event)

    async def reply_delta(self, event: events.ReplyDelta) -> None:
        await self._forward("delta", event)

    async def reply_done(self, event: events.ReplyDone) -> None:
        await self._forward("done", event)

    async def reply_failed(self, event: events.ReplyFailed) -> None:
        await self._forward("failed", event)

    async def battle_revealed(self, event: events.BattleRevealed) -> None:
        await self._forward("revealed", event)

    # --- helpers ------------------------------------------------------------------------------

    async def _forward(self, public_type: str, event: events.Event) -> None:
        # Re-check on every event: only the battle this socket follows reaches the browser.
        if event.get("battle") != self.battle_id:
            return
        await self.send(json.dumps({**event, "type": public_type}))

    def _battle_of(self, frame: dict) -> str:
        battle_id = frame.get("battle")
        if not isinstance(battle_id, str) or battle_id != self.battle_id:
            raise ArenaError("That isn't the battle on this page; reload it.", code="not_found")
        return battle_id

    async def _follow(self, battle_id: str | None) -> None:
        if self.battle_id == battle_id:
            return
        if self.battle_id:
            await self.channel_layer.group_discard(events.battle_group(self.battle_id), self.channel_name)
        self.battle_id = battle_id
        if battle_id:
            await self.channel_layer.group_add(events.battle_group(battle_id), self.channel_name)

    async def _state(self, battle_id: str | None) -> dict:
        return await db(selectors.battle_state_for_client)(battle_id=battle_id, client=self.client, live_text=live_text)

    async def _send_state(self) -> None:
        state = await self._state(self.battle_id)
        await self.send(json.dumps({"type": "state", "state": state}))

    async def _error(self, code: str, message: str, action: str | None = None) -> None:
        await self.send(json.dumps({"type": "error", "code": code, "message": message, "action": action}))


class LeaderboardConsumer(SocketsCounted, DirectDispatch, AsyncWebsocketConsumer):
    """Read-only: the current leaderboard on connect, then every update as it is published."""

    page = "leaderboard"

    async def connect(self) -> None:
        if leaderboard_members_only() and _signed_in_user_id(self.scope) is None:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(events.LEADERBOARD_GROUP, self.channel_name)
        await self.accept()
        snapshot = await db(selectors.leaderboard_current)()
        await self.send(json.dumps({"type": "leaderboard", "leaderboard": snapshot}))

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(events.LEADERBOARD_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(json.dumps({"type": "error", "code": "read_only", "message": "This socket only sends."}))

    async def leaderboard_updated(self, event: events.LeaderboardUpdated) -> None:
        await self.send(json.dumps({"type": "leaderboard", "leaderboard": event["leaderboard"]}))
