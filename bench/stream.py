"""Streaming benchmark: what the relay adds to every token (a script, not a test).

    .venv/bin/python bench/stream.py [--quick] [--n 1,50,100,200] [--tokens 200] [--rate 50]
                                     [--protocol tgi|openai]

It starts the whole streaming path on loopback and measures it against a direct client:

- two dev servers (`devserver`) in this process, each on its own thread and event loop, paced at
  `--rate` tokens/s after `--ttft`, logging the monotonic time at which each token event is
  written to its socket and at which each request arrived (the server's `StreamObserver` hook,
  called alike on its TGI and OpenAI routes);
- the two bench models registered over `--protocol`: `tgi` (the default; `add_model --template`,
  TGI's `/generate_stream`, the prompt rendered with the model's chat template) or `openai`
  (`add_model --protocol openai --served-model NAME` on the dev server's URL + `/v1`: OpenAI's
  `/v1/chat/completions`, the messages sent as they are);
- PostgreSQL database `arena_bench` (dropped, created and migrated at start) and Redis database 14
  (flushed at start), both overridable with BENCH_DATABASE_URL / BENCH_REDIS_URL; tasks go to a
  queue of their own (`bench-stream`);
- the ASGI server as deployed (uvicorn, `--loop uvloop --http httptools`, the image's flags) and
  `--workers` Celery worker processes (`--pool threads --concurrency 400`: a thread per stream);
- the clients in a separate process (so that their event loop and GIL are not the dev servers'):
  for each N, first N×2 direct streams straight to the dev servers over the same protocol (the
  baseline: with `tgi` a `text_generation.AsyncClient` per stream and the rendered prompt and
  template stops, as the worker sends them; with `openai` one `openai.AsyncOpenAI` per server for
  the process's loop, as the workers keep one per loop and server, warmed by a one-token request,
  streaming `chat.completions.create(stream=True, stream_options={"include_usage": True},
  max_tokens=...)` with the message untemplated and no retries), then N battles through real websockets (GET /
  for the session cookie, Origin header, one `prompt` frame each), both starting over the same
  ramp (`--ramp` s for 200 battles, proportionally less for fewer). At N=1 five battles run one
  after the other (`--rounds`).
  Web and workers get ARENA_BATTLES_PER_MINUTE / ARENA_TURNS_PER_MINUTE = 100000;
- a listener on the channel layer's Redis pub/sub (a third process) noting when each delta passes,
  which splits a token's latency into model → worker → Redis and Redis → web → browser.

Replies are exactly `--tokens` tokens: each prompt asks the dev server to echo it
(`[[devserver:echo]]`, which is not shortened to the usual reply length) and is longer than
`max_new_tokens`, which the two registered models set to `--tokens`. Each prompt starts with a
tag of its own, so every emitted stream is matched to its battle and side (the side's model is
read from the database).

A token's latency is the time it was received by a client minus the time the dev server wrote it
(`time.monotonic()`, CLOCK_MONOTONIC, one clock for every process of the machine): the observer
is called just before the token's event (TGI) or chunk (OpenAI) is written. Deltas are coalesced:
the characters of each delta (by its `offset`) are attributed back to the tokens they contain; a
token counts as received with its last character, and the direct streams are matched the same
way, by characters rather than by events. Special tokens count on neither side: TGI flags them,
and the OpenAI route sends the end-of-sequence token as no content (its final chunk, with
`finish_reason`, goes in its place), as it does the role and usage chunks. Added latency = the
arena's percentile minus the direct client's at the same concurrency, over the same protocol;
"once all streams had started" repeats it for the tokens emitted after the last stream's first
token (no battle still being set up). TTFT overhead = (first delta received − prompt sent) −
(first token received − direct request sent), per side, at the median, and taken apart: prompt →
request at the model server, first token written → received. Delivery: every token must arrive,
in order, and the text received (snapshot + deltas, overlap dropped by offset) must equal the
text the dev server emitted and the `done` frame's text; each direct stream's text must equal it
too, and end with TGI's final event (`generated_text`) or with a `finish_reason` and a usage
chunk. CPU: utime+stime (/proc/<pid>/stat) of the web and worker processes over the arena phase,
per 1000 tokens delivered (and of the bench's own processes); "busy" is the whole machine's
non-idle share over the phase (/proc/stat), and the share of it used by other programs
(including Redis and PostgreSQL).

For comparisons: `--env KEY=VALUE` (web and workers), `--web-env KEY=VALUE` (web only),
`--channel-layer core|pubsub` (a settings module in the temporary directory that replaces
CHANNEL_LAYERS), `--asgi module:app`, `--workers`, `--web-workers`, `--profile DIR` (py-spy).

Everything is bounded: each phase has a deadline, and the script stops its processes at the end.
Each printed row starts with the protocol; a Markdown table for the README, its heading naming
the protocol and the direct client, is printed last; the logs are kept when something went wrong.
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
    py_spy,
    redis_reset,
    stack_arguments,
    tree_cpu,
    wait_for,
)
from stream_clients import PHASE_DEADLINE, clients_main, monitor_main
from stream_figures import analyse_arena, analyse_direct, costs_markdown, markdown, print_row, summarise

sys.path.insert(0, str(ROOT))

from devserver import StreamObserver  # after the path is set

MODELS = [("bench-zephyr", "zephyr"), ("bench-mistral", "mistral-instruct")]
WORDS = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike",
    "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee",
    "zulu",
]


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


# --- the client and monitor processes (`--role clients`, `--role monitor`; bench/stream_clients.py) ----


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
    if args.protocol == "openai":
        # As the arena's backend asks: the message as it is (the server templates it), no stop sequences.
        models = [{"name": name, "url": url, "served_model": name, "prompts": prompts}
                  for (name, _), url in zip(MODELS, urls, strict=True)]
    else:
        models = [
            {"name": name, "url": url, "stops": list(PRESETS[template].stop),
             "prompts": [prompt_render(template, [{"role": "user", "content": p}]) for p in prompts]}
            for (name, template), url in zip(MODELS, urls, strict=True)
        ]
    common = {"n": n, "tokens": args.tokens, "ramp": ramp, "tags": tags, "rounds": rounds, "protocol": args.protocol}
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
    arena_raw = run_clients({**common, "mode": "arena", "prompts": prompts, "base_url": f"http://127.0.0.1:{stack.port}",
                             "web_pid": stack.web.pid if args.web_workers == 1 else None, "steady": args.steady},
                            workdir)
    start_cpu = arena_raw.pop("start_cpu", None)
    wall = time.monotonic() - t0
    for proc in profilers:
        proc.wait(timeout=60)
    time.sleep(0.3)  # the workers store the final texts
    cpu1, (tot1, idle1), mine1 = tree_cpu(stack.pids), machine_ticks(), own_cpu()
    web1 = tree_cpu([stack.web.pid])
    published = monitor_stop(*monitor) if monitor else {}
    arena = analyse_arena(measured(arena_raw, args), log.take(), published)
    return {
        "n": n, "streams": 2 * n, "rounds": rounds, "steady": args.steady, "protocol": args.protocol,
        "direct": direct, "arena": arena,
        "cpu": cpu1 - cpu0, "wall": wall,
        "start_cpu_ms": None if start_cpu is None else start_cpu / (n * rounds) * 1000,
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
    seconds = args.profile_seconds or int(args.tokens / args.rate + 4)
    procs = []
    for name, proc in [("web", stack.web)] + [(f"worker{i}", w) for i, w in enumerate(stack.workers)]:
        out = Path(args.profile) / f"{name}-n{n}.txt"
        procs.append(subprocess.Popen(
            [py_spy(), "record", "--pid", str(proc.pid), "--duration", str(seconds),
             "--rate", "200", "--format", "raw", "--nonblocking", "--gil", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    time.sleep(0.5)
    return procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1 and 50 only")
    parser.add_argument("--protocol", choices=["tgi", "openai"], default="tgi",
                        help="how the two models are served and the direct baseline streams: TGI's /generate_stream "
                             "(text_generation) or OpenAI's /v1/chat/completions (AsyncOpenAI)")
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
    parser.add_argument("--profile-seconds", type=int, default=0,
                        help="with --profile: record only the first S seconds of each run (a burst's start)")
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
            ))) + ("/v1" if args.protocol == "openai" else "")  # an OpenAI client's base URL
            for name, _ in MODELS
        ]
        stack.manage("migrate", "--no-input")
        for (name, template), url in zip(MODELS, urls, strict=True):
            # The dev server's OpenAI route serves one model, named by its model id.
            how = ["--protocol", "openai", "--served-model", name] if args.protocol == "openai" else [
                "--template", template]
            stack.manage("add_model", name, url, *how, "--param", f"max_new_tokens={args.tokens}", "--timeout", "120")
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
    print()
    print(costs_markdown(rows))
    if args.keep_logs or not all(r["ok"] for r in rows):
        print(f"\nThe processes' logs are in {logs}", flush=True)
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
