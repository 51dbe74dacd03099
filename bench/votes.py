"""Voting benchmark: votes recorded per second, and how stale the live leaderboard gets (a script).

    .venv/bin/python bench/votes.py [--quick] [--clients 50] [--battles 40] [--seconds 15] [--via ws|services]

It starts uvicorn (as deployed) and one Celery worker (which runs the debounced leaderboard
refresh) on PostgreSQL database `arena_bench` (dropped, created and migrated at start) and Redis
database 14 (flushed at start), like bench/stream.py (both start it with bench/stack.py), then:

- registers 10 models and, directly in the database, `--clients` sessions each owning `--battles`
  finished battles (both replies done, nothing naming a model), so every vote is counted;
- in a separate client process, opens one `/ws/leaderboard/` socket and one `/ws/arena/` socket per
  session (session cookie, Origin header), and on each arena socket votes on its battles one after
  the other (`join`, then `vote`; the vote is confirmed when its `revealed` frame arrives, which is
  published once the vote has committed) until they are used up or `--seconds` have passed;
  with `--via services` it calls `arena.services.vote_cast` from `--clients` threads instead;
- votes/s = votes in the database / (first vote sent → last vote confirmed);
- staleness: sampled every 50 ms while votes arrive, how long the oldest confirmed vote not yet
  in the leaderboard's last frame (`total_votes`) has been waiting; and at the end, the time from
  the last confirmation to the first frame whose `total_votes` equals the votes cast.

Targets: ≥ 300 votes/s through websockets with one web process, leaderboard ≤ 2 s stale. The
machine's busy share over each run is printed, and the share of it other programs took (PostgreSQL
and Redis included): on a shared machine votes/s moves with it, CPU per vote much less. A Markdown
table for the README is printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

from figures import pct
from stack import (
    CLK_TCK,
    DATABASE_URL,
    PY,
    REDIS_URL,
    ROOT,
    Stack,
    database_reset,
    machine_ticks,
    own_cpu,
    py_spy,
    redis_reset,
    stack_arguments,
    tree_cpu,
)

sys.path.insert(0, str(ROOT))

MODELS = 10
OUTCOMES = ("a", "b", "tie", "bothbad")
TARGET_VOTES_PER_SECOND = 300
TARGET_STALE_SECONDS = 2.0
SETTLE_SECONDS = 15.0  # how long the leaderboard gets to catch up after the last vote


# --- set-up, in this process (Django on the bench database) -------------------------------------


def django_setup(env: dict[str, str]) -> None:
    os.environ.update({k: v for k, v in env.items() if k not in ("PYTHONPATH",)})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def battles_create(clients: int, per_client: int) -> list[dict]:
    """Sessions, each owning finished battles: [{"session": key, "battles": [ids]}]."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from arena.clients import client_identity
    from arena.models import Battle, ChatModel, Reply, Turn

    models = [
        ChatModel.objects.create(name=f"bench-model-{i:02d}", endpoint_url=f"http://127.0.0.1:9/{i}", enabled=False)
        for i in range(MODELS)
    ]
    rng = random.Random(0)
    now = timezone.now()
    owners = []
    for _ in range(clients):
        store = SessionStore()
        store["arena"] = True  # what the arena page stores
        store.save()
        identity = client_identity(session_key=store.session_key, ip="127.0.0.1")
        battles = []
        for _ in range(per_client):
            a, b = rng.sample(models, 2)
            battles.append(Battle(model_a=a, model_b=b, client_id=identity.client_id, ip_hash=identity.ip_hash))
        Battle.objects.bulk_create(battles)
        turns = Turn.objects.bulk_create([Turn(battle=b, index=0, prompt="Which is better?") for b in battles])
        Reply.objects.bulk_create([
            Reply(turn=t, side=side, attempt=0, model=b.model_a if side == "a" else b.model_b,
                  status=Reply.Status.DONE, text=f"Answer {side.upper()}", token_count=2,
                  started_at=now, finished_at=now)
            for t, b in zip(turns, battles, strict=True) for side in ("a", "b")
        ])
        owners.append({"session": store.session_key, "battles": [str(b.id) for b in battles]})
    return owners


def votes_counted() -> tuple[int, int]:
    from arena.models import Vote

    return Vote.objects.count(), Vote.objects.filter(counted=True).count()


# --- the clients (a separate process: `--role clients`) ------------------------------------------


async def leaderboard_watch(ws_base: str, origin: str, frames: list, stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    async with connect(ws_base + "/ws/leaderboard/", origin=origin, max_size=2**24, ping_interval=None) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.2)
            except TimeoutError:
                continue
            at = time.monotonic()
            frame = json.loads(raw)
            if frame.get("type") == "leaderboard":
                frames.append((at, frame["leaderboard"].get("total_votes", 0)))


async def ws_voter(
    ws_base: str, origin: str, owner: dict, out: dict, rng: random.Random, opening: asyncio.Semaphore
) -> None:
    from websockets.asyncio.client import connect

    async with opening:  # connection set-up is not measured; a few at a time
        ws = await connect(ws_base + "/ws/arena/", origin=origin,
                           additional_headers={"Cookie": f"sessionid={owner['session']}"},
                           max_size=2**22, ping_interval=None, open_timeout=30)
    async with ws:
        out["ready"] += 1
        await out["go"].wait()
        for battle in owner["battles"]:
            if time.monotonic() >= out["deadline"]:
                break
            out["sent"].append(time.monotonic())
            await ws.send(json.dumps({"action": "join", "battle": battle}))
            await ws.send(json.dumps({"action": "vote", "battle": battle, "outcome": rng.choice(OUTCOMES)}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame["type"] == "revealed" and frame.get("battle") == battle:
                    out["confirmed"].append(time.monotonic())
                    break
                if frame["type"] == "error":
                    out["errors"].append(frame.get("message"))
                    break


async def clients_ws(plan: dict) -> dict:
    ws_base = plan["base_url"].replace("http://", "ws://")
    frames: list = []
    stop = asyncio.Event()
    out = {"sent": [], "confirmed": [], "errors": [], "ready": 0, "go": asyncio.Event(), "deadline": 0.0}
    watcher = asyncio.create_task(leaderboard_watch(ws_base, plan["base_url"], frames, stop))
    opening = asyncio.Semaphore(25)
    rng = random.Random(1)
    voters = [
        asyncio.create_task(ws_voter(ws_base, plan["base_url"], owner, out, rng, opening)) for owner in plan["owners"]
    ]
    give_up = time.monotonic() + 120
    while out["ready"] < len(voters) and time.monotonic() < give_up and not any(v.done() for v in voters):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the leaderboard socket has its first frame
    out["deadline"] = time.monotonic() + plan["seconds"]
    out["go"].set()
    results = await asyncio.gather(*voters, return_exceptions=True)
    out["errors"] += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    await settle(frames, len(out["confirmed"]) + plan["already"])
    stop.set()
    await watcher
    return {"sent": out["sent"], "confirmed": out["confirmed"], "errors": out["errors"], "frames": frames}


async def settle(frames: list, total: int) -> None:
    """Wait for the leaderboard to show every vote (or give up after SETTLE_SECONDS)."""
    end = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < end and not (frames and frames[-1][1] >= total):
        await asyncio.sleep(0.02)


async def clients_services(plan: dict) -> dict:
    """Votes through `services.vote_cast` from one thread per session (no websocket)."""
    from django.db import close_old_connections

    from arena import services
    from arena.clients import client_identity

    ws_base = plan["base_url"].replace("http://", "ws://")
    frames: list = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(leaderboard_watch(ws_base, plan["base_url"], frames, stop))
    await asyncio.sleep(0.5)
    sent, confirmed, errors = [], [], []
    lock = threading.Lock()
    deadline = time.monotonic() + plan["seconds"]
    go = threading.Barrier(len(plan["owners"]))

    def voter(owner: dict, seed: int) -> None:
        rng = random.Random(seed)
        client = client_identity(session_key=owner["session"], ip="127.0.0.1")
        go.wait(timeout=60)
        try:
            for battle in owner["battles"]:
                if time.monotonic() >= deadline:
                    break
                at = time.monotonic()
                try:
                    services.vote_cast(battle_id=battle, client=client, outcome=rng.choice(OUTCOMES))
                except Exception as exc:  # noqa: BLE001 - counted, not raised
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    sent.append(at)
                    confirmed.append(time.monotonic())
        finally:
            close_old_connections()

    threads = [threading.Thread(target=voter, args=(o, i)) for i, o in enumerate(plan["owners"])]
    for t in threads:
        t.start()
    await asyncio.get_running_loop().run_in_executor(None, lambda: [t.join(plan["seconds"] + 120) for t in threads])
    await settle(frames, len(confirmed) + plan["already"])
    stop.set()
    await watcher
    return {"sent": sorted(sent), "confirmed": sorted(confirmed), "errors": errors, "frames": frames}


def clients_role(plan_path: str, out_path: str) -> None:
    import uvloop

    plan = json.loads(Path(plan_path).read_text())
    if plan["via"] == "services":
        django_setup({})
    main = clients_services if plan["via"] == "services" else clients_ws
    Path(out_path).write_text(json.dumps(uvloop.run(main(plan))))


# --- analysis ----------------------------------------------------------------------------------


def staleness(confirmed: list[float], frames: list[tuple[float, int]], already: int) -> dict:
    confirmed = sorted(confirmed)
    if not confirmed:
        return {"samples": [], "final": float("nan")}
    samples, shown, f = [], already, 0
    t, end = confirmed[0], confirmed[-1]
    frames = sorted(frames)
    while t <= end:
        while f < len(frames) and frames[f][0] <= t:
            shown = max(shown, frames[f][1])
            f += 1
        done = sum(1 for c in confirmed if c <= t) + already
        waiting = shown - already  # votes of this run shown; the next one is the oldest not shown
        samples.append(t - confirmed[waiting] if done > shown and waiting < len(confirmed) else 0.0)
        t += 0.05
    total = len(confirmed) + already
    shown_all = next((at for at, votes in frames if votes >= total), None)
    final = max(shown_all - confirmed[-1], 0.0) if shown_all is not None else float("inf")
    return {"samples": samples, "final": final}


def run(args, stack: Stack, owners: list[dict], workdir: Path, already: int) -> dict:
    plan = {"base_url": f"http://127.0.0.1:{stack.port}", "owners": owners, "seconds": args.seconds,
            "via": args.via, "already": already}
    plan_path, out_path = workdir / "votes-plan.json", workdir / "votes-result.json"
    plan_path.write_text(json.dumps(plan))
    cpu0, web0, (tot0, idle0), mine0 = tree_cpu(stack.pids), tree_cpu([stack.web.pid]), machine_ticks(), own_cpu()
    env = {**os.environ, **stack.env} if args.via == "services" else None
    profilers = []
    for name, target in ([("web", stack.web), ("worker", stack.workers[0])] if args.profile else []):
        profilers.append(subprocess.Popen(
            [py_spy(), "record", "--pid", str(target.pid),
             "--duration", str(int(args.seconds + 3)), "--rate", "200", "--format", "raw", "--nonblocking", "--gil",
             "--output", str(Path(args.profile) / f"{name}-{args.via}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    proc = subprocess.run([PY, __file__, "--role", "clients", "--plan", str(plan_path), "--out", str(out_path)],
                          cwd=ROOT, env=env, timeout=args.seconds + 300, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the client process failed:\n{proc.stderr[-3000:]}")
    cpu1, web1, (tot1, idle1), mine1 = tree_cpu(stack.pids), tree_cpu([stack.web.pid]), machine_ticks(), own_cpu()
    for profiler in profilers:
        profiler.wait(timeout=60)
    result = json.loads(out_path.read_text())
    votes, counted = votes_counted()
    confirmed, sent = sorted(result["confirmed"]), sorted(result["sent"])
    window = (confirmed[-1] - sent[0]) if confirmed and sent else float("nan")
    stale = staleness(confirmed, [tuple(f) for f in result["frames"]], already)
    return {
        "via": args.via, "clients": len(owners), "votes": votes - already, "counted": counted - already,
        "confirmed": len(confirmed), "errors": result["errors"], "window": window,
        "votes_per_s": (votes - already) / window if window and window > 0 else float("nan"),
        "stale_p50": pct(stale["samples"], 50), "stale_p99": pct(stale["samples"], 99),
        "stale_max": max(stale["samples"], default=float("nan")), "stale_final": stale["final"],
        "frames": len(result["frames"]), "cpu_per_vote_ms": (cpu1 - cpu0) / max(votes - already, 1) * 1000,
        "cpu_web_per_vote_ms": (web1 - web0) / max(votes - already, 1) * 1000,
        "busy": 1 - (idle1 - idle0) / max(tot1 - tot0, 1),
        "outside": max((tot1 - tot0) - (idle1 - idle0) - (mine1 - mine0) * CLK_TCK, 0) / max(tot1 - tot0, 1),
    }


def print_row(r: dict) -> None:
    print(
        f"{r['via']}, {r['clients']} clients: {r['votes']} votes recorded ({r['counted']} counted, {r['confirmed']} "
        f"confirmed) in {r['window']:.2f} s = {r['votes_per_s']:.0f} votes/s; leaderboard staleness p50 "
        f"{r['stale_p50']:.2f} / p99 {r['stale_p99']:.2f} / max {r['stale_max']:.2f} s, last vote shown after "
        f"{r['stale_final']:.2f} s ({r['frames']} leaderboard frames); "
        f"web+worker CPU {r['cpu_per_vote_ms']:.1f} ms/vote "
        f"(web {r['cpu_web_per_vote_ms']:.1f}); machine busy {r['busy']:.0%} (outside the bench {r['outside']:.0%})",
        flush=True,
    )
    for error in r["errors"][:5]:
        print(f"   error: {error}", flush=True)


def markdown(rows: list[dict]) -> str:
    lines = [
        f"Votes on finished battles (targets: ≥ {TARGET_VOTES_PER_SECOND} votes/s, "
        f"leaderboard ≤ {TARGET_STALE_SECONDS:g} s "
        "stale); one uvicorn process, one Celery worker.\n",
        "| votes through | clients | votes recorded | votes/s | leaderboard staleness p50 / p99 / max s "
        "| last vote shown after s | CPU ms/vote: web + worker (web) | machine busy (outside the bench) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok_rate = "✓" if r["votes_per_s"] >= TARGET_VOTES_PER_SECOND else "✗"
        ok_stale = "✓" if max(r["stale_max"], r["stale_final"]) <= TARGET_STALE_SECONDS else "✗"
        lines.append(
            f"| {'websocket `vote`' if r['via'] == 'ws' else '`services.vote_cast` (threads)'} | {r['clients']} | "
            f"{r['votes']} | {r['votes_per_s']:.0f} {ok_rate} | {r['stale_p50']:.2f} / {r['stale_p99']:.2f} / "
            f"{r['stale_max']:.2f} {ok_stale} | {r['stale_final']:.2f} | "
            f"{r['cpu_per_vote_ms']:.1f} ({r['cpu_web_per_vote_ms']:.1f}) | {r['busy']:.0%} ({r['outside']:.0%}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer clients and a shorter run")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--battles", type=int, default=40, help="finished battles per client")
    parser.add_argument("--seconds", type=float, default=15, help="voting stops after this long")
    parser.add_argument("--via", choices=("ws", "services", "both"), default="both")
    stack_arguments(parser)
    args = parser.parse_args()
    if args.role == "clients":
        clients_role(args.plan, args.out)
        return
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.clients, args.battles, args.seconds = 20, 20, 5
    workdir = Path(tempfile.mkdtemp(prefix="arena-bench-votes-"))
    (workdir / "logs").mkdir()
    stack_args = types.SimpleNamespace(
        env=["CELERY_QUEUE=bench-votes", *args.env], channel_layer=None, workers=1, concurrency=8,
        web_workers=args.web_workers, asgi=args.asgi, web_env=args.web_env,
    )
    print(f"database {DATABASE_URL}, redis {REDIS_URL}; logs in {workdir / 'logs'}", flush=True)
    database_reset()
    redis_reset()
    stack = Stack(stack_args, workdir / "logs")
    stack.manage("migrate", "--no-input")
    django_setup(stack.env)
    vias = ["ws", "services"] if args.via == "both" else [args.via]
    owners = battles_create(args.clients * len(vias), args.battles)
    rows = []
    try:
        stack.start()
        already = 0
        for i, via in enumerate(vias):
            args.via = via
            mine = owners[i * args.clients:(i + 1) * args.clients]
            row = run(args, stack, mine, workdir, already)
            print_row(row)
            rows.append(row)
            already += row["counted"]
    finally:
        stack.stop()
    print()
    print(markdown(rows))
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
