"""The server's settings and the command-line options that make them."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field

from devserver.observer import StreamObserver

FAULT_MODES = (
    "overload", "overload-http", "error-mid-stream", "cut", "stall", "drop", "http-500", "unhealthy",
    # Only the OpenAI-compatible route (`/v1/chat/completions`) acts on these; TGI's routes ignore them.
    "error-mid-stream-tgi", "content-filter", "unauthorized",
)


@dataclass
class DevServerConfig:
    model_id: str
    time_to_first_token: float = 0.2
    tokens_per_second: float = 30
    max_concurrent_requests: int = 128
    max_input_tokens: int = 3072
    max_total_tokens: int = 4096
    max_stop_sequences: int = 4
    fault: str | None = None
    fault_after_tokens: int = 5
    fault_count: int | None = None
    stall_seconds: float = 3600
    api_key: str | None = None  # when set, `/v1/*` needs `Authorization: Bearer <api_key>`
    retry_after: int = 1  # seconds, in the `Retry-After` of `/v1/chat/completions`' 429s
    observer: StreamObserver | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULT_MODES:
            raise ValueError(f"unknown fault {self.fault!r}; choose from {', '.join(FAULT_MODES)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--model-id", required=True, help="the model this server pretends to be")
    parser.add_argument("--ttft", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument("--tokens-per-second", type=float, default=30, help="0 = no delay")
    parser.add_argument("--max-concurrent-requests", type=int, default=128)
    parser.add_argument("--max-input-tokens", type=int, default=3072)
    parser.add_argument("--max-total-tokens", type=int, default=4096)
    parser.add_argument("--fault", choices=FAULT_MODES, default=None)
    parser.add_argument("--fault-after-tokens", type=int, default=5)
    parser.add_argument("--fault-count", type=int, default=None, help="default: the fault never ends")
    parser.add_argument("--stall-seconds", type=float, default=3600)
    parser.add_argument("--api-key", default=None, help="required as a Bearer token on /v1/* (default: none)")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of /v1/chat/completions' 429s")


def config_from_options(options: Mapping) -> DevServerConfig:
    """A config from parsed options (argparse's `vars(namespace)`)."""
    return DevServerConfig(
        model_id=options["model_id"],
        time_to_first_token=options["ttft"],
        tokens_per_second=options["tokens_per_second"],
        max_concurrent_requests=options["max_concurrent_requests"],
        max_input_tokens=options["max_input_tokens"],
        max_total_tokens=options["max_total_tokens"],
        fault=options["fault"],
        fault_after_tokens=options["fault_after_tokens"],
        fault_count=options["fault_count"],
        stall_seconds=options["stall_seconds"],
        api_key=options.get("api_key"),
        retry_after=options.get("retry_after", 1),
    )
