"""The stack both benchmarks start and measure: uvicorn and Celery worker processes on a bench
database and Redis database of their own, reset first, and the CPU time those processes use."""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/arena_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def py_spy() -> str:
    """py-spy from PATH (e.g. installed in a virtualenv of its own), else beside this Python."""
    return shutil.which("py-spy") or str(Path(PY).parent / "py-spy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


# --- CPU accounting ----------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK  # ppid, utime + stime


def _process_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds) of every live process."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(int(entry))):
            table[int(entry)] = stat
    return table


def descendants(root_pids: list[int], table: dict[int, tuple[int, float]] | None = None) -> set[int]:
    """These processes and all their live descendants."""
    parents = {pid: ppid for pid, (ppid, _) in (table if table is not None else _process_table()).items()}
    wanted = set(root_pids)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return wanted


def tree_cpu(root_pids: list[int]) -> float:
    """CPU seconds of these processes and all their live descendants."""
    table = _process_table()
    return sum(table[pid][1] for pid in descendants(root_pids, table) if pid in table)


def own_cpu() -> float:
    """CPU seconds of this process, its live descendants and its finished, waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return tree_cpu([os.getpid()]) + children.ru_utime + children.ru_stime


def machine_ticks() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait

# --- the stack ---------------------------------------------------------------------------------


def database_reset() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def redis_reset() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def stack_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        # As deployed: DEBUG off (Django then keeps no per-query log), static files collected.
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL="false",  # loopback; TLS ends at the proxy in production
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        ARENA_BATTLES_PER_MINUTE="100000",
        ARENA_TURNS_PER_MINUTE="100000",
        ARENA_VOTES_PER_DAY="1000000",
        # A queue of its own: a worker of another stack on the same Redis database can't take these tasks.
        CELERY_QUEUE="bench-stream",
        # Metric files of this stack only, not those other runs left in the default directory.
        ARENA_METRICS_DIR=tempfile.mkdtemp(prefix="arena-bench-metrics-"),
    )
    env.update(extra)
    return env


LAYERS = {"core": "channels_redis.core.RedisChannelLayer", "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer"}
LAYER_OVERRIDE = """from config.settings import *  # noqa: F403

CHANNEL_LAYERS = {{"default": {{"BACKEND": "{backend}", "CONFIG": {{
    "hosts": [{{"address": CHANNEL_LAYER_URL, "socket_timeout": 10}}],  # noqa: F405
    **({{"capacity": 1000, "expiry": 30}} if "core" in "{backend}" else {{}}),
}}}}}}
"""


class Stack:
    def __init__(self, args, logs: Path):
        self.args = args
        self.logs = logs
        extra = dict(kv.split("=", 1) for kv in args.env)
        if args.channel_layer:
            # Another channel layer than the settings' own, for comparing: a settings module that
            # imports config.settings and replaces CHANNEL_LAYERS, in the bench's temporary directory.
            (logs.parent / "bench_settings.py").write_text(LAYER_OVERRIDE.format(backend=LAYERS[args.channel_layer]))
            paths = [str(logs.parent), str(ROOT), *filter(None, extra.get("PYTHONPATH", "").split(os.pathsep))]
            extra.update(DJANGO_SETTINGS_MODULE="bench_settings", PYTHONPATH=os.pathsep.join(paths))
        self.env = stack_env(extra)
        self.procs: list[subprocess.Popen] = []
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.port = free_port()

    def manage(self, *argv: str) -> None:
        subprocess.run([PY, "manage.py", *argv], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL, timeout=180)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self.manage("collectstatic", "--noinput")
        for i in range(self.args.workers):
            name = f"worker{i}"
            proc = self._spawn(name, [
                PY, "-m", "celery", "-A", "config", "worker", "--pool", "threads",
                "--concurrency", str(self.args.concurrency), "--loglevel", "info", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-n", f"bench{i}@%h",
            ])
            log = self.logs / f"{name}.log"
            wait_for(lambda log=log, proc=proc: "ready." in log.read_text() or proc.poll() is not None, 90,
                     "a Celery worker")
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{log.read_text()[-3000:]}")
            self.workers.append(proc)
        web_workers = ["--workers", str(self.args.web_workers)] if self.args.web_workers > 1 else []
        self.web = self._spawn("web", [
            PY, "-m", "uvicorn", self.args.asgi, "--host", "127.0.0.1", "--port", str(self.port),
            "--loop", "uvloop", "--http", "httptools", "--ws-max-size", "262144", "--ws-per-message-deflate", "false",
            "--timeout-graceful-shutdown", "5", *web_workers,
        ], env=self.env | dict(kv.split("=", 1) for kv in getattr(self.args, "web_env", [])))

        def web_up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return self.web.poll() is not None

        wait_for(web_up, 60, "uvicorn")
        if self.web.poll() is not None:
            raise RuntimeError(f"uvicorn exited:\n{(self.logs / 'web.log').read_text()[-3000:]}")
        if self.args.web_workers > 1:
            time.sleep(2)  # every worker process listening

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.workers] + ([self.web.pid] if self.web else [])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both benchmarks give the stack they start, and the client process's own."""
    parser.add_argument("--web-workers", type=int, default=1, help="uvicorn processes")
    parser.add_argument("--asgi", default="config.asgi:application", help="the ASGI application uvicorn serves")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the web and worker processes (repeatable)")
    parser.add_argument("--web-env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the web processes only (repeatable), e.g. DB_POOL_MAX_SIZE=0")
    parser.add_argument("--profile", metavar="DIR", help="record py-spy profiles of web and workers into DIR")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
