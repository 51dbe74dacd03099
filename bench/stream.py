"""Streaming benchmark: what the relay adds to every token (a script, not a test).

    .venv/bin/python bench/stream.py [--quick] [--n 1,50,100,200] [--tokens 200] [--rate 50]

It starts the whole streaming path on loopback and measures it against a direct client:

- two TGI-compatible dev servers (`devserver`) in this process, each on its own thread
  and event loop, paced at `--rate` tokens/s after `--ttft`, logging the monotonic time at which
  each token event is written to its socket and at which each request arrived (the server's
  `StreamObserver` hook);
- PostgreSQL database `arena_bench` (dropped, created and migrated at start) and Redis database 14
  (flushed at start), both overridable with BENCH_DATABASE_URL / BENCH_REDIS_URL; tasks go to a
  queue of their own (`bench-stream`);
- the ASGI server as deployed (uvicorn, `--loop uvloop --http httptools`, the image's flags) and
  `--workers` Celery worker processes (`--pool threads --concurrency 400`: a thread per stream);
- the clients in a separate process (so that their event loop and GIL are not the dev servers'):
  for each N, first N×2 direct `text_generation.AsyncClient` streams straight to the dev servers
  (the baseline), then N battles through real websockets (GET / for the session cookie, Origin
  header, one `prompt` frame each), both starting over the same ramp (`--ramp` s for 200 battles,
  proportionally less for fewer). At N=1 five battles run one after the other (`--rounds`).
  Web and workers get ARENA_BATTLES_PER_MINUTE / ARENA_TURNS_PER_MINUTE = 100000;
- a listener on the channel layer's Redis pub/sub (a third process) noting when each delta passes,
  which splits a token's latency into model → worker → Redis and Redis → web → browser.

Replies are exactly `--tokens` tokens: each prompt asks the dev server to echo it
(`[[devserver:echo]]`, which is not shortened to the usual reply length) and is longer than
`max_new_tokens`, which the two registered models set to `--tokens`. Each prompt starts with a
tag of its own, so every emitted stream is matched to its battle and side (the side's model is
read from the database).

A token's latency is the time it was received by a client minus the time the dev server wrote it
(`time.monotonic()`, CLOCK_MONOTONIC, one clock for every process of the machine). Deltas are
coalesced: the characters of each delta (by its `offset`) are attributed back to the tokens they
contain; a token counts as received with its last character. Added latency = the arena's
percentile minus the direct client's at the same concurrency; "once all streams had started"
repeats it for the tokens emitted after the last stream's first token (no battle still being set
up). TTFT overhead = (first delta received − prompt sent) − (first token received − direct request
sent), per side, at the median, and taken apart: prompt → request at the model server, first
token written → received. Delivery: every token must arrive, in order, and the text received
(snapshot + deltas, overlap dropped by offset) must equal the text the dev server emitted and
the `done` frame's text. CPU: utime+stime (/proc/<pid>/stat) of the web and worker processes over
the arena phase, per 1000 tokens delivered (and of the bench's own processes); "busy" is the
whole machine's non-idle share over the phase (/proc/stat), and the share of it used by other
programs (including Redis and PostgreSQL).

For comparisons: `--env KEY=VALUE` (web and workers), `--web-env KEY=VALUE` (web only),
`--channel-layer core|pubsub` (a settings module in the temporary directory that replaces
CHANNEL_LAYERS), `--asgi module:app`, `--workers`, `--web-workers`, `--profile DIR` (py-spy).

Everything is bounded: each phase has a deadline, and the script stops its processes at the end.
A Markdown table for the README is printed last; the logs are kept when something went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from figures import pct
from stack import (
    CLK_TCK,
    DATABASE_URL,
    LAYERS,
    PY,
    REDIS_URL,
    ROOT,
    Stack,
    database_reset,
    machine_ticks,
    own_cpu,
    redis_reset,
    stack_arguments,
    tree_cpu,
    wait_for,
)

sys.path.insert(0, str(ROOT))

from devserver import StreamObserver  # after the path is set

MODELS = [("bench-zephyr", "zephyr"), ("bench-mistral", "mistral-instruct")]
WORDS = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike",
    "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee",
    "zulu",
]
PHASE_DEADLINE = 90.0  # seconds: a phase that isn't over by then is reported as incomplete
TARGETS = {"added_p50": 5.0, "added_p99": 30.0, "ttft_p50": 30.0}


def prompt_for(tag: str, tokens: int) -> str:
    """An echo prompt longer than the reply: the reply is its first `tokens` tokens, tag first."""
    words = [WORDS[i % len(WORDS)] for i in range(tokens + 20)]
    return f"[[devserver:echo]] {tag} " + " ".join(words)


# --- the dev servers, with an emission log -----------------------------------------------------


class EmissionLog(StreamObserver):
    """Every token event the dev servers write: (monotonic time, text, special) per stream."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[int, dict] = {}

    def stream_started(self, stream: object, model_id: str, when: float) -> None:
        # The record holds the stream, so its id is not reused while the record lasts.
        record = {"model": model_id, "tokens": [], "stream": stream, "arrived": when}
        with self.lock:
            self.streams[id(stream)] = record

    def token_sent(self, stream: object, text: str, special: bool, when: float) -> None:
        record = self.streams.get(id(stream))
        if record is not None:
            record["tokens"].append((when, text, special))

    def take(self) -> dict[tuple[str, str], dict]:
        """The streams logged so far, keyed by (model id, tag: the reply's first word); then forget them.

        Each is {"arrived": when the request reached the server, "tokens": [(time, text, special)]}.
        """
        with self.lock:
            streams, self.streams = self.streams, {}
        out = {}
        for record in streams.values():
            text = "".join(t for _, t, special in record["tokens"] if not special)
            if text.split():
                out[(record["model"], text.split()[0])] = {"arrived": record["arrived"], "tokens": record["tokens"]}
        return out


# --- the clients (a separate process: `--role clients`) ------------------------------------------


async def _direct_stream(url: str, prompt: str, stops: list[str], tokens: int, start_at: float) -> dict:
    import text_generation

    await asyncio.sleep(max(start_at - time.monotonic(), 0))
    client = text_generation.AsyncClient(url, timeout=60)
    out: dict = {"sent": time.monotonic(), "tokens": [], "error": None}
    try:
        async for event in client.generate_stream(prompt, max_new_tokens=tokens, stop_sequences=stops):
            out["tokens"].append((time.monotonic(), event.token.text, event.token.special))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


async def _session_cookie(session, base_url: str) -> str:
    async with session.get(base_url + "/") as resp:
        resp.raise_for_status()
        await resp.read()
    return session.cookie_jar.filter_cookies(base_url)["sessionid"].value


async def _battle(ws, prompt: str, start_at: float, deadline: float) -> dict:
    """One battle on an open socket: send the prompt, record every frame until both sides end."""
    await asyncio.sleep(max(start_at - time.monotonic(), 0))
    out: dict = {"sent": time.monotonic(), "frames": [], "error": None}
    await ws.send(json.dumps({"action": "prompt", "battle": None, "text": prompt}))
    ended: set[str] = set()
    try:
        while len(ended) < 2:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(deadline - time.monotonic(), 0.01))
            received = time.monotonic()
            frame = json.loads(raw)
            out["frames"].append((received, frame))
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

        async def lane_direct(i: int) -> list[dict]:
            out = []
            for r in range(rounds):
                j = r * n + i
                at = start + ramp * i / n if r == 0 else time.monotonic() + 0.3
                pair = await asyncio.gather(*(
                    _direct_stream(m["url"], m["prompts"][j], m["stops"], tokens, at) for m in plan["models"]
                ))
                out += [
                    {"tag": tags[j], "model": m["name"], **res} for m, res in zip(plan["models"], pair, strict=True)
                ]
            return out

        lanes = await asyncio.wait_for(asyncio.gather(*(lane_direct(i) for i in range(n))), deadline - time.monotonic())
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

    async def lane(i: int) -> list[dict]:
        out = []
        for r in range(rounds):
            j = r * n + i
            at = start + ramp * i / n if r == 0 else time.monotonic() + 0.3
            out.append({"tag": tags[j], **await _battle(sockets[i], plan["prompts"][j], at, deadline)})
        return out

    await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(n))), 120)
    start = time.monotonic() + 0.3
    deadline = start + ramp + PHASE_DEADLINE * rounds
    try:
        lanes = await asyncio.gather(*(lane(i) for i in range(n)))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets if ws is not None), return_exceptions=True)
    return {"battles": [battle for battles in lanes for battle in battles]}


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


def monitor_start(workdir: Path) -> tuple[subprocess.Popen, Path]:
    out = workdir / "published.json"
    for path in (out, Path(str(out) + ".ready")):
        path.unlink(missing_ok=True)
    proc = subprocess.Popen([PY, __file__, "--role", "monitor", "--out", str(out)], cwd=ROOT)
    wait_for(lambda: Path(str(out) + ".ready").exists() or proc.poll() is not None, 30, "the pub/sub monitor")
    return proc, out


def monitor_stop(proc: subprocess.Popen, out: Path) -> dict:
    """{(battle, side): [(published at, offset, length)]}"""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    published: dict = {}
    for at, battle, side, offset, length in json.loads(out.read_text()) if out.exists() else []:
        published.setdefault((battle, side), []).append((at, offset, length))
    return published


def clients_role(plan_path: str, out_path: str) -> None:
    import uvloop

    plan = json.loads(Path(plan_path).read_text())
    result = uvloop.run(clients_main(plan))
    Path(out_path).write_text(json.dumps(result))


def run_clients(plan: dict, workdir: Path) -> dict:
    plan_path, out_path = workdir / "plan.json", workdir / "result.json"
    plan_path.write_text(json.dumps(plan))
    out_path.unlink(missing_ok=True)
    proc = subprocess.run([PY, __file__, "--role", "clients", "--plan", str(plan_path), "--out", str(out_path)],
                          cwd=ROOT, timeout=PHASE_DEADLINE + 180, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the client process failed:\n{proc.stderr[-3000:]}")
    return json.loads(out_path.read_text())


# --- analysis ----------------------------------------------------------------------------------


def token_spans(emitted: list) -> tuple[str, list[tuple[int, int, float]]]:
    """(text, [(start, end, emitted_at)] for each token with characters)."""
    spans, pos, parts = [], 0, []
    for at, text, special in emitted:
        if special or not text:
            continue
        spans.append((pos, pos + len(text), at))
        parts.append(text)
        pos += len(text)
    return "".join(parts), spans


def steady(timed: list[tuple[float, float]], windows: list[tuple[float, float]]) -> dict:
    """Latencies of the tokens emitted once every stream of the run had started (no battle still
    being set up), and how many streams were still running then."""
    if not windows:
        return {"steady_lat": [], "steady_streams": 0}
    since = max(first for first, _ in windows)
    return {"steady_lat": [latency for at, latency in timed if at >= since],
            "steady_streams": sum(last >= since for _, last in windows)}


def analyse_direct(result: dict, emitted: dict) -> dict:
    lat, ttft, delivered, expected, problems, to_model, first = [], [], 0, 0, [], [], []
    timed, windows = [], []
    for s in result["streams"]:
        stream = emitted.get((s["model"], s["tag"]))
        if stream is None or s["error"]:
            problems.append(f"{s['tag']}/{s['model']}: {s['error'] or 'no emitted stream'}")
            continue
        _, spans = token_spans(stream["tokens"])
        to_model.append((stream["arrived"] - s["sent"]) * 1000)
        expected += len(spans)
        got = [(at, text) for at, text, special in s["tokens"] if not special and text]
        delivered += min(len(got), len(spans))
        # strict=False: a cut or failed stream need not deliver as many tokens as the model emitted
        for (recv, _), (_, _, sent) in zip(got, spans, strict=False):
            lat.append((recv - sent) * 1000)
            timed.append((sent, lat[-1]))
        if spans:
            windows.append((spans[0][2], spans[-1][2]))
        if got:
            ttft.append((got[0][0] - s["sent"]) * 1000)
            if spans:
                first.append((got[0][0] - spans[0][2]) * 1000)
    return {"lat": lat, "ttft": ttft, "delivered": delivered, "expected": expected, "problems": problems,
            "to_model": to_model, "first": first, **steady(timed, windows)}


def replies_read(battle_ids: list[str]) -> tuple[dict[tuple[str, str], str], list[float]]:
    """For these battles, in one query: the model behind each (battle, side), and how long the
    workers took over each reply (Reply.duration_ms: relay start to end, ms)."""
    import psycopg

    with psycopg.connect(DATABASE_URL) as conn:
        rows = conn.execute(
            "SELECT t.battle_id::text, r.side, m.name, r.duration_ms FROM arena_reply r "
            "JOIN arena_turn t ON t.id = r.turn_id JOIN arena_chatmodel m ON m.id = r.model_id "
            "WHERE t.battle_id::text = ANY(%s)",
            (battle_ids,),
        ).fetchall()
    models = {(b, side): name for b, side, name, _ in rows}
    return models, [float(d) for *_, d in rows if d is not None]


def analyse_arena(result: dict, emitted: dict, published: dict) -> dict:
    lat, ttft, delivered, expected, problems, frames_n, to_model, first_lat = [], [], 0, 0, [], 0, [], []
    worker_part, web_part, timed, windows = [], [], [], []
    out_of_order = 0
    battle_ids = []
    for b in result["battles"]:
        ids = [f["battle"] for _, f in b["frames"] if "battle" in f and isinstance(f.get("battle"), str)]
        ids += [f["state"]["battle"] for _, f in b["frames"] if f["type"] == "state" and f.get("state")]
        b["battle_id"] = ids[0] if ids else None
        battle_ids += ids[:1]
    models, durations = replies_read(battle_ids)
    for b in result["battles"]:
        if b["error"]:
            problems.append(f"{b['tag']}: {b['error']}")
        for side in ("a", "b"):
            model = models.get((b["battle_id"], side))
            stream = emitted.get((model, b["tag"])) if model else None
            if stream is None:
                problems.append(f"{b['tag']}/{side}: no emitted stream")
                continue
            text_emitted, spans = token_spans(stream["tokens"])
            to_model.append((stream["arrived"] - b["sent"]) * 1000)
            expected += len(spans)
            received, char_at, first, final = "", [], None, None
            for at, f in b["frames"]:
                if f["type"] == "state" and f.get("state"):
                    snap = f["state"]["turns"][-1]["sides"].get(side) if f["state"]["turns"] else None
                    pieces = [(0, snap["text"])] if snap and snap["text"] else []
                elif f["type"] == "delta" and f["side"] == side:
                    frames_n += 1
                    pieces = [(f["offset"], f["text"])]
                elif f["type"] in ("done", "failed") and f["side"] == side:
                    final = f
                    continue
                else:
                    continue
                for offset, text in pieces:
                    if offset > len(received):
                        out_of_order += 1  # a gap: never expected
                        continue
                    new = text[len(received) - offset:]
                    if new:
                        first = first if first is not None else at
                        received += new
                        char_at += [at] * len(new)
            if spans:
                windows.append((spans[0][2], spans[-1][2]))
            pub_at: list[float] = []
            for at, offset, length in sorted(published.get((b["battle_id"], side), []), key=lambda p: p[1]):
                if offset == len(pub_at):
                    pub_at += [at] * length
            for index, (start, end, sent) in enumerate(spans):
                if end <= len(received) and received[start:end] == text_emitted[start:end]:
                    delivered += 1
                    lat.append((char_at[end - 1] - sent) * 1000)
                    timed.append((sent, lat[-1]))
                    if end <= len(pub_at):
                        worker_part.append((pub_at[end - 1] - sent) * 1000)
                        web_part.append((char_at[end - 1] - pub_at[end - 1]) * 1000)
                    if index == 0:
                        first_lat.append(lat[-1])
            if received != text_emitted or final is None or final.get("text") != text_emitted:
                problems.append(f"{b['tag']}/{side}: text differs "
                                f"(received {len(received)} of {len(text_emitted)} chars, "
                                f"{'no final frame' if final is None else final['type']})")
            if first is not None:
                ttft.append((first - b["sent"]) * 1000)
    return {"lat": lat, "ttft": ttft, "delivered": delivered, "expected": expected, "problems": problems,
            "frames": frames_n, "gaps": out_of_order, "to_model": to_model, "first": first_lat,
            "worker_part": worker_part, "web_part": web_part, "durations": durations, **steady(timed, windows)}


# --- the benchmark -----------------------------------------------------------------------------


def run_n(n: int, args, stack: Stack, urls: list[str], log: EmissionLog, workdir: Path, run_id: str) -> dict:
    from inference.chat_templates import PRESETS, prompt_render

    rounds = args.rounds if args.rounds else (5 if n == 1 else 1)
    ramp = min(args.ramp, args.ramp * n / 200)
    if args.steady:
        # Lanes start spread over one reply's duration and run three battles back to back: during
        # the middle round all N run at once, arriving at N per reply duration, as in a busy arena.
        rounds, ramp = 3, args.ttft + args.tokens / args.rate
    tags = [f"t{run_id}n{n}r{r}b{i}" for r in range(rounds) for i in range(n)]
    prompts = [prompt_for(tag, args.tokens) for tag in tags]
    models = [
        {"name": name, "url": url, "stops": list(PRESETS[template].stop),
         "prompts": [prompt_render(template, [{"role": "user", "content": p}]) for p in prompts]}
        for (name, template), url in zip(MODELS, urls, strict=True)
    ]
    common = {"n": n, "tokens": args.tokens, "ramp": ramp, "tags": tags, "rounds": rounds}
    log.take()
    direct = analyse_direct(measured(run_clients({**common, "mode": "direct", "models": models}, workdir), args),
                            log.take())
    time.sleep(0.5)
    profilers = profile_start(args, stack, n, workdir) if args.profile else []
    # Where a delta is published tells the worker's share of its latency from the web's.
    monitor = monitor_start(workdir) if args.channel_layer in (None, "pubsub") and not args.no_breakdown else None
    cpu0, (tot0, idle0), mine0 = tree_cpu(stack.pids), machine_ticks(), own_cpu()
    web0 = tree_cpu([stack.web.pid])
    t0 = time.monotonic()
    arena_raw = run_clients({**common, "mode": "arena", "prompts": prompts, "base_url": f"http://127.0.0.1:{stack.port}"},
                            workdir)
    wall = time.monotonic() - t0
    for proc in profilers:
        proc.wait(timeout=60)
    time.sleep(0.3)  # the workers store the final texts
    cpu1, (tot1, idle1), mine1 = tree_cpu(stack.pids), machine_ticks(), own_cpu()
    web1 = tree_cpu([stack.web.pid])
    published = monitor_stop(*monitor) if monitor else {}
    arena = analyse_arena(measured(arena_raw, args), log.take(), published)
    return {
        "n": n, "streams": 2 * n, "rounds": rounds, "steady": args.steady, "direct": direct, "arena": arena,
        "cpu": cpu1 - cpu0, "wall": wall,
        "cpu_web": web1 - web0, "cpu_bench": (mine1 - mine0) - (cpu1 - cpu0), "cpu_wall": wall,
        "busy": 1 - (idle1 - idle0) / max(tot1 - tot0, 1),
        # Everything else on the machine (other programs, and Redis and PostgreSQL, which serve them too).
        "outside": max((tot1 - tot0) - (idle1 - idle0) - (mine1 - mine0) * CLK_TCK, 0) / max(tot1 - tot0, 1),
    }


def measured(result: dict, args) -> dict:
    """With --steady, only the middle round's battles (or direct streams) count."""
    if not args.steady:
        return result
    return {key: [item for item in items if "r1b" in item["tag"]] for key, items in result.items()}


def profile_start(args, stack: Stack, n: int, workdir: Path) -> list[subprocess.Popen]:
    """py-spy (`pip install py-spy`) on the web and worker processes while the battles run."""
    seconds = int(args.tokens / args.rate + 4)
    procs = []
    for name, proc in [("web", stack.web)] + [(f"worker{i}", w) for i, w in enumerate(stack.workers)]:
        out = Path(args.profile) / f"{name}-n{n}.txt"
        procs.append(subprocess.Popen(
            [str(Path(PY).parent / "py-spy"), "record", "--pid", str(proc.pid), "--duration", str(seconds),
             "--rate", "200", "--format", "raw", "--nonblocking", "--gil", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    time.sleep(0.5)
    return procs


def summarise(r: dict) -> dict:
    d, a = r["direct"], r["arena"]
    cpu_tokens = max(a["delivered"] * (r["rounds"] if r["steady"] else 1), 1)
    s = {
        "n": r["n"], "streams": r["streams"], "rounds": r["rounds"], "steady": r["steady"],
        "direct_p50": pct(d["lat"], 50), "direct_p99": pct(d["lat"], 99),
        "arena_p50": pct(a["lat"], 50), "arena_p99": pct(a["lat"], 99),
        "ttft_direct": pct(d["ttft"], 50), "ttft_arena": pct(a["ttft"], 50),
        "ttft_arena_p99": pct(a["ttft"], 99), "ttft_direct_p99": pct(d["ttft"], 99),
        "delivered": a["delivered"], "expected": a["expected"], "direct_delivered": d["delivered"],
        "direct_expected": d["expected"], "problems": a["problems"] + d["problems"],
        # CPU is measured over every round; with --steady only one of the three rounds is analysed.
        "cpu_per_1k": r["cpu"] / cpu_tokens * 1000, "cpu_web_per_1k": r["cpu_web"] / cpu_tokens * 1000,
        "cpu_bench_per_1k": r["cpu_bench"] / cpu_tokens * 1000, "busy": r["busy"], "outside": r["outside"],
        # Average share of one core over the arena phase (sockets opening included): a Python process
        # runs on about one core at most (the GIL), so a figure near 1 means that process is the limit.
        "web_cores": r["cpu_web"] / r["cpu_wall"], "workers_cores": (r["cpu"] - r["cpu_web"]) / r["cpu_wall"],
        "frames": a["frames"], "tokens_per_frame": a["delivered"] / max(a["frames"], 1),
    }
    # TTFT, taken apart: prompt → request at the model server, and first token written → received.
    s["to_model_direct"], s["to_model_arena"] = pct(d["to_model"], 50), pct(a["to_model"], 50)
    s["first_direct"], s["first_arena"] = pct(d["first"], 50), pct(a["first"], 50)
    # The arena's per-token latency, taken apart where each delta passes through Redis.
    s["worker_p50"], s["worker_p99"] = pct(a["worker_part"], 50), pct(a["worker_part"], 99)
    s["web_p50"], s["web_p99"] = pct(a["web_part"], 50), pct(a["web_part"], 99)
    s["steady_p50"], s["steady_p99"] = pct(a["steady_lat"], 50), pct(a["steady_lat"], 99)
    s["steady_direct_p50"], s["steady_direct_p99"] = pct(d["steady_lat"], 50), pct(d["steady_lat"], 99)
    s["steady_streams"], s["steady_tokens"] = a["steady_streams"], len(a["steady_lat"])
    s["duration_p50"], s["duration_max"] = pct(a["durations"], 50), max(a["durations"], default=float("nan"))
    s["added_p50"] = s["arena_p50"] - s["direct_p50"]
    s["added_p99"] = s["arena_p99"] - s["direct_p99"]
    s["ttft_over"] = s["ttft_arena"] - s["ttft_direct"]
    s["ok"] = s["delivered"] == s["expected"] and not s["problems"]
    return s


def label(s: dict) -> str:
    rounds = ", steady" if s["steady"] else f", {s['rounds']} rounds" if s["rounds"] > 1 else ""
    return f"{s['n']} ({s['streams']}{rounds})"


def verdict(value: float, target: float) -> str:
    return f"{value:.1f} {'✓' if value <= target else '✗'}"


def print_row(s: dict) -> None:
    print(
        f"N={label(s)}: per-token latency direct p50 {s['direct_p50']:.1f} / p99 "
        f"{s['direct_p99']:.1f} ms, arena p50 {s['arena_p50']:.1f} / p99 {s['arena_p99']:.1f} ms "
        f"→ added p50 {s['added_p50']:.1f} / p99 {s['added_p99']:.1f} ms [model → worker → Redis p50 "
        f"{s['worker_p50']:.1f} / p99 {s['worker_p99']:.1f}, Redis → web → client p50 {s['web_p50']:.1f} / p99 "
        f"{s['web_p99']:.1f}]; once all streams had started ({s['steady_streams']} streams still running, "
        f"{s['steady_tokens']} tokens): added p50 {s['steady_p50'] - s['steady_direct_p50']:.1f} / p99 "
        f"{s['steady_p99'] - s['steady_direct_p99']:.1f} ms; TTFT direct {s['ttft_direct']:.0f} ms, "
        f"arena {s['ttft_arena']:.0f} ms (p99 {s['ttft_arena_p99']:.0f}) → +{s['ttft_over']:.0f} ms [prompt → model "
        f"{s['to_model_direct']:.0f} → {s['to_model_arena']:.0f} ms, first token → client {s['first_direct']:.1f} → "
        f"{s['first_arena']:.1f} ms]; worker time per reply p50 {s['duration_p50'] / 1000:.2f} s (max "
        f"{s['duration_max'] / 1000:.2f} s); tokens "
        f"{s['delivered']}/{s['expected']} (direct {s['direct_delivered']}/{s['direct_expected']}); "
        f"{s['tokens_per_frame']:.2f} tokens/frame; CPU {s['cpu_per_1k']:.2f} s/1000 tokens (web "
        f"{s['cpu_web_per_1k']:.2f}, workers {s['cpu_per_1k'] - s['cpu_web_per_1k']:.2f}; the bench's dev servers and "
        f"clients {s['cpu_bench_per_1k']:.2f}); machine busy "
        f"{s['busy']:.0%} (outside the bench's processes {s['outside']:.0%}); cores used on average: web "
        f"{s['web_cores']:.2f}, workers {s['workers_cores']:.2f}",
        flush=True,
    )
    for problem in s["problems"][:5]:
        print(f"   problem: {problem}", flush=True)
    if len(s["problems"]) > 5:
        print(f"   ... and {len(s['problems']) - 5} more", flush=True)


def markdown(rows: list[dict], args) -> str:
    head = (
        f"Streaming, {args.tokens} tokens per reply at {args.rate:g} tokens/s (TTFT {args.ttft * 1000:.0f} ms), "
        f"{args.workers} worker process(es) × {args.concurrency} threads, {args.web_workers} uvicorn process(es)"
        f"{', channel layer ' + args.channel_layer if args.channel_layer else ''}{''.join(', ' + e for e in args.env)}"
        f"{''.join(', web ' + e for e in args.web_env)}; "
        f"targets: added ≤ {TARGETS['added_p50']:g} ms p50 / ≤ {TARGETS['added_p99']:g} ms p99, TTFT +≤ "
        f"{TARGETS['ttft_p50']:g} ms p50.\n\n"
        "| battles (streams) | direct p50 / p99 ms | arena p50 / p99 ms | added p50 / p99 ms | × direct p50 / p99 "
        "| TTFT direct → arena ms (p50) | TTFT added ms | tokens delivered / expected | tokens per frame "
        "| CPU s / 1000 tokens (web+worker) | machine busy (outside the bench) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for s in rows:
        ratio50 = s["arena_p50"] / s["direct_p50"] if s["direct_p50"] > 0 else float("nan")
        ratio99 = s["arena_p99"] / s["direct_p99"] if s["direct_p99"] > 0 else float("nan")
        lines.append(
            f"| {label(s)} | {s['direct_p50']:.1f} / {s['direct_p99']:.1f} | {s['arena_p50']:.1f} / "
            f"{s['arena_p99']:.1f} | {verdict(s['added_p50'], TARGETS['added_p50'])} / "
            f"{verdict(s['added_p99'], TARGETS['added_p99'])} | {ratio50:.1f} / {ratio99:.1f} | "
            f"{s['ttft_direct']:.0f} → {s['ttft_arena']:.0f} | {verdict(s['ttft_over'], TARGETS['ttft_p50'])} | "
            f"{s['delivered']} / {s['expected']}{'' if s['ok'] else ' ✗'} | {s['tokens_per_frame']:.2f} | "
            f"{s['cpu_per_1k']:.2f} | {s['busy']:.0%} ({s['outside']:.0%}) |"
        )
    return head + "\n".join(lines)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1 and 50 only")
    parser.add_argument("--n", default="1,50,100,200", help="concurrent battles, comma-separated")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50, help="tokens per second of each dev server stream")
    parser.add_argument("--ttft", type=float, default=0.1, help="dev server time to first token, seconds")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which 200 battles start (scaled by N)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="battles per lane, one after the other (default: 5 at N=1, else 1)")
    parser.add_argument("--steady", action="store_true",
                        help="N battles kept running (starts spread over one reply, 3 rounds, the middle one measured) "
                             "instead of N started at once")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=400, help="threads per worker process")
    parser.add_argument("--channel-layer", choices=sorted(LAYERS), help="override the settings' channel layer")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="don't split latency at Redis: its listener is a process decoding every delta, which "
                             "takes a quarter of a core at 100 battles away from the stack being measured")
    parser.add_argument("--keep-logs", action="store_true", help="print where the process logs are, keep them")
    stack_arguments(parser)
    args = parser.parse_args()
    if args.role == "clients":
        clients_role(args.plan, args.out)
        return
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    if args.role == "monitor":
        import uvloop

        uvloop.run(monitor_main(args.out))
        return
    ns = [1, 50] if args.quick else [int(x) for x in args.n.split(",")]

    import uvloop

    from devserver import DevServerConfig, serve_in_thread

    # uvloop for the dev servers too: they stand in for TGI's Rust router, so cheaper is truer.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    log = EmissionLog()
    workdir = Path(tempfile.mkdtemp(prefix="arena-bench-stream-"))
    logs = workdir / "logs"
    logs.mkdir()
    print(f"database {DATABASE_URL}, redis {REDIS_URL}; logs in {logs}", flush=True)
    database_reset()
    redis_reset()
    stack = Stack(args, logs)
    rows: list[dict] = []
    with ExitStack() as stack_exit:
        urls = [
            stack_exit.enter_context(serve_in_thread(DevServerConfig(
                model_id=name, time_to_first_token=args.ttft, tokens_per_second=args.rate,
                max_concurrent_requests=4096, max_total_tokens=8192, observer=log,
            )))
            for name, _ in MODELS
        ]
        stack.manage("migrate", "--no-input")
        for (name, template), url in zip(MODELS, urls, strict=True):
            stack.manage("add_model", name, url, "--template", template, "--param", f"max_new_tokens={args.tokens}",
                         "--timeout", "120")
        stack_exit.callback(stack.stop)
        stack.start()
        run_id = str(int(time.time()) % 100000)
        run_n(2, args, stack, urls, log, workdir, run_id + "w")  # warm-up: imports, connections
        for n in ns:
            s = summarise(run_n(n, args, stack, urls, log, workdir, run_id))
            print_row(s)
            rows.append(s)
            time.sleep(1)
    print()
    print(markdown(rows, args))
    if args.keep_logs or not all(r["ok"] for r in rows):
        print(f"\nThe processes' logs are in {logs}", flush=True)
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
