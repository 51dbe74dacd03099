"""The relay: stream one reply from a backend to the battle's channel group.

Deltas are coalesced (see `relay_stream`) so a fast model, or a busy worker, doesn't cost one
channel message per token. Each flush appends the text to the stream's Redis key first and then
publishes it with its character offset: a browser that reconnects reads the key for the text so
far and drops any delta it already has, so it sees no gap and no duplicate. Nothing here touches
the database; the generation task stores the final text once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer

from arena import metrics
from arena.events import ReplyDelta, ReplyRef, ReplyStarted
from arena.live import LIVE_TEXT_TTL_SECONDS, StreamKeys
from inference.backends import Backend, Delta, Finished, GenerationRequest
from inference.failures import FailureKind, GenerationFailure

log = logging.getLogger(__name__)

Command = tuple[Any, ...]


@dataclass
class RelayOutcome:
    text: str = ""
    token_count: int = 0
    prompt_tokens: int | None = None
    finish_reason: str = ""
    ttft_ms: int | None = None
    duration_ms: int | None = None
    failure: GenerationFailure | None = None


@dataclass(frozen=True)
class RelayTarget:
    keys: StreamKeys
    group: str
    ref: ReplyRef


class RedisBatch:
    """Runs the Redis commands of all the streams of one event loop in as few pipelines as possible.

    `run(*commands)` queues one stream's commands and waits for their replies. While a pipeline is
    in flight the next requests queue up and then all go out together: one write and one read
    however many streams are flushing, instead of a round trip (and a pooled connection) each. A
    stream's commands stay together and in order, and a stream waits for them before sending more,
    so its appends and publishes keep their order.

    `min_interval` (seconds): pipelines start at least this far apart. Idle, a request goes out at
    once (the last pipeline is long past); busy, requests gather for up to that long, so a worker
    streaming thousands of deltas a second writes to Redis a few hundred times a second, not once
    or twice per delta.
    """

    def __init__(self, redis: Any, *, min_interval: float = 0.0) -> None:
        self.redis = redis
        self.min_interval = min_interval
        self._queue: list[tuple[tuple[Command, ...], asyncio.Future[list[Any]]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._last_sent = float("-inf")

    async def run(self, *commands: Command) -> list[Any]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _due(self) -> None:
        """Wait until `min_interval` after the last pipeline (requests gather meanwhile)."""
        wait = self._last_sent + self.min_interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_sent = time.monotonic()

    async def _send(self) -> None:
        while self._queue:
            await self._due()
            batch, self._queue = self._queue, []
            pipe = self.redis.pipeline(transaction=False)
            for commands, _ in batch:
                for command in commands:
                    pipe.execute_command(*command)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # noqa: BLE001 - every waiter gets it; the next batch may do better
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:
                for _, future in batch + self._queue:
                    future.cancel()
                raise
            position = 0
            for commands, future in batch:
                mine = replies[position:position + len(commands)]
                position += len(commands)
                if future.done():  # its stream was cancelled meanwhile
                    continue
                error = next((r for r in mine if isinstance(r, Exception)), None)
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(mine)


async def relay_stream(
    backend: Backend,
    request: GenerationRequest,
    target: RelayTarget,
    *,
    redis: Any,
    channel_layer: Any,
    flush_ms: int,
    flush_chars: int,
    heartbeat_seconds: float = 10.0,
    announce: ReplyStarted | None = None,
    layer_on_redis: bool = False,
    model: str = "",
) -> RelayOutcome:
    """Run one generation to its end, publishing deltas; never raises for a model failure.

    Two coroutines share a buffer: the reader appends each delta as it comes, the sender publishes
    whatever has accumulated. A delta goes out as soon as the sender is free, so tokens arriving
    while a publish is in flight leave together in the next one (coalescing that grows with load
    and costs no latency when idle); on top of that, a delta arriving less than `flush_ms` after
    the previous publish waits for the rest of that window unless `flush_chars` have piled up.
    The first delta and the last are never held back.

    `redis`: a `RedisBatch` shared by the streams of this event loop (or a client, for one stream).
    `announce` (the reply's `reply.started` event) is published before the first delta, while the
    model server is being reached: setting up the reply costs no time to first token.
    `layer_on_redis`: the channel layer uses the same Redis server as `redis`. If it is
    channels_redis's pub/sub layer, each delta is then published on `redis` in the same pipeline as
    its append: one round trip instead of two, in order (Redis runs a connection's commands in
    sequence, so the text is in the key before the delta is delivered), and not through the
    layer's own publishing connection, which takes one publish at a time behind a lock.
    `model`: the `model` label of the reply's metrics (time to first token, between tokens, rate).
    """
    relay = _Relay(
        target,
        batch=redis if isinstance(redis, RedisBatch) else RedisBatch(redis),
        channel_layer=channel_layer,
        channel=pubsub_group_channel(channel_layer, target.group) if layer_on_redis else None,
        window=flush_ms / 1000,
        flush_chars=flush_chars,
        model=model,
    )
    return await relay.run(backend, request, heartbeat_seconds=heartbeat_seconds, announce=announce)


class _Relay:
    """One stream's state: the buffer the reader fills and the sender empties."""

    def __init__(
        self, target: RelayTarget, *, batch: RedisBatch, channel_layer: Any, channel: str | None,
        window: float, flush_chars: int, model: str = "",
    ) -> None:
        self.target, self.batch, self.layer, self.channel = target, batch, channel_layer, channel
        self.window, self.flush_chars = window, flush_chars
        self.outcome = RelayOutcome()
        self.started = time.monotonic()
        # When generation began: `started`, or later once a model slot was granted (see _read).
        self.origin = self.started
        self.buffer: list[str] = []
        self.buffered = 0
        self.sent = 0
        self.ended = False
        self.last_flush = float("-inf")  # the first delta goes out at once: time to first token matters most
        self.wake = asyncio.Event()  # something to send, or the stream ended
        self.full = asyncio.Event()  # enough to send without waiting for the window
        self.ttft = metrics.REPLY_TTFT.labels(model=model)
        self.token_gap = metrics.REPLY_TOKEN_GAP.labels(model=model)
        self.rate = metrics.REPLY_TOKENS_PER_SECOND.labels(model=model)
        self.last_delta = 0.0

    async def run(
        self, backend: Backend, request: GenerationRequest, *, heartbeat_seconds: float, announce: ReplyStarted | None
    ) -> RelayOutcome:
        # The request goes out first; the start is announced meanwhile, before anything is
        # appended or published. The key is new: every claim of a reply gets a stream id of its own.
        reader = asyncio.create_task(self._read(backend, request))
        heartbeat = asyncio.create_task(self._beat(heartbeat_seconds))
        try:
            if announce is not None:
                await self._announce(announce)
            await self._send_until_ended()
        finally:
            for task in (reader, heartbeat):
                task.cancel()
                # Already ending: whatever the task raises now changes nothing.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        outcome = self.outcome
        if outcome.failure is None and outcome.ttft_ms is None and outcome.finish_reason:
            outcome.ttft_ms = self._elapsed_ms()  # an empty reply
            self.ttft.observe(outcome.ttft_ms / 1000)
        if outcome.failure is not None:
            # Keep what was streamed so the user sees it next to the error.
            outcome.text = _decoded((await self.batch.run(("GET", self.target.keys.text)))[0])
        outcome.duration_ms = self._elapsed_ms()
        if outcome.failure is None and outcome.ttft_ms is not None and outcome.token_count > 1:
            streaming_ms = outcome.duration_ms - outcome.ttft_ms
            if streaming_ms > 0:  # the tokens after the first, over the time they took
                self.rate.observe((outcome.token_count - 1) * 1000 / streaming_ms)
        return outcome

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.origin) * 1000)

    async def _read(self, backend: Backend, request: GenerationRequest) -> None:
        first = True
        try:
            async for event in backend.stream(request):
                if first:  # the first event comes once the model slot, if any, was granted
                    self.origin, first = _generation_started(backend, self.started), False
                if isinstance(event, Delta):
                    now = time.monotonic()
                    if self.outcome.ttft_ms is None:
                        self.outcome.ttft_ms = int((now - self.origin) * 1000)
                        self.ttft.observe(now - self.origin)
                    else:
                        self.token_gap.observe(now - self.last_delta)
                    self.last_delta = now
                    self.buffer.append(event.text)
                    self.buffered += len(event.text)
                    if self.buffered >= self.flush_chars:
                        self.full.set()
                    self.wake.set()
                elif isinstance(event, Finished):
                    self.outcome.token_count = event.token_count
                    self.outcome.prompt_tokens = event.prompt_tokens
                    self.outcome.finish_reason = event.finish_reason
                    self.outcome.text = event.text
        except GenerationFailure as failure:
            self.outcome.failure = failure
        except Exception as exc:  # noqa: BLE001 - an unexpected bug still ends the reply cleanly
            self.outcome.failure = GenerationFailure(
                FailureKind.INTERNAL, f"Internal error while streaming: {type(exc).__name__}"
            )
        finally:
            self.ended = True
            self.full.set()
            self.wake.set()

    async def _send_until_ended(self) -> None:
        while not (self.ended and not self.buffer):
            await self.wake.wait()
            self.wake.clear()
            hold = self.window - (time.monotonic() - self.last_flush)
            if hold > 0 and not self.ended and not self.full.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(hold):  # a timer, not wait_for's task per delta
                        await self.full.wait()
            await self._flush()

    async def _flush(self) -> None:
        text = "".join(self.buffer)
        self.buffer.clear()
        self.buffered = 0
        self.full.clear()
        self.last_flush = time.monotonic()
        if not text:
            return
        # Appended before it is published: a browser that joins in between finds it in the key.
        # The key's expiry is set with the first append and renewed by the heartbeat, so a delta
        # costs one Redis command here, not two.
        key = self.target.keys.text
        event: ReplyDelta = {**self.target.ref, "type": "reply.delta", "offset": self.sent, "text": text}
        commands: list[Command] = [("APPEND", key, text)]
        if self.sent == 0:
            commands.append(("EXPIRE", key, LIVE_TEXT_TTL_SECONDS))
        self.sent += len(text)
        if self.channel is not None:
            await self.batch.run(*commands, ("PUBLISH", self.channel, self.layer.serialize(event)))
        else:
            await self.batch.run(*commands)
            await self.layer.group_send(self.target.group, event)

    async def _announce(self, announce: ReplyStarted) -> None:
        if self.channel is not None:
            await self.batch.run(("PUBLISH", self.channel, self.layer.serialize(announce)))
            return
        try:
            await self.layer.group_send(self.target.group, announce)
        except Exception:
            log.warning("Could not publish %s to %s", announce["type"], self.target.group, exc_info=True)

    async def _beat(self, heartbeat_seconds: float) -> None:
        # Proves a live worker owns this reply; the sweeper fails replies whose heartbeat expired.
        while True:
            await self.batch.run(
                ("SET", self.target.keys.heartbeat, 1, "PX", int(heartbeat_seconds * 1000)),
                ("EXPIRE", self.target.keys.text, LIVE_TEXT_TTL_SECONDS),
            )
            await asyncio.sleep(heartbeat_seconds / 3)


def _generation_started(backend: Backend, default: float) -> float:
    """A backend that first waits for a model slot (arena.slots.LimitedBackend) says when it got
    one: time to first token and the reply's duration count from there, so a model's speed is not
    its queue's. Its wait has a metric of its own."""
    granted = getattr(backend, "slot_granted_at", None)
    return granted if isinstance(granted, float) else default


def pubsub_group_channel(channel_layer: Any, group: str) -> str | None:
    """The Redis channel on which channels_redis's pub/sub layer publishes `group_send(group, ...)`.

    None for any other layer. channels_redis (pinned in pyproject) names it `<prefix>__group__<group>`
    and encodes messages with the layer's `serialize`; the integration and browser tests stream
    through the real layer and web process, so a change of either fails them.
    """
    if not isinstance(channel_layer, RedisPubSubChannelLayer):
        return None
    return f"{channel_layer.prefix}__group__{group}"


def _decoded(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")
