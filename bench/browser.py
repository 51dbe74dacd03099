"""Browser benchmark: what the arena page costs Chromium per streamed token (a script, not a test).

    .venv/bin/python bench/browser.py [--quick] [--lengths 100,1000,2000] [--rate 100]

It starts the stack (bench/stack.py: uvicorn and a Celery worker on the bench database and Redis
database), two dev servers in this process paced at `--rate` tokens/s, and Debian's chromium
through Playwright (`--headless --no-sandbox --disable-gpu --disable-background-networking`). For
each reply length it opens the arena page in a fresh browser context and sends one prompt: both
sides echo a markdown text (paragraphs, lists, code blocks, tables, as a model writes them) cut at
exactly that many tokens, streamed side by side.

- CPU per token: utime+stime of every chromium process (/proc/<pid>/stat) from the prompt sent to
  both replies drawn as done, over the tokens of both replies; "net" takes away what the same
  processes spend idle with the page open for as long (measured before each run).
- Added latency per token, from the in-page clock (performance.timeOrigin + now(), the same wall
  clock as this process's): "page" is from the websocket frame carrying the token arriving to
  the reply's DOM changing with it (a MutationObserver callback, after the frame's drawing);
  "end to end" is from the dev server writing the token (its StreamObserver hook) to that DOM
  change. A token counts as shown with its last character, attributed by the deltas' offsets.

Everything is bounded: each reply has a deadline, and the script stops its processes at the end.
Figures are printed as a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from stack import ROOT, Stack, _proc_stat, database_reset, descendants, redis_reset

sys.path.insert(0, str(ROOT))

from devserver import DevServerConfig, StreamObserver, serve_in_thread  # after the path is set
from devserver.text import tokenize

MAIN_THREAD = {"TaskDuration": "all tasks", "ScriptDuration": "script", "RecalcStyleDuration": "style",
               "LayoutDuration": "layout"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MODELS = [("page-zephyr", "zephyr"), ("page-mistral", "mistral-instruct")]

# Logs, in the page, when each delta frame arrives (side, end offset) and when each column's DOM
# changed; read back after the replies end.
PAGE_PROBE = """
window.__bench = { origin: performance.timeOrigin, deltas: [], drawn: { a: [], b: [] } };
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      if (!event.data.includes('"delta"')) return;
      const frame = JSON.parse(event.data);
      if (frame.type !== "delta") return;
      window.__bench.deltas.push([performance.now(), frame.side, frame.offset + frame.text.length]);
    });
  }
};
document.addEventListener("DOMContentLoaded", () => {
  for (const side of ["a", "b"]) {
    const column = document.querySelector(`[data-testid="reply-${side}"]`);
    new MutationObserver(() => window.__bench.drawn[side].push(performance.now()))
      .observe(column, { childList: true, subtree: true, characterData: true });
  }
});
"""


def markdown_reply(tokens: int) -> str:
    """A reply such as a model writes, at least `tokens` dev-server tokens long."""
    sections = []
    i = 0
    while len(tokenize("\n\n".join(sections))) < tokens + 20:
        i += 1
        sections.append(
            f"## Step {i}\n\nThis step explains **what happens** in part {i}, with `inline code` and a "
            f"[reference](https://example.com/{i}) to follow; it spans a couple of sentences so the "
            f"paragraph wraps.\n\n- first point of step {i}\n- second point, *emphasised*\n  - a nested detail\n"
            f"- third point\n\n```python\ndef step_{i}(values):\n    return [v * {i} for v in values]\n```\n\n"
            f"| item | value |\n|------|-------|\n| a{i} | {i} |\n| b{i} | {i * 2} |"
        )
    return "\n\n".join(sections)


class TokenLog(StreamObserver):
    """When each token was written, per model: [(monotonic time, text)] of its latest stream."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[str, list[tuple[float, str]]] = {}
        self.keys: dict[int, str] = {}

    def stream_started(self, stream: object, model_id: str, when: float) -> None:
        with self.lock:
            self.keys[id(stream)] = model_id
            self.streams[model_id] = []

    def token_sent(self, stream: object, text: str, special: bool, when: float) -> None:
        model = self.keys.get(id(stream))
        if model is not None and not special:
            self.streams[model].append((when, text))


def chromium_pids() -> list[int]:
    """Chromium's processes among this process's descendants (the Playwright driver's children)."""
    mine = descendants([os.getpid()])
    found = []
    for pid in mine:
        with contextlib.suppress(OSError):
            if b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                found.append(pid)
    return found


def _kind(pid: int) -> str:
    with contextlib.suppress(OSError):
        for arg in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split():
            if arg.startswith(b"--type="):
                return arg[7:].decode()
    return "browser"


def chromium_cpu(pids: list[int], kinds: dict[str, float] | None = None) -> float:
    """CPU seconds of these chromium processes and any started since (renderers come and go);
    `kinds` gets them by process type (browser, renderer, gpu-process, utility...)."""
    total = 0.0
    for pid in set(pids) | set(chromium_pids()):
        if stat := _proc_stat(pid):
            total += stat[1]
            if kinds is not None:
                kinds[_kind(pid)] = kinds.get(_kind(pid), 0.0) + stat[1]
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def latencies(probe: dict, written: dict[str, list[tuple[float, str]]], side_models: dict[str, str],
              clock_offset: float) -> tuple[list[float], list[float]]:
    """(page, end to end) latencies in ms of every token of both sides."""
    page_ms, total_ms = [], []
    for side, model in side_models.items():
        deltas = [(at, end) for at, s, end in probe["deltas"] if s == side]
        drawn = sorted(probe["drawn"][side])
        position = 0
        d = 0
        for when, text in written[model]:
            position += len(text)
            while d < len(deltas) and deltas[d][1] < position:
                d += 1
            if d == len(deltas):
                break  # not in a delta: the done frame's text brought it
            arrived = deltas[d][0]
            shown = next((t for t in drawn if t >= arrived), None)
            if shown is None:
                continue
            page_ms.append(shown - arrived)
            total_ms.append(probe["origin"] + shown - (when + clock_offset) * 1000)
    return page_ms, total_ms


def run(args) -> list[dict]:
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="arena-bench-browser-"))
    logs = workdir / "logs"
    logs.mkdir()
    log = TokenLog()
    max_tokens = max(args.lengths)
    configs = [
        DevServerConfig(model_id=name, time_to_first_token=0.05, tokens_per_second=args.rate, observer=log,
                        max_input_tokens=4 * max_tokens + 1000, max_total_tokens=8 * max_tokens + 2000)
        for name, _ in MODELS
    ]
    stack_args = argparse.Namespace(env=[], web_env=[], channel_layer=None, workers=1, concurrency=16,
                                    web_workers=1, asgi="config.asgi:application")
    stack = Stack(stack_args, logs)
    rows = []
    with contextlib.ExitStack() as stop:
        urls = [stop.enter_context(serve_in_thread(config)) for config in configs]
        database_reset()
        redis_reset()
        stack.manage("migrate", "--noinput")
        stop.callback(stack.stop)
        stack.start()
        playwright = stop.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        stop.callback(browser.close)
        base = f"http://127.0.0.1:{stack.port}"
        clock_offset = time.time() - time.monotonic()
        for tokens in args.lengths:
            for (name, template), url in zip(MODELS, urls, strict=True):
                stack.manage("add_model", name, url, "--template", template, "--param", f"max_new_tokens={tokens}",
                             "--timeout", "600")
            for round_ in range(args.rounds if tokens <= 200 else 1):
                context = browser.new_context()
                page = context.new_page()
                page.add_init_script(PAGE_PROBE)
                page.goto(base + "/")
                page.get_by_test_id("send").wait_for()
                pids = chromium_pids()
                # Where the page's main thread spends its time (Chrome's own counters, in seconds).
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                stream_seconds = tokens / args.rate + 0.3
                idle_start = chromium_cpu(pids)
                time.sleep(min(stream_seconds, 5.0))
                idle_rate = (chromium_cpu(pids) - idle_start) / min(stream_seconds, 5.0)
                page.get_by_test_id("prompt").fill("[[devserver:echo]]\n" + markdown_reply(tokens))
                metrics_before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                kinds_before: dict[str, float] = {}
                start = chromium_cpu(pids, kinds_before)
                t0 = time.monotonic()
                page.get_by_test_id("send").click()
                page.wait_for_function(
                    "() => document.querySelectorAll('.msg.bot.done').length === 2",
                    timeout=(stream_seconds * 3 + 30) * 1000, polling=250,
                )
                elapsed = time.monotonic() - t0
                kinds: dict[str, float] = {}
                cpu = chromium_cpu(pids, kinds) - start
                by_kind = {k: v - kinds_before.get(k, 0.0) for k, v in kinds.items()}
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                main_thread = {k: metrics[k] - metrics_before[k] for k in MAIN_THREAD}
                probe = page.evaluate("() => window.__bench")
                # The reveal after a vote says which model answered on which side.
                page.get_by_test_id("vote-tie").click()
                side_models = {}
                for side in ("a", "b"):
                    name_shown = page.get_by_test_id(f"model-{side}")
                    name_shown.filter(has_text="page-").wait_for(timeout=10_000)
                    side_models[side] = name_shown.inner_text().lstrip("— ").strip()
                streamed = sum(len(log.streams[m]) for m in side_models.values())
                page_ms, total_ms = latencies(probe, log.streams, side_models, clock_offset)
                context.close()
                rows.append({
                    "main_thread": main_thread,
                    "tokens": tokens, "round": round_, "streamed": streamed, "seconds": elapsed, "cpu": cpu,
                    "idle": idle_rate * elapsed, "page_ms": page_ms, "total_ms": total_ms,
                })
                print(
                    f"  {tokens:>5} tokens/reply, run {round_ + 1}: {streamed} tokens in {elapsed:.1f} s, chromium CPU "
                    f"{cpu * 1000 / streamed:.2f} ms/token ({(cpu - idle_rate * elapsed) * 1000 / streamed:.2f} net of "
                    f"idle), page latency p50 {percentile(page_ms, 0.5):.1f} ms; by process: "
                    + ", ".join(f"{k} {v * 1000 / streamed:.2f}" for k, v in sorted(by_kind.items()) if v)
                    + "; renderer main thread: "
                    + ", ".join(f"{MAIN_THREAD[k]} {v * 1000 / streamed:.2f}" for k, v in main_thread.items()),
                    flush=True,
                )
    shutil.rmtree(workdir, ignore_errors=True)
    return rows


def table(rows: list[dict], rate: float) -> str:
    lines = [
        f"Two replies streaming side by side at {rate:g} tokens/s each; Chromium's CPU (all its processes) "
        "per streamed token, and the latency the page adds to each token.",
        "",
        "| tokens per reply | runs | Chromium CPU per token | net of idle | page latency p50 / p95 | "
        "end to end p50 / p95 |",
        "|---|---|---|---|---|---|",
    ]
    for tokens in sorted({r["tokens"] for r in rows}):
        mine = [r for r in rows if r["tokens"] == tokens]
        streamed = sum(r["streamed"] for r in mine)
        cpu = sum(r["cpu"] for r in mine) * 1000 / streamed
        net = sum(r["cpu"] - r["idle"] for r in mine) * 1000 / streamed
        page_ms = [x for r in mine for x in r["page_ms"]]
        total_ms = [x for r in mine for x in r["total_ms"]]
        lines.append(
            f"| {tokens:,} | {len(mine)} | {cpu:.2f} ms | {net:.2f} ms | "
            f"{percentile(page_ms, 0.5):.1f} / {percentile(page_ms, 0.95):.1f} ms | "
            f"{percentile(total_ms, 0.5):.1f} / {percentile(total_ms, 0.95):.1f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,1000,2000", help="tokens per reply, comma-separated")
    parser.add_argument("--rate", type=float, default=100, help="tokens/s of each dev server")
    parser.add_argument("--rounds", type=int, default=5, help="battles of each short length (200 tokens or fewer)")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 tokens, 2 short rounds")
    args = parser.parse_args()
    args.lengths = [int(x) for x in args.lengths.split(",")]
    if args.quick:
        args.lengths, args.rounds = [100, 1000], 2
    if shutil.which("chromium") is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    print(f"{os.cpu_count()} CPUs; chromium {CHROMIUM_FLAGS}; {args.rate:g} tokens/s per side", flush=True)
    rows = run(args)
    print()
    print(table(rows, args.rate))


if __name__ == "__main__":
    main()
