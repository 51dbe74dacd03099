"""A judged run end to end: 80 prompts x 3 models against development servers, judged by a fourth.

Resets the bench database and Redis database, starts one Celery worker (threads) and four dev
model servers (three contestants, TGI's protocol and OpenAI's, and an OpenAI-protocol judge, each
paced `--ttft` then `--rate` tokens/s), imports the prompt set and runs
`manage.py judge_run --prompts bench --judge judge --models ... --concurrency N`, timing it from
the command's start to the run's end. Prints the time, the generations (answers + verdicts) and
the verdicts' outcome. Every pair is judged in both orders: 80 x 3 answers + 80 x 3 x 2 verdicts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stack import PY, ROOT, Stack, database_reset, free_port, redis_reset, stack_arguments, wait_for

CONTESTANTS = [("bench-zephyr", "tgi"), ("bench-mistral", "openai"), ("bench-hermes", "tgi")]
TOPICS = ["basil", "recursion", "magnets", "sourdough", "indexes", "tides", "compilers", "glaciers", "jazz",
          "photosynthesis"]
ASKS = ["How do I start with {t}?", "Explain {t} to a beginner.", "What are common mistakes with {t}?",
        "Give me three facts about {t}.", "Why does {t} matter?", "Compare two approaches to {t}.",
        "Write a short note about {t}.", "What would an expert say about {t}?"]


def prompts_file(path: Path, n: int) -> None:
    lines = [{"question_id": i, "turns": [ASKS[i % len(ASKS)].format(t=TOPICS[i // len(ASKS) % len(TOPICS)])]}
             for i in range(n)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=80)
    parser.add_argument("--concurrency", type=int, default=32, help="the run's generations at once")
    parser.add_argument("--worker-threads", type=int, default=64)
    parser.add_argument("--ttft", type=float, default=0.2, help="dev servers' time to first token, s")
    parser.add_argument("--rate", type=float, default=50, help="dev servers' tokens per second")
    stack_arguments(parser)
    args = parser.parse_args()
    args.workers, args.channel_layer = 1, None
    args.concurrency, run_concurrency = args.worker_threads, args.concurrency

    logs = Path(tempfile.mkdtemp(prefix="arena-bench-judge-")) / "logs"
    logs.mkdir()
    database_reset()
    redis_reset()
    stack = Stack(args, logs)
    stack.manage("migrate", "--noinput")
    try:
        for name, protocol in [*CONTESTANTS, ("judge", "openai")]:
            port = free_port()
            stack._spawn(f"dev-{name}", [
                PY, "-m", "devserver", "--model-id", name, "--port", str(port), "--ttft", str(args.ttft),
                "--tokens-per-second", str(args.rate)])
            url = f"http://127.0.0.1:{port}" + ("/v1" if protocol == "openai" else "")
            extra = ["--protocol", "openai"] if protocol == "openai" else ["--template", "zephyr"]
            wait_for(lambda port=port: _listening(port), 30, f"the dev server of {name}")
            stack.manage("add_model", name, url, *extra)
        stack.start()
        prompts = logs.parent / "prompts.jsonl"
        prompts_file(prompts, args.prompts)
        stack.manage("prompts_import", str(prompts), "--name", "bench")
        started = time.monotonic()
        subprocess.run(
            [PY, "manage.py", "judge_run", "--prompts", "bench", "--judge", "judge",
             "--models", ",".join(n for n, _ in CONTESTANTS), "--concurrency", str(run_concurrency)],
            cwd=ROOT, env=stack.env, check=True, timeout=3600, stdout=sys.stdout, stderr=subprocess.DEVNULL,
        )
        took = time.monotonic() - started
        summary = subprocess.run(
            [PY, "manage.py", "shell", "-c", "from arena.models import JudgeRun, JudgeGame; r = JudgeRun.objects.get();"
             " import collections, json; print(json.dumps({'generations': r.generations, 'verdicts': dict("
             "collections.Counter(JudgeGame.objects.filter(run=r).values_list('verdict', flat=True)))}))"],
            cwd=ROOT, env=stack.env, check=True, capture_output=True, text=True, timeout=120,
        ).stdout
        figures = json.loads(summary.strip().splitlines()[-1])
        print(f"{args.prompts} prompts x {len(CONTESTANTS)} models, run concurrency {run_concurrency}, "
              f"dev servers at {args.ttft} s + {args.rate:g} tokens/s: {took:.1f} s, "
              f"{figures['generations']} generations ({figures['generations'] / took:.1f}/s), "
              f"verdicts {figures['verdicts']}")
    finally:
        stack.stop()  # the dev servers too


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
