"""The processes of bench/stream.py that play the browsers: the clients (direct model streams,
then battles through websockets) and the listener that notes when each delta passes Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

from stack import REDIS_URL

PHASE_DEADLINE = 90.0  # seconds: a phase that isn't over by then is reported as incomplete


async def _direct_tgi(url: str, prompt: str, stops: list[str], tokens: int, start_at: float) -> dict:
    """One TGI stream straight from the dev server: a token per event, as `text_generation` gives it."""
    import text_generation

    await asyncio.sleep(max(start_at - time.monotonic(), 0))
    client = text_generation.AsyncClient(url, timeout=60)
    out: dict = {"sent": time.monotonic(), "tokens": [], "error": None, "finished": False}
    try:
        async for event in client.generate_stream(prompt, max_new_tokens=tokens, stop_sequences=stops):
            out["tokens"].append((time.monotonic(), event.token.text, event.token.special))
            out["finished"] = out["finished"] or event.generated_text is not None
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


async def _direct_openai(client, model: str, prompt: str, tokens: int, start_at: float) -> dict:
    """One chat completion streamed straight from the dev server, asked and read as the arena's
    backend does (inference/openai_chat.py: the same client, the message as it is, usage included,
    chunks read as plain objects). Each chunk with content is noted as (received, content, False);
    the role chunk, the final chunk (where the end-of-sequence token would be) and the usage chunk
    carry none."""
    import openai

    await asyncio.sleep(max(start_at - time.monotonic(), 0))
    out: dict = {"sent": time.monotonic(), "tokens": [], "error": None, "finished": False, "usage": None}
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    try:
        stream = await client.post("/chat/completions", body=body, cast_to=object, stream=True,
                                   stream_cls=openai.AsyncStream[object])
        async with stream:
            async for chunk in stream:
                received = time.monotonic()
                if chunk.get("usage"):
                    out["usage"] = chunk["usage"]["completion_tokens"]
                if not chunk.get("choices"):
                    continue
                choice = chunk["choices"][0]
                if content := (choice.get("delta") or {}).get("content"):
                    out["tokens"].append((received, content, False))
                out["finished"] = out["finished"] or choice.get("finish_reason") is not None
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


async def _openai_clients(models: list[dict]) -> dict[str, object]:
    """One client per server for this process's loop, made as the arena's workers make theirs
    (`inference.openai_chat.client_make`: the aiohttp transport, no retries), kept as theirs are
    (its connections stay open between replies). Each is warmed with a one-token request first, as
    the workers' are by the time they are measured: a fresh process's first request takes some
    30 ms more than the next ones (its tag, `warmup`, is no battle's)."""
    from inference.openai_chat import client_make

    clients = {m["url"]: client_make(m["url"], "", {}, timeout=60) for m in models}
    await asyncio.gather(*(
        _direct_openai(clients[m["url"]], m["served_model"], "[[devserver:echo]] warmup", 1, 0) for m in models
    ))
    return clients


async def _session_cookie(session, base_url: str) -> str:
    async with session.get(base_url + "/") as resp:
        resp.raise_for_status()
        await resp.read()
    return session.cookie_jar.filter_cookies(base_url)["sessionid"].value


def process_cpu(pid: int) -> float:
    """CPU seconds (utime + stime) a process has used so far, from /proc."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StartWindows:
    """The web's CPU over each round's battle starts: from the round's first prompt sent to its
    last `state` frame received (every battle created, its replies queued, its state read). The
    deltas of battles already streaming are forwarded meanwhile too, so it is an upper bound."""

    def __init__(self, pid: int | None, n: int) -> None:
        self.pid, self.n = pid, n
        self.rounds: dict[int, list] = {}  # round: [cpu at first send, cpu at last state, states awaited]

    def sent(self, r: int) -> None:
        if self.pid and r not in self.rounds:
            self.rounds[r] = [process_cpu(self.pid), None, self.n]

    def state(self, r: int) -> None:
        window = self.rounds.get(r)
        if window is not None:
            window[2] -= 1
            if window[2] == 0:
                window[1] = process_cpu(self.pid)

    def cpu(self) -> float | None:
        """Web CPU seconds over every round's starts; None unless every round's states all came, or
        with fewer than 20 battles in a round (/proc counts CPU in 10 ms ticks)."""
        if self.n < 20 or not self.rounds or any(w[1] is None for w in self.rounds.values()):
            return None
        return sum(w[1] - w[0] for w in self.rounds.values())


async def _battle(ws, prompt: str, start_at: float, deadline: float, starts: StartWindows | None = None,
                  r: int = 0) -> dict:
    """One battle on an open socket: send the prompt, record every frame until both sides end."""
    await asyncio.sleep(max(start_at - time.monotonic(), 0))
    out: dict = {"sent": time.monotonic(), "frames": [], "error": None}
    if starts:
        starts.sent(r)
    await ws.send(json.dumps({"action": "prompt", "battle": None, "text": prompt}))
    ended: set[str] = set()
    try:
        while len(ended) < 2:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(deadline - time.monotonic(), 0.01))
            received = time.monotonic()
            frame = json.loads(raw)
            out["frames"].append((received, frame))
            if frame["type"] == "state" and starts and len(out["frames"]) == 1:
                starts.state(r)
            if frame["type"] in ("done", "failed"):
                ended.add(frame["side"])
            elif frame["type"] == "error":
                out["error"] = frame.get("message")
                break
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - reported, not raised
        out["error"] = out["error"] or f"{type(exc).__name__}: {exc}"
    return out


async def clients_main(plan: dict) -> dict:
    """N lanes, each running `rounds` battles (or direct stream pairs) one after the other."""
    import aiohttp
    from websockets.asyncio.client import connect

    n, tokens, rounds, ramp = plan["n"], plan["tokens"], plan["rounds"], plan["ramp"]
    tags = plan["tags"]  # round r, lane i: tags[r * n + i]
    start = time.monotonic() + 0.3
    deadline = start + ramp + PHASE_DEADLINE * rounds
    if plan["mode"] == "direct":
        clients = await _openai_clients(plan["models"]) if plan["protocol"] == "openai" else {}

        def direct(m: dict, j: int, at: float):
            if clients:
                return _direct_openai(clients[m["url"]], m["served_model"], m["prompts"][j], tokens, at)
            return _direct_tgi(m["url"], m["prompts"][j], m["stops"], tokens, at)

        async def lane_direct(i: int) -> list[dict]:
            out = []
            for r in range(rounds):
                j = r * n + i
                at = start + ramp * i / n if r == 0 else time.monotonic() + 0.3
                pair = await asyncio.gather(*(direct(m, j, at) for m in plan["models"]))
                out += [
                    {"tag": tags[j], "model": m["name"], **res} for m, res in zip(plan["models"], pair, strict=True)
                ]
            return out

        start = time.monotonic() + 0.3  # after the clients are made
        deadline = start + ramp + PHASE_DEADLINE * rounds
        try:
            lanes = await asyncio.wait_for(asyncio.gather(*(lane_direct(i) for i in range(n))),
                                           deadline - time.monotonic())
        finally:
            await asyncio.gather(*(client.close() for client in clients.values()), return_exceptions=True)
        return {"streams": [stream for lane in lanes for stream in lane]}

    base_url = plan["base_url"]
    ws_url = base_url.replace("http://", "ws://") + "/ws/arena/"
    opened = asyncio.Semaphore(25)  # connection set-up is not measured; keep it gentle
    sockets: list = [None] * n

    async def open_one(i: int) -> None:
        async with opened:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                cookie = await _session_cookie(session, base_url)
            sockets[i] = await connect(ws_url, origin=base_url, additional_headers={"Cookie": f"sessionid={cookie}"},
                                       max_size=2**22, open_timeout=30, ping_interval=None)

    # Kept running (--steady), the rounds overlap: the starts are measured in bursts only.
    starts = StartWindows(None if plan.get("steady") else plan.get("web_pid"), n)

    async def lane(i: int) -> list[dict]:
        out = []
        for r in range(rounds):
            j = r * n + i
            at = start + ramp * i / n if r == 0 else time.monotonic() + 0.3
            out.append({"tag": tags[j], **await _battle(sockets[i], plan["prompts"][j], at, deadline, starts, r)})
        return out

    await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(n))), 120)
    start = time.monotonic() + 0.3
    deadline = start + ramp + PHASE_DEADLINE * rounds
    try:
        lanes = await asyncio.gather(*(lane(i) for i in range(n)))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets if ws is not None), return_exceptions=True)
    return {"battles": [battle for battles in lanes for battle in battles], "start_cpu": starts.cpu()}


async def monitor_main(out_path: str) -> None:
    """Listen to every battle group on the pub/sub channel layer and note when each delta passes."""
    import msgpack
    import redis.asyncio as aioredis

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    client = aioredis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.psubscribe("*__group__battle-*")  # whatever the layer's prefix
    Path(out_path + ".ready").write_text("")
    records = []
    deadline = time.monotonic() + PHASE_DEADLINE * 3
    while not stop.is_set() and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message and message["type"] == "pmessage":
            at = time.monotonic()
            event = msgpack.unpackb(message["data"])
            if event.get("type") == "reply.delta":
                records.append((at, event["battle"], event["side"], event["offset"], len(event["text"])))
    await client.aclose()
    Path(out_path).write_text(json.dumps(records))
