"""What one running server keeps between requests: its config, the fault switch and its counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from devserver.config import DevServerConfig
from devserver.faults import FaultState


@dataclass
class ServerState:
    config: DevServerConfig
    fault: FaultState
    queued: int = 0  # admitted, waiting for their first token
    decoding: int = 0  # producing tokens
    requests: int = 0
    successes: int = 0
    failures: Counter = field(default_factory=Counter)
    # The most requests admitted at once since the start or the last reset: what a client's own
    # concurrency limit is measured by.
    peak_in_flight: int = 0

    @property
    def in_flight(self) -> int:
        return self.queued + self.decoding

    @property
    def token_delay(self) -> float:
        """Seconds between two tokens of a stream (0: as fast as it can)."""
        rate = self.config.tokens_per_second
        return 1 / rate if rate > 0 else 0.0

    def stats(self) -> dict:
        return {"in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight,
                "requests": self.requests, "successes": self.successes}

    def stats_reset(self) -> None:
        """The peak starts again from the requests in flight now."""
        self.peak_in_flight = self.in_flight


STATE = web.AppKey("devserver_state", ServerState)
OUTCOME = web.RequestKey("devserver_outcome", str)  # what happened, for the log line


class Slot:
    """One admitted request (TGI's concurrency permit): queued until its first token, then decoding."""

    def __init__(self, state: ServerState):
        self.state = state
        self.decoding = False
        state.queued += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)

    def start_decoding(self) -> None:
        self.state.queued -= 1
        self.state.decoding += 1
        self.decoding = True

    def release(self) -> None:
        if self.decoding:
            self.state.decoding -= 1
        else:
            self.state.queued -= 1
