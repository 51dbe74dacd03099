"""One event loop per process, on a daemon thread of its own, for async work started from sync code.

The worker's streams run on it (arena/streams.py), and `arena.publish.group_publish` sends on it:
the channel layer keeps its Redis connections per event loop, so everything published from a
process shares them. `async_to_sync` from a plain thread would instead start a loop, a thread and
a new channel-layer connection for every event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _new_event_loop() -> asyncio.AbstractEventLoop:
    # uvloop (installed with uvicorn[standard]) where available: every token of every stream of a
    # worker process passes through this one loop, and uvloop spends less CPU on each.
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a plain asyncio loop works the same, a little slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


class BackgroundLoop:
    """Started on first use, and again in a child process after a fork (a loop never survives one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = _new_event_loop()
                threading.Thread(target=loop.run_forever, name="arena-background-loop", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, work: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run `work()` on the loop and wait for its result (at most `timeout` seconds).

        Never from the loop's own thread (it would wait on itself)."""
        future = asyncio.run_coroutine_threadsafe(_call(work), self.loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


PROCESS_LOOP = BackgroundLoop()
