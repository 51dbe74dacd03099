"""Plain helpers of the reliability and security tests: websocket clients, task routing, dedicated
worker processes, finished battles made without a model, and the dev servers' fault switch."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from arena import queue, services
from arena.clients import ClientIdentity, client_identity
from arena.models import Reply, Turn
from arena.tasks import reply_generate as REPLY_GENERATE
from tests.helpers import process_group_stop, worker_start

ORIGIN = (b"origin", b"http://localhost")
FRAME_TIMEOUT = 30.0


# --- websocket clients (the routed ASGI app, in this process) --------------------------------


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


# --- where generation tasks go ----------------------------------------------------------------


class NoTask:
    """Stands in for `arena.queue.reply_generate_queue` when a test finishes replies itself:
    nothing is queued."""

    def __init__(self):
        self.queued: list[int] = []

    def __call__(self, reply_id: int) -> None:
        self.queued.append(reply_id)


def tasks_route_to(monkeypatch, queue_name: str) -> None:
    """Generation tasks of this process go to `queue_name` (a dedicated worker's)."""
    monkeypatch.setattr(
        queue, "reply_generate_queue",
        lambda reply_id: REPLY_GENERATE.apply_async(kwargs={"reply_id": reply_id}, queue=queue_name),
    )


def turn_finish(turn: Turn, text_a: str = "Answer A", text_b: str = "Answer B", failure: dict | None = None) -> None:
    """Finish the current attempt of both sides as a worker would (`failure`: side -> reason)."""
    failure = failure or {}
    for reply in turn.replies.filter(attempt=Turn.objects.get(id=turn.id).attempt):
        Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
        text = text_a if reply.side == "a" else text_b
        services.reply_finish(reply_id=reply.id, text=text, token_count=3, failure=failure.get(reply.side))


def battle_finished(client: ClientIdentity, text: str = "Question", **kwargs) -> Turn:
    turn = services.battle_start(client=client, text=text)
    turn_finish(turn, **kwargs)
    return turn


# --- processes --------------------------------------------------------------------------------


@contextlib.contextmanager
def dedicated_worker(logs: Path, name: str, queue: str, **settings_env: str) -> Iterator[subprocess.Popen]:
    """A worker of its own, consuming only `queue`, with settings of its own (env values)."""
    proc = worker_start(logs, name=name, extra_env={"CELERY_QUEUE": queue, **settings_env})
    try:
        yield proc
    finally:
        process_group_stop(proc)


# --- dev model servers ------------------------------------------------------------------------


def fault_set(url: str, fault: str | None, **body) -> dict:
    answer = requests.post(f"{url}/__devserver__/fault", json={"fault": fault, **body}, timeout=5)
    answer.raise_for_status()
    return answer.json()


def devserver_requests(url: str) -> int:
    """`tgi_request_count` from the dev server's /metrics: generation requests it received."""
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("tgi_request_count "):
            return int(line.split()[1])
    raise AssertionError("no tgi_request_count in /metrics")

