"""Backend benchmark: the CPU each model backend spends per token, in one process (a script, not a test).

    .venv/bin/python bench/backends.py [--streams 50] [--tokens 200] [--rounds 3]

A development model server runs in a process of its own (unpaced beyond `--rate`), and this
process streams `--streams` replies of `--tokens` tokens at once through each backend of
`inference` — `TgiBackend` (text_generation over TGI's `/generate_stream`) and
`OpenAIChatBackend` (the openai package over `/v1/chat/completions`) — then prints the CPU time
(utime + stime of this process) per 1000 tokens, the best of `--rounds`, and the ratio. No
Django, no Redis: only what the worker's event loop spends reading a model's stream.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.backends import Delta, GenerationRequest  # noqa: E402 - after the path is set
from inference.openai_chat import OpenAIChatBackend, clients_close  # noqa: E402
from inference.tgi import TgiBackend  # noqa: E402

MODEL = "bench-model"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def request_for(protocol: str, url: str, tokens: int) -> GenerationRequest:
    # Echo a prompt longer than the reply: every reply is exactly `tokens` tokens.
    messages = [{"role": "user", "content": "[[devserver:echo]] " + " ".join(["word"] * (tokens * 2))}]
    if protocol == "openai":
        return GenerationRequest(endpoint_url=f"{url}/v1", template="", messages=messages,  # type: ignore[arg-type]
                                 parameters={"max_new_tokens": tokens}, served_model=MODEL)
    return GenerationRequest(endpoint_url=url, template="zephyr", messages=messages,  # type: ignore[arg-type]
                             parameters={"max_new_tokens": tokens})


async def one(protocol: str, request: GenerationRequest) -> int:
    backend = OpenAIChatBackend() if protocol == "openai" else TgiBackend()
    tokens = 0
    async for event in backend.stream(request):
        tokens += isinstance(event, Delta)
    return tokens


async def measure(protocol: str, url: str, args) -> float:
    request = request_for(protocol, url, args.tokens)
    await one(protocol, request)  # warm-up: imports, the client, a pooled connection
    best = float("inf")
    for _ in range(args.rounds):
        before = cpu_seconds()
        tokens = sum(await asyncio.gather(*(one(protocol, request) for _ in range(args.streams))))
        best = min(best, (cpu_seconds() - before) / tokens * 1000)
    return best


async def run(url: str, args) -> dict[str, float]:
    figures = {protocol: await measure(protocol, url, args) for protocol in ("tgi", "openai")}
    await clients_close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50, help="replies streamed at once")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=100, help="tokens per second of each stream")
    parser.add_argument("--rounds", type=int, default=3, help="the best of this many bursts is kept")
    parser.add_argument("--port", type=int, default=8795)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "devserver", "--model-id", MODEL, "--port", str(args.port), "--ttft", "0",
         "--tokens-per-second", str(args.rate), "--max-total-tokens", str(args.tokens * 8 + 1024),
         "--max-input-tokens", str(args.tokens * 8)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)  # the server binds its port
        figures = asyncio.run(run(f"http://127.0.0.1:{args.port}", args))
    finally:
        server.kill()
    print(f"{args.streams} streams × {args.tokens} tokens at {args.rate:g} tokens/s, best of {args.rounds}")
    print("| backend | CPU ms / 1000 tokens | × TGI |")
    print("|---|---|---|")
    for protocol, name in (("tgi", "TgiBackend (text_generation)"), ("openai", "OpenAIChatBackend (openai)")):
        print(f"| {name} | {figures[protocol] * 1000:.0f} | {figures[protocol] / figures['tgi']:.2f} |")


if __name__ == "__main__":
    main()
