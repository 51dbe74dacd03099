"""The relay: stream one reply from a backend to the battle's channel group.

Deltas are coalesced (flushed after `flush_ms` or `flush_chars`, and the last one immediately) so a
fast model doesn't cost one channel message per token. Each flush appends the text to a Redis key
first and then publishes it with its character offset: a browser that reconnects reads the key for
the text so far and drops any delta it already has, so it sees no gap and no duplicate. Nothing here
touches the database; the task stores the final text once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from arena.events import ReplyDelta, ReplyRef
from inference.backends import Backend, Delta, Finished, GenerationFailure, GenerationRequest

LIVE_TEXT_TTL_SECONDS = 3600


def live_text_key(reply_id: int) -> str:
    return f"arena:reply:{reply_id}:live"


def heartbeat_key(reply_id: int) -> str:
    return f"arena:reply:{reply_id}:alive"


@dataclass
class RelayOutcome:
    text: str = ""
    token_count: int = 0
    finish_reason: str = ""
    ttft_ms: int | None = None
    duration_ms: int | None = None
    failure: GenerationFailure | None = None


@dataclass(frozen=True)
class RelayTarget:
    reply_id: int
    group: str
    ref: ReplyRef


_END = object()


async def relay_stream(
    backend: Backend,
    request: GenerationRequest,
    target: RelayTarget,
    *,
    redis,
    channel_layer,
    flush_ms: int,
    flush_chars: int,
    heartbeat_seconds: float = 10.0,
) -> RelayOutcome:
    """Run one generation to its end, publishing deltas; never raises for a model failure."""
    outcome = RelayOutcome()
    started = time.monotonic()
    queue: asyncio.Queue = asyncio.Queue()
    key = live_text_key(target.reply_id)
    await redis.delete(key)

    async def produce() -> None:
        try:
            async for event in backend.stream(request):
                await queue.put(event)
        except GenerationFailure as failure:
            await queue.put(failure)
        except Exception as exc:  # noqa: BLE001 - an unexpected bug still ends the reply cleanly
            await queue.put(GenerationFailure("internal", f"Internal error while streaming: {type(exc).__name__}"))
        finally:
            await queue.put(_END)

    sent = 0
    buffer: list[str] = []
    last_flush = time.monotonic()

    async def flush() -> None:
        nonlocal sent, last_flush
        text = "".join(buffer)
        buffer.clear()
        last_flush = time.monotonic()
        if not text:
            return
        await redis.append(key, text)
        await redis.expire(key, LIVE_TEXT_TTL_SECONDS)
        event: ReplyDelta = {**target.ref, "type": "reply.delta", "offset": sent, "text": text}
        sent += len(text)
        await channel_layer.group_send(target.group, event)

    async def beat() -> None:
        # Proves a live worker owns this reply; the sweeper fails replies whose key expired.
        while True:
            await redis.set(heartbeat_key(target.reply_id), 1, px=int(heartbeat_seconds * 1000))
            await asyncio.sleep(heartbeat_seconds / 3)

    producer = asyncio.create_task(produce())
    heartbeat = asyncio.create_task(beat())
    try:
        while True:
            window = flush_ms / 1000
            timeout = None if not buffer else max(window - (time.monotonic() - last_flush), 0)
            try:
                item = await asyncio.wait_for(queue.get(), timeout) if timeout is not None else await queue.get()
            except asyncio.TimeoutError:
                await flush()
                continue
            if item is _END:
                break
            if isinstance(item, Delta):
                if outcome.ttft_ms is None:
                    outcome.ttft_ms = int((time.monotonic() - started) * 1000)
                    buffer.append(item.text)
                    await flush()  # the first token goes out at once: time to first token matters most
                    continue
                buffer.append(item.text)
                if sum(map(len, buffer)) >= flush_chars or time.monotonic() - last_flush >= window:
                    await flush()
            elif isinstance(item, Finished):
                outcome.token_count = item.token_count
                outcome.finish_reason = item.finish_reason
                outcome.text = item.text
            elif isinstance(item, GenerationFailure):
                outcome.failure = item
        await flush()
    finally:
        for task in (producer, heartbeat):
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - already ending
                pass
    if outcome.failure is None and outcome.ttft_ms is None and outcome.finish_reason:
        outcome.ttft_ms = int((time.monotonic() - started) * 1000)  # an empty reply
    if outcome.failure is not None:
        # Keep what was streamed so the user sees it next to the error.
        outcome.text = await _live_text(redis, key)
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


async def _live_text(redis, key: str) -> str:
    raw = await redis.get(key)
    return raw.decode() if isinstance(raw, bytes) else (raw or "")
