"""A model's concurrency limit through two real worker processes on one queue: never more requests
at its server than the limit, as the server counts them; replies past it wait (the sweep leaves
them alone) and all finish; and the slot of a worker killed while holding it comes back.

Each battle pits the limited model, on a dev server paced so that replies overlap, against a model
with no limit on a server of its own. Prompts ask the dev servers to echo them, so a reply is as
long as its prompt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from arena import queue, services
from arena.clients import ClientIdentity
from arena.live import live_redis, model_slots_key
from arena.models import ChatModel, Reply, Turn
from devserver import DevServerConfig, serve_in_thread
from inference.failures import FailureKind
from tests.helpers import devserver_stats, devserver_stats_reset, wait_until
from tests.reliability.helpers import REPLY_GENERATE, dedicated_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "reliability-concurrency"
LIMIT = 2
HEARTBEAT = 2.0  # the workers' and this process's: an unrenewed lease ends this long after its last renewal
TOKENS_PER_SECOND = 30
SHORT_WORDS = " ".join(f"word{i}" for i in range(30))  # about 1 s at the limited server
SHORT = f"[[devserver:echo]] {SHORT_WORDS}"
LONG = "[[devserver:echo]] " + " ".join(f"slowly{i}" for i in range(300))  # about 10 s


@pytest.fixture(scope="module")
def workers(django_db_setup, live_logs) -> dict[subprocess.Popen, Path]:
    """Two workers on the same queue; each worker's log, to tell which one ran a task."""
    env = {"ARENA_REPLY_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    with dedicated_worker(live_logs, "slots-1", QUEUE, **env) as first, \
            dedicated_worker(live_logs, "slots-2", QUEUE, **env) as second:
        yield {first: live_logs / "slots-1.log", second: live_logs / "slots-2.log"}


@pytest.fixture(scope="module")
def servers():
    limited = DevServerConfig(model_id="limited", time_to_first_token=0.05, tokens_per_second=TOKENS_PER_SECOND)
    free = DevServerConfig(model_id="free", time_to_first_token=0.05, tokens_per_second=150)
    with serve_in_thread(limited) as limited_url, serve_in_thread(free) as free_url:
        yield SimpleNamespace(limited=limited_url, free=free_url)


@pytest.fixture
def models(transactional_db, servers, workers, settings):
    settings.ARENA_REPLY_HEARTBEAT_SECONDS = HEARTBEAT  # the sweep here agrees with the workers
    params = {"max_new_tokens": 400}
    return SimpleNamespace(
        limited=ChatModel.objects.create(
            name="limited", endpoint_url=servers.limited, template="zephyr", parameters=params, max_concurrent=LIMIT,
            timeout_seconds=60,
        ),
        free=ChatModel.objects.create(
            name="free", endpoint_url=servers.free, template="chatml", parameters=params, timeout_seconds=60
        ),
    )


@pytest.fixture
def task_ids(monkeypatch) -> dict[int, str]:
    """Generation tasks go to the workers' queue; each reply's task id, to find its worker's log."""
    sent: dict[int, str] = {}

    def send(reply_id: int) -> None:
        sent[reply_id] = REPLY_GENERATE.apply_async(kwargs={"reply_id": reply_id}, queue=QUEUE).id

    monkeypatch.setattr(queue, "reply_generate_queue", send)
    return sent


def battles_start(count: int, text: str, name: str) -> list[Turn]:
    # A client each, so the per-client battle limit never refuses one.
    return [
        services.battle_start(client=ClientIdentity(client_id=f"{name}-{i}", ip_hash=f"ip-{name}-{i}"), text=text)
        for i in range(count)
    ]


def replies_of(turns: list[Turn]) -> list[Reply]:
    return list(Reply.objects.filter(turn__in=turns))


def all_finished(turns: list[Turn]) -> list[Reply] | None:
    replies = replies_of(turns)
    ended = all(r.status in (Reply.Status.DONE, Reply.Status.FAILED) for r in replies)
    return replies if ended and len(replies) == 2 * len(turns) else None


def worker_of(task_id: str, workers: dict[subprocess.Popen, Path]) -> subprocess.Popen:
    received = [proc for proc, log in workers.items() if f"[{task_id}] received" in log.read_text()]
    assert len(received) == 1, f"task {task_id} was received by {len(received)} workers"
    return received[0]


def slot_holders(model: ChatModel) -> set[str]:
    return {member.decode() for member in live_redis().zrange(model_slots_key(model.id), 0, -1)}


def test_no_more_than_the_limit_reach_the_server_from_two_workers_and_the_rest_wait(models, servers, workers,
                                                                                      task_ids):
    sent = devserver_stats_reset(servers.limited)["requests"]
    turns = battles_start(8, SHORT, "limit")
    swept = 0

    def finished_sweeping() -> list[Reply] | None:
        # As celery beat would, while replies wait for a slot longer than a heartbeat period.
        nonlocal swept
        swept += services.replies_sweep()
        return all_finished(turns)

    replies = wait_until(finished_sweeping, 60, "the battles to finish", interval=0.5)
    assert [r.failure_reason for r in replies if r.status != Reply.Status.DONE] == []
    assert swept == 0, "the sweep failed a reply waiting for its slot"

    stats = devserver_stats(servers.limited)
    assert stats["requests"] - sent == 8 and stats["in_flight"] == 0
    assert stats["peak_in_flight"] == LIMIT, f"at most {LIMIT} at once, and that many: {stats}"
    limited = [r for r in replies if r.model_id == models.limited.id]
    assert {r.text for r in limited} == {SHORT_WORDS}
    longest = max((r.finished_at - r.started_at).total_seconds() for r in limited)
    assert longest > HEARTBEAT, "some reply waited longer than a heartbeat"
    # The wait is the queue's, not the model's: time to first token counts from the slot.
    assert max(r.ttft_ms or 0 for r in limited) < HEARTBEAT * 1000
    ran_on = {worker_of(task_ids[r.id], workers) for r in limited}
    assert len(ran_on) == 2, "both workers ran replies of the limited model"
    assert slot_holders(models.limited) == set(), "every slot was given back"


def test_the_slot_of_a_worker_killed_while_holding_it_comes_back(models, servers, workers, task_ids):
    [doomed_turn] = battles_start(1, LONG, "doomed")
    doomed = doomed_turn.replies.get(model=models.limited)
    wait_until(lambda: devserver_stats(servers.limited)["in_flight"] == 1, 30, "the long reply to reach its server")
    doomed.refresh_from_db()
    assert doomed.status == Reply.Status.STREAMING
    assert slot_holders(models.limited) == {str(doomed.stream_id)}
    victim = worker_of(task_ids[doomed.id], workers)

    os.killpg(victim.pid, signal.SIGKILL)  # mid-reply, holding the slot, no goodbye
    victim.wait(timeout=5)
    wait_until(lambda: devserver_stats(servers.limited)["in_flight"] == 0, 10, "the server to see the hang-up")
    sent = devserver_stats_reset(servers.limited)["requests"]
    killed = time.monotonic()

    # Started at once: until the dead worker's lease runs out, one slot is left to them.
    turns = battles_start(4, SHORT, "after")

    def doomed_failed() -> bool:
        services.replies_sweep()  # as celery beat would
        doomed.refresh_from_db()
        return doomed.status == Reply.Status.FAILED

    wait_until(doomed_failed, HEARTBEAT + 10, "the sweep to fail the dead worker's reply", interval=0.5)
    assert doomed.failure_kind == FailureKind.WORKER_LOST and doomed.text, "failed as today, its text kept"

    replies = wait_until(lambda: all_finished(turns), 60, "the battles after the kill to finish")
    assert [r.failure_reason for r in replies if r.status != Reply.Status.DONE] == []
    stats = devserver_stats(servers.limited)
    assert stats["requests"] - sent == 4
    assert stats["peak_in_flight"] == LIMIT, f"{LIMIT} at once again, not {LIMIT - 1}: {stats}"
    assert time.monotonic() - killed < 30
    assert slot_holders(models.limited) == set()
