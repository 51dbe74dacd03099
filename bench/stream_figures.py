"""bench/stream.py's figures: each token's latency from the dev servers' emission log and the
clients' frames, the run's summary, and its lines and Markdown table."""

from __future__ import annotations

from figures import pct
from stack import DATABASE_URL

TARGETS = {
    "added_p50": 5.0, "added_p99": 30.0, "ttft_p50": 30.0,
    # Per token, per battle start and to the first token (the costs table).
    "cpu_per_1k": 0.20, "start_cpu_ms": 5.0, "ttft_arena": 250.0,
}
# The protocol the models are served over, and the direct client that is the baseline.
PROTOCOLS = {
    "tgi": "TGI's /generate_stream (direct: text_generation.AsyncClient)",
    "openai": "OpenAI's /v1/chat/completions (direct: openai.AsyncOpenAI)",
}


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
            problems.append(f"{s['tag']}/{s['model']} (direct): {s['error'] or 'no emitted stream'}")
            continue
        text_emitted, spans = token_spans(stream["tokens"])
        to_model.append((stream["arrived"] - s["sent"]) * 1000)
        expected += len(spans)
        # Characters are matched to tokens, as for the arena's deltas, not events to tokens: a token
        # counts as received with its last character, whatever each event or chunk holds. Special
        # tokens have no characters on either side (TGI flags them; the OpenAI route sends the
        # end-of-sequence token as no content, and its role, final and usage chunks have none).
        received, char_at = "", []
        for at, text, special in s["tokens"]:
            if not special and text:
                received += text
                char_at += [at] * len(text)
        for index, (start, end, sent) in enumerate(spans):
            if end <= len(received) and received[start:end] == text_emitted[start:end]:
                delivered += 1
                lat.append((char_at[end - 1] - sent) * 1000)
                timed.append((sent, lat[-1]))
                if index == 0:
                    first.append(lat[-1])
        if spans:
            windows.append((spans[0][2], spans[-1][2]))
        if char_at:
            ttft.append((char_at[0] - s["sent"]) * 1000)
        if received != text_emitted:
            problems.append(f"{s['tag']}/{s['model']} (direct): text differs "
                            f"(received {len(received)} of {len(text_emitted)} chars)")
        if not s["finished"]:
            problems.append(f"{s['tag']}/{s['model']} (direct): no final event")
        if "usage" in s and s["usage"] is None:
            problems.append(f"{s['tag']}/{s['model']} (direct): no usage chunk")
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
    battle_ids, to_state = [], []
    for b in result["battles"]:
        # The web's part of the time to first token: the battle created, its replies queued, its state read.
        state_at = next((at for at, f in b["frames"] if f["type"] == "state"), None)
        if state_at is not None:
            to_state.append((state_at - b["sent"]) * 1000)
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
            "worker_part": worker_part, "web_part": web_part, "durations": durations, "to_state": to_state,
            **steady(timed, windows)}


def summarise(r: dict) -> dict:
    d, a = r["direct"], r["arena"]
    cpu_tokens = max(a["delivered"] * (r["rounds"] if r["steady"] else 1), 1)
    s = {
        "n": r["n"], "streams": r["streams"], "rounds": r["rounds"], "steady": r["steady"], "protocol": r["protocol"],
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
        "start_cpu_ms": r.get("start_cpu_ms"),
    }
    # TTFT, taken apart: prompt → request at the model server, and first token written → received.
    s["to_model_direct"], s["to_model_arena"] = pct(d["to_model"], 50), pct(a["to_model"], 50)
    s["first_direct"], s["first_arena"] = pct(d["first"], 50), pct(a["first"], 50)
    s["to_state"] = pct(a["to_state"], 50)
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
        f"{s['protocol']} N={label(s)}: per-token latency direct p50 {s['direct_p50']:.1f} / p99 "
        f"{s['direct_p99']:.1f} ms, arena p50 {s['arena_p50']:.1f} / p99 {s['arena_p99']:.1f} ms "
        f"→ added p50 {s['added_p50']:.1f} / p99 {s['added_p99']:.1f} ms [model → worker → Redis p50 "
        f"{s['worker_p50']:.1f} / p99 {s['worker_p99']:.1f}, Redis → web → client p50 {s['web_p50']:.1f} / p99 "
        f"{s['web_p99']:.1f}]; once all streams had started ({s['steady_streams']} streams still running, "
        f"{s['steady_tokens']} tokens): added p50 {s['steady_p50'] - s['steady_direct_p50']:.1f} / p99 "
        f"{s['steady_p99'] - s['steady_direct_p99']:.1f} ms; TTFT direct {s['ttft_direct']:.0f} ms, "
        f"arena {s['ttft_arena']:.0f} ms (p99 {s['ttft_arena_p99']:.0f}) → +{s['ttft_over']:.0f} ms [prompt → state "
        f"{s['to_state']:.0f} ms, prompt → model "
        f"{s['to_model_direct']:.0f} → {s['to_model_arena']:.0f} ms, first token → client {s['first_direct']:.1f} → "
        f"{s['first_arena']:.1f} ms]; worker time per reply p50 {s['duration_p50'] / 1000:.2f} s (max "
        f"{s['duration_max'] / 1000:.2f} s); tokens "
        f"{s['delivered']}/{s['expected']} (direct {s['direct_delivered']}/{s['direct_expected']}); "
        f"{s['tokens_per_frame']:.2f} tokens/frame; CPU {s['cpu_per_1k']:.2f} s/1000 tokens (web "
        f"{s['cpu_web_per_1k']:.2f}, workers {s['cpu_per_1k'] - s['cpu_web_per_1k']:.2f}; the bench's dev servers and "
        f"clients {s['cpu_bench_per_1k']:.2f}); machine busy "
        f"{s['busy']:.0%} (outside the bench's processes {s['outside']:.0%}); cores used on average: web "
        f"{s['web_cores']:.2f}, workers {s['workers_cores']:.2f}; web CPU per battle start "
        f"{_ms(s['start_cpu_ms'])}",
        flush=True,
    )
    for problem in s["problems"][:5]:
        print(f"   problem: {problem}", flush=True)
    if len(s["problems"]) > 5:
        print(f"   ... and {len(s['problems']) - 5} more", flush=True)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def costs_markdown(rows: list[dict]) -> str:
    """The costs: the relay's CPU per token, the web's per battle start, the time to first token."""
    head = (
        f"Costs (targets: ≤ {TARGETS['cpu_per_1k']:g} CPU-s per 1000 tokens, web + worker; ≤ "
        f"{TARGETS['start_cpu_ms']:g} ms of web CPU per battle start; first token ≤ {TARGETS['ttft_arena']:g} ms "
        "after the prompt at the median):\n\n"
        "| battles (streams) | CPU s / 1000 tokens: web + worker (web) | web CPU per battle start, ms "
        "| time to first token p50 / p99 ms |\n|---|---|---|---|\n"
    )
    lines = [
        f"| {label(s)} | {s['cpu_per_1k']:.2f} {'✓' if s['cpu_per_1k'] <= TARGETS['cpu_per_1k'] else '✗'} "
        f"({s['cpu_web_per_1k']:.2f}) | "
        + ("–" if s["start_cpu_ms"] is None else verdict(s["start_cpu_ms"], TARGETS["start_cpu_ms"]))
        + f" | {verdict(s['ttft_arena'], TARGETS['ttft_arena'])} / {s['ttft_arena_p99']:.0f} |"
        for s in rows
    ]
    return head + "\n".join(lines)


def markdown(rows: list[dict], args) -> str:
    head = (
        f"Streaming over {PROTOCOLS[args.protocol]}, {args.tokens} tokens per reply at {args.rate:g} tokens/s "
        f"(TTFT {args.ttft * 1000:.0f} ms), "
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
