"""Websocket clients of the arena, through the routed ASGI app in this process."""

from __future__ import annotations

import json
from collections.abc import Callable

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from arena.clients import ClientIdentity, client_identity

ORIGIN = (b"origin", b"http://localhost")
FRAME_TIMEOUT = 30.0


def session_key_new() -> str:
    store = SessionStore()
    store["arena"] = True
    store.save()
    return store.session_key


new_session_key = database_sync_to_async(session_key_new)


def identity_of(session_key: str, ip: str = "") -> ClientIdentity:
    """The identity the consumer derives for this session and address."""
    return client_identity(session_key=session_key, ip=ip)


def _with_peer(application, peer: tuple[str, int]):
    """The ASGI app as reached from `peer` (WebsocketCommunicator's scope has no client)."""

    async def app(scope, receive, send):
        return await application({**scope, "client": peer}, receive, send)

    return app


async def ws_connect(
    session_key: str | None = None, *, origin=ORIGIN, ip: str | None = None, headers: list | None = None
) -> WebsocketCommunicator:
    from config.asgi import application

    all_headers = [origin] if origin else []
    if session_key:
        all_headers.append((b"cookie", f"sessionid={session_key}".encode()))
    all_headers += headers or []
    app = _with_peer(application, (ip, 50_000)) if ip else application
    communicator = WebsocketCommunicator(app, "/ws/arena/", headers=all_headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected, "the websocket was refused"
    return communicator


async def ws_send(comm: WebsocketCommunicator, frame: dict) -> None:
    await comm.send_to(text_data=json.dumps(frame))


async def ws_receive(comm: WebsocketCommunicator, timeout: float = FRAME_TIMEOUT) -> dict:
    return json.loads(await comm.receive_from(timeout=timeout))


async def frames_until(
    comm, predicate: Callable[[dict, list[dict]], bool], timeout: float = FRAME_TIMEOUT
) -> list[dict]:
    frames: list[dict] = []
    while True:
        frame = await ws_receive(comm, timeout)
        frames.append(frame)
        if predicate(frame, frames):
            return frames


def state_of(frames: list[dict]) -> dict:
    """The snapshot among frames (live events of a fast worker may overtake it)."""
    return next(f["state"] for f in frames if f["type"] == "state")


def finished_sides(frames: list[dict], attempt: int | None = None) -> set[str]:
    return {
        f["side"] for f in frames
        if f["type"] in ("done", "failed") and (attempt is None or f["attempt"] == attempt)
    }


def both_finished(_frame, frames) -> bool:
    return finished_sides(frames) >= {"a", "b"}


async def ws_join(comm, battle_id: str) -> dict:
    await ws_send(comm, {"action": "join", "battle": battle_id})
    frame = await ws_receive(comm, 10)
    assert frame["type"] == "state", frame
    return frame["state"]
