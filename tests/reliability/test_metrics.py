"""Metrics through the real stack: a battle streamed by a real worker process and voted on
through a real web process shows in the web's /metrics (both write into one metrics directory)."""

from __future__ import annotations

import json
import re

import pytest
import requests
from websockets.sync.client import connect

from tests.helpers import process_group_stop, wait_until, web_start, worker_start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def metrics_stack(tmp_path, chat_models):
    """A worker and a web process of their own: their own metrics directory, their own queue."""
    env = {"ARENA_METRICS_DIR": str(tmp_path / "metrics"), "CELERY_QUEUE": "metrics-test", "LOG_LEVEL": "WARNING"}
    worker = worker_start(tmp_path, name="metrics-worker", extra_env=env)
    try:
        web, base_url = web_start(tmp_path, name="metrics-web", extra_env=env)
        try:
            yield base_url
        finally:
            process_group_stop(web)
    finally:
        process_group_stop(worker)


def scrape(base_url: str) -> str:
    answer = requests.get(f"{base_url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series (0 if absent); labels in any order."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def battle_and_vote(base_url: str) -> None:
    session = requests.Session()
    session.get(f"{base_url}/", timeout=10).raise_for_status()
    ws_url = base_url.replace("http://", "ws://") + "/ws/arena/"
    headers = {"Cookie": f"sessionid={session.cookies['sessionid']}", "Origin": base_url}
    with connect(ws_url, additional_headers=headers, open_timeout=10) as ws:
        ws.send(json.dumps({"action": "prompt", "battle": None, "text": "Tell me about photosynthesis."}))
        battle, done = None, set()
        while len(done) < 2:
            frame = json.loads(ws.recv(timeout=30))
            assert frame["type"] != "failed", frame
            if frame["type"] == "state":
                battle = frame["state"]["battle"]
            elif frame["type"] == "done":
                done.add(frame["side"])
        ws.send(json.dumps({"action": "vote", "battle": battle, "outcome": "a"}))
        while (frame := json.loads(ws.recv(timeout=10)))["type"] != "revealed":
            assert frame["type"] != "error", frame


def test_a_battle_and_its_vote_show_in_the_metrics(metrics_stack, chat_models):
    names = [m.name for m in chat_models]
    before = scrape(metrics_stack)
    battle_and_vote(metrics_stack)
    # The vote is counted by the refresh task the worker runs after the vote's commit.
    def counted() -> str | None:
        text = scrape(metrics_stack)
        return text if sample(text, "arena_votes_counted_total") >= 1 else None

    after = wait_until(counted, 30, "the vote counted")
    for name in names:
        assert sample(after, "arena_reply_ttft_seconds_count", model=name) == \
            sample(before, "arena_reply_ttft_seconds_count", model=name) + 1, name
        assert sample(after, "arena_replies_total", model=name, outcome="done") >= 1, name
        assert sample(after, "arena_reply_token_gap_seconds_count", model=name) > 0, name
        assert sample(after, "arena_reply_tokens_per_second_count", model=name) == 1, name
        assert sample(after, "arena_reply_queue_wait_seconds_count", model=name) == 1, name
        assert sample(after, "arena_streams_active", model=name) == 0, name
    assert sample(after, "arena_votes_cast_total", flagged="false") == 1
    assert sample(after, "arena_leaderboard_refresh_seconds_count", kind="live") >= 1
    print("\n".join(line for line in after.splitlines() if "ttft" in line and "_bucket" not in line))
