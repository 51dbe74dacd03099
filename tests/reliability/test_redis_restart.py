"""Redis dies and comes back mid-stream, on a private stack: its own redis-server, worker and
uvicorn (the shared Redis is never touched). The site keeps serving, the browser reconnects and
rejoins, the reply ends (never stuck streaming), no row is lost and a vote afterwards is stored.
Also: a websocket idle for longer than the Redis client's read timeout stays open."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar

import pytest
import redis
import websockets
from channels.db import database_sync_to_async

from arena.models import Battle, Reply, Turn, Vote
from tests.helpers import (
    ROOT,
    free_port,
    process_group_stop,
    slow_models_serving,
    stack_env,
    wait_until,
    web_start,
    worker_start,
)
from tests.websockets import new_session_key, ws_connect, ws_receive, ws_send

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEARTBEAT = 2.0


class PrivateRedis:
    def __init__(self, logs):
        self.executable = shutil.which("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.logs = logs
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"redis-{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until(self.ping, 10, "the private redis-server")

    def ping(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


@pytest.fixture
def private_stack(tmp_path, transactional_db):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH: the Redis restart test needs a private Redis it may kill")
    server = PrivateRedis(tmp_path)
    server.start()
    env = {"REDIS_URL": server.url, "ARENA_REPLY_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    worker = worker_start(tmp_path, name="private-worker", extra_env=env)
    web, base_url = web_start(tmp_path, name="private-web", extra_env=env)
    port = int(base_url.rsplit(":", 1)[1])
    stack = type("Stack", (), {
        "redis": server, "worker": worker, "web": web, "port": port, "env": env, "logs": tmp_path,
    })
    try:
        yield stack
    finally:
        process_group_stop(stack.web)
        process_group_stop(stack.worker)
        if server.proc and server.proc.poll() is None:
            server.kill()


@pytest.fixture
def slow_models(transactional_db):
    """12 tokens/s: a reply is still streaming when Redis goes away."""
    with slow_models_serving(tokens_per_second=12, max_new_tokens=60) as models:
        yield models


class Browser:
    """What the page does: GET / for the session cookie, then a websocket with cookie and Origin."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> int:
        with self.opener.open(self.base + path, timeout=5) as answer:
            return answer.status

    def socket(self):
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        return websockets.connect(
            self.base.replace("http", "ws") + "/ws/arena/",
            additional_headers={"Cookie": cookie, "Origin": self.base}, open_timeout=5,
        )

    async def rejoin(self, battle_id: str, within: float = 20.0):
        """Reconnect and `join` as the page does (backoff 0.5 s, doubling): (socket, snapshot, tries)."""
        delay, tries, deadline = 0.5, 0, time.monotonic() + within
        while True:
            tries += 1
            ws = None
            try:
                ws = await self.socket()
                await ws.send(json.dumps({"action": "join", "battle": battle_id}))
                frame = await receive(ws, 5)
                assert frame["type"] == "state", frame
                return ws, frame["state"], tries
            except (OSError, TimeoutError, websockets.ConnectionClosed, websockets.InvalidStatus):
                if ws is not None:
                    await ws.close()
                assert time.monotonic() < deadline, f"could not rejoin the battle in {within} s ({tries} tries)"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8)


async def receive(ws, timeout: float = 10.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def rows(battle_id: str) -> dict:
    return {
        "battles": Battle.objects.filter(id=battle_id).count(),
        "turns": Turn.objects.filter(battle_id=battle_id).count(),
        "replies": Reply.objects.filter(turn__battle_id=battle_id).count(),
        "votes": Vote.objects.filter(battle_id=battle_id).count(),
    }


def current_replies(battle_id: str) -> dict[str, Reply]:
    turn = Turn.objects.get(battle_id=battle_id)
    return {r.side: r for r in Reply.objects.filter(turn=turn, attempt=turn.attempt)}


def sweep_in(stack) -> str:
    """The periodic sweep, as the private stack's beat would run it (its own Redis)."""
    code = "import django; django.setup(); from arena.tasks import replies_sweep; print(replies_sweep())"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT,
        env=stack_env() | stack.env | {"DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()


async def test_a_redis_restart_mid_stream_loses_nothing(private_stack, slow_models, capsys):
    report: list[str] = []
    try:
        await redis_restart_scenario(private_stack, report)
    finally:
        with capsys.disabled():
            print("\n\nRedis restart mid-stream:\n  " + "\n  ".join(report))


async def redis_restart_scenario(stack, report: list[str]) -> None:
    browser = Browser(stack.port)
    assert await database_sync_to_async(browser.get)("/") == 200

    async with browser.socket() as ws:
        await ws.send(json.dumps({"action": "prompt", "battle": None, "text": "Write about tea and rivers"}))
        state = await receive(ws)
        while state["type"] != "state":  # live events of a fast worker may overtake the snapshot
            state = await receive(ws)
        battle_id = state["state"]["battle"]
        deltas = 0
        while deltas < 3:
            frame = await receive(ws)
            deltas += frame["type"] == "delta"
        before = await database_sync_to_async(rows)(battle_id)

        stack.redis.kill()
        restarted = time.monotonic()
        down_healthz = await database_sync_to_async(browser.get)("/healthz")
        await asyncio.sleep(0.5)
        stack.redis.start()
        # The old socket may survive or be closed by the server; either way the page reconnects.
        try:
            while True:
                await receive(ws, 1.0)
        except (TimeoutError, websockets.ConnectionClosed):
            pass
    report.append(f"/healthz while Redis was down: {down_healthz}")
    assert down_healthz == 200, "the web server must keep serving without Redis"
    assert await database_sync_to_async(browser.get)("/") == 200

    # Reconnect and rejoin, like the page does: a consistent snapshot of the same battle.
    ws, snapshot, tries = await browser.rejoin(battle_id)
    report.append(f"rejoined after {tries} connection attempt(s), {time.monotonic() - restarted:.1f} s after the kill")
    try:
        assert snapshot["battle"] == battle_id and len(snapshot["turns"]) == 1
        assert snapshot["turns"][0]["prompt"] == "Write about tea and rivers"
        assert set(snapshot["turns"][0]["sides"]) == {"a", "b"}
        for side in snapshot["turns"][0]["sides"].values():
            assert side["status"] in ("queued", "streaming", "done", "failed")
            assert side["offset"] == len(side["text"])

        # The replies end: by themselves, or by the periodic sweep once their heartbeat is gone.
        deadline = time.monotonic() + 30
        next_sweep = restarted + HEARTBEAT + 2
        while True:
            replies = await database_sync_to_async(current_replies)(battle_id)
            if all(r.finished for r in replies.values()):
                break
            if time.monotonic() >= next_sweep:
                report.append(f"sweep {time.monotonic() - restarted:.1f} s after the kill: {sweep_in(stack)} swept")
                next_sweep = time.monotonic() + 4
            assert time.monotonic() < deadline, f"replies stuck: {[(r.side, r.status) for r in replies.values()]}"
            await asyncio.sleep(0.5)
        ended = time.monotonic() - restarted
        report.append(
            "replies after the restart: "
            + ", ".join(
                f"{s}={r.status}" + (f" ({r.failure_reason})" if r.failure_reason else "")
                for s, r in sorted(replies.items())
            )
            + f", {ended:.1f} s after the kill"
        )
        for reply in replies.values():
            assert reply.status == Reply.Status.DONE or reply.failure_reason, "a failure always says why"

        # A failed side is retried; then the vote is stored. The worker must be there to do it.
        if stack.worker.poll() is not None:
            report.append(
                f"the worker exited (status {stack.worker.returncode}) when its broker connection dropped; "
                "started again, as the compose restart policy does"
            )
            stack.worker = worker_start(stack.logs, name="private-worker-2", extra_env=stack.env)
        else:
            report.append("the worker survived the restart")
        failed = [s for s, r in replies.items() if r.status == Reply.Status.FAILED]
        if failed:
            await ws.close()
            ws, _, _ = await browser.rejoin(battle_id)
            retry_side = None if len(failed) == 2 else failed[0]
            await ws.send(json.dumps({"action": "regenerate", "battle": battle_id, "side": retry_side}))
            retried = time.monotonic()
            while True:
                replies = await database_sync_to_async(current_replies)(battle_id)
                if all(r.attempt == 1 for r in replies.values()) and all(r.finished for r in replies.values()):
                    break
                assert time.monotonic() - retried < 30, "the worker never picked up the retry after the restart"
                await asyncio.sleep(0.5)
            report.append(
                "retry after the restart: "
                + ", ".join(f"{s}={r.status} {r.failure_reason}" for s, r in sorted(replies.items()))
                + f", {time.monotonic() - retried:.1f} s after asking"
            )
        assert all(r.status == Reply.Status.DONE for r in replies.values())

        await ws.close()
        ws, snapshot, tries = await browser.rejoin(battle_id)
        assert snapshot["controls"]["may_vote"]
        for side, reply in replies.items():
            assert snapshot["turns"][0]["sides"][side]["text"] == reply.text  # what the page shows is what is stored
        await ws.send(json.dumps({"action": "vote", "battle": battle_id, "outcome": "tie"}))
        try:
            while (await receive(ws))["type"] != "revealed":
                pass
            report.append("vote after the restart: stored and revealed")
        except TimeoutError:
            report.append("vote after the restart: stored, reveal not received")
    finally:
        await ws.close()

    after = await database_sync_to_async(rows)(battle_id)
    assert after["battles"] == before["battles"] == 1 and after["turns"] == before["turns"] == 1
    assert after["replies"] >= before["replies"] == 2
    assert after["votes"] == 1
    report.append(f"rows before {before}, after {after}")


async def test_an_idle_websocket_outlives_the_redis_read_timeout(chat_models):
    """channels_redis waits 5 s per blocking read; redis-py 8 would give up reading after 5 s."""
    comm = await ws_connect(await new_session_key())
    try:
        await asyncio.sleep(7)
        await ws_send(comm, {"action": "new_round"})
        assert await ws_receive(comm, 5) == {"type": "state", "state": None}
    finally:
        await comm.disconnect()
