"""Starting and stopping the server: as a program, and on a thread."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest
import requests
from text_generation import AsyncClient

from devserver import serve_in_thread
from tests.devserver.client import CLIENT_TIMEOUT, fast_config, stream_sync


def test_module_runs_as_a_program():
    root = Path(__file__).resolve().parents[2]
    shown = subprocess.run([sys.executable, "-m", "devserver", "--help"], cwd=root,
                           capture_output=True, text=True, timeout=20)
    assert shown.returncode == 0 and "--tokens-per-second" in shown.stdout


def test_serve_in_thread_stops_cleanly():
    before = threading.active_count()
    with serve_in_thread(fast_config()) as base:
        assert requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT).status_code == 200
    assert threading.active_count() == before
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT)


def stats(base: str) -> dict:
    answer = requests.get(f"{base}/__devserver__/stats", timeout=CLIENT_TIMEOUT)
    answer.raise_for_status()
    return answer.json()


async def test_stats_keep_the_peak_of_requests_in_flight_on_both_protocols_until_reset():
    with serve_in_thread(fast_config(tokens_per_second=20)) as base:
        assert stats(base) == {"in_flight": 0, "peak_in_flight": 0, "requests": 0, "successes": 0}
        tgi_streams = [AsyncClient(base, timeout=CLIENT_TIMEOUT).generate_stream(f"answer {i}") for i in range(2)]
        for tgi_stream in tgi_streams:
            await anext(tgi_stream)  # admitted: its first token arrived
        async with aiohttp.ClientSession() as session, session.post(
            f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "stream": True}
        ) as openai_stream:
            await openai_stream.content.readline()
            assert stats(base) == {"in_flight": 3, "peak_in_flight": 3, "requests": 3, "successes": 0}
        for tgi_stream in tgi_streams:
            await tgi_stream.aclose()
        for _ in range(100):  # the server sees the hang-ups a moment later
            if stats(base)["in_flight"] == 0:
                break
            await asyncio.sleep(0.05)
        assert stats(base)["in_flight"] == 0
        assert stats(base)["peak_in_flight"] == 3, "the peak outlasts the requests"

        reset = requests.post(f"{base}/__devserver__/stats/reset", timeout=CLIENT_TIMEOUT).json()
        assert (reset["in_flight"], reset["peak_in_flight"]) == (0, 0)
        stream_sync(base, max_new_tokens=2)
        assert stats(base)["peak_in_flight"] == 1
