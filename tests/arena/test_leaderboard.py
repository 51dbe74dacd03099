"""Counting votes, the leaderboard snapshot, the clean_battle commands and the live path."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum
from django.test import override_settings

from arena import queue, ratings, services
from arena.leaderboard import leaderboard_snapshot
from arena.models import Battle, ChatModel, PairCount, Vote
from tests.finished import vote, vote_uncounted
from tests.websockets import both_finished, frames_until, new_session_key, ws_connect

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_a_vote_is_counted_by_the_next_refresh_once(chat_models, alice):
    v, battle = vote_uncounted(alice, "a")
    assert Vote.objects.get(id=v.id).counted is False and PairCount.objects.count() == 0
    assert services.votes_count_pending() == 1
    assert services.votes_count_pending() == 0
    assert Vote.objects.get(id=v.id).counted is True
    cell = PairCount.objects.get()
    expected = (battle.model_a_id, battle.model_b_id, ratings.A_WINS, 1)
    assert (cell.model_a_id, cell.model_b_id, cell.outcome, cell.count) == expected
    a, b = ChatModel.objects.get(id=battle.model_a_id), ChatModel.objects.get(id=battle.model_b_id)
    assert a.elo_online == pytest.approx(1002.0) and b.elo_online == pytest.approx(998.0)


@pytest.mark.django_db
def test_counting_in_batches_matches_the_rating_math_in_vote_order(chat_models, alice, devserver_urls):
    from django.core.cache import cache

    ChatModel.objects.create(name="third", endpoint_url=devserver_urls[0], template="chatml")
    rng = np.random.default_rng(5)
    cast = []
    for _ in range(17):
        cast.append(vote_uncounted(alice, str(rng.choice(["a", "b", "tie", "bothbad"]))))
        cache.clear()
    assert services.votes_count_pending(batch_size=4) == 17
    ids = sorted({b.model_a_id for _, b in cast} | {b.model_b_id for _, b in cast})
    a = np.array([ids.index(b.model_a_id) for _, b in cast])
    b = np.array([ids.index(b.model_b_id) for _, b in cast])
    o = np.array([Vote.Outcome(v.outcome).code for v, _ in cast])
    expected_elo = ratings.elo_online(a, b, o, len(ids))
    for i, model_id in enumerate(ids):
        assert ChatModel.objects.get(id=model_id).elo_online == pytest.approx(expected_elo[i])
    counts = ratings.counts_from_battles(a, b, o, len(ids))
    for cell in PairCount.objects.all():
        assert cell.count == counts[ids.index(cell.model_a_id), ids.index(cell.model_b_id), cell.outcome]
    assert PairCount.objects.aggregate(n=Sum("count"))["n"] == 17


@pytest.mark.django_db(transaction=True)
def test_concurrent_counting_runs_count_every_vote_exactly_once(chat_models, alice, monkeypatch):
    """Four runs at once on real PostgreSQL connections: SKIP LOCKED splits the votes between them."""
    from django.core.cache import cache
    from django.db import connection

    # Only these four runs count: no refresh task is queued for a worker of another test to run.
    monkeypatch.setattr(queue, "leaderboard_refresh_queue", lambda **kw: None)
    for i in range(40):
        vote_uncounted(alice, ["a", "b", "tie", "bothbad"][i % 4])
        cache.clear()
    barrier = threading.Barrier(4)
    results: list[int] = []

    def run():
        try:
            barrier.wait()
            results.append(services.votes_count_pending(batch_size=3))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4 and sum(results) == 40
    assert PairCount.objects.aggregate(n=Sum("count"))["n"] == 40
    assert not Vote.objects.filter(counted=False).exists()


@pytest.mark.django_db
def test_the_periodic_count_catches_a_vote_whose_refresh_was_lost(chat_models, alice, monkeypatch):
    from arena import tasks
    from config.celery import app

    scheduled = []
    monkeypatch.setattr(queue, "leaderboard_refresh_queue", lambda **kw: scheduled.append(1))
    vote_uncounted(alice, "b")
    scheduled.clear()  # the refresh this vote queued is the one that got lost
    assert tasks.votes_count() == 1 and scheduled == [1]
    assert tasks.votes_count() == 0 and scheduled == [1]
    beat = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "arena.tasks.votes_count" in beat and "arena.tasks.votes_count" in app.tasks


@pytest.mark.django_db
def test_flagged_votes_are_kept_but_not_counted(chat_models, alice):
    v, _ = vote(alice, "a", text_a="As an OpenAI model, I think so.")
    v.refresh_from_db()
    assert v.identity_flagged is True and v.counted is False
    assert PairCount.objects.count() == 0
    with override_settings(ARENA_RATINGS_INCLUDE_FLAGGED=True):
        assert services.leaderboard_rebuild() == 1
    assert PairCount.objects.get().count == 1


@pytest.mark.django_db
def test_rebuild_reproduces_the_incremental_counts_and_elo(chat_models, alice, devserver_urls):
    ChatModel.objects.create(name="third", endpoint_url=devserver_urls[0], template="chatml")
    rng = np.random.default_rng(3)
    for _ in range(30):
        vote(alice, rng.choice(["a", "b", "tie", "bothbad"]))
        from django.core.cache import cache

        cache.clear()
    live_cells = set(PairCount.objects.values_list("model_a_id", "model_b_id", "outcome", "count"))
    live_elo = dict(ChatModel.objects.values_list("name", "elo_online"))
    assert services.leaderboard_rebuild() == 30
    assert set(PairCount.objects.values_list("model_a_id", "model_b_id", "outcome", "count")) == live_cells
    for name, elo in ChatModel.objects.values_list("name", "elo_online"):
        assert elo == pytest.approx(live_elo[name])


@pytest.mark.django_db
def test_the_snapshot_matches_the_rating_math(chat_models, alice):
    for outcome in ["a", "a", "b", "tie", "a", "bothbad"]:
        vote(alice, outcome)
        from django.core.cache import cache

        cache.clear()
    snap = leaderboard_snapshot()
    assert snap["total_votes"] == 6
    assert {r["model"] for r in snap["models"]} == {"zephyr-7b-beta", "mistral-7b-instruct"}
    assert np.mean([r["rating"] for r in snap["models"]]) == pytest.approx(1000.0)
    for row in snap["models"]:
        assert row["ci_lower"] < row["rating"] < row["ci_upper"]
    assert snap["interval_method"] == "analytic"
    # Same numbers as the pure math on the same counts.
    counts = np.zeros((2, 2, 4))
    names = snap["names"]
    for b in Battle.objects.select_related("vote", "model_a", "model_b"):
        counts[names.index(b.model_a.name), names.index(b.model_b.name), Vote.Outcome(b.vote.outcome).code] += 1
    expected = ratings.fit_bt(counts)
    for row in snap["models"]:
        assert row["rating"] == pytest.approx(expected[names.index(row["model"])])


@pytest.mark.django_db
def test_the_win_fraction_leaves_ties_out_and_each_pair_s_record_is_sent(chat_models, alice):
    # zephyr vs mistral: only ties and both-bad votes.
    for outcome in ["tie", "bothbad", "tie"]:
        vote(alice, outcome)
    snap = leaderboard_snapshot()
    assert snap["win_fraction"] == [[None, None], [None, None]]  # not 0.00 / 0.00
    assert snap["wins"] == [[0, 0], [0, 0]] and snap["battle_counts"] == [[0, 3], [3, 0]]

    # One decisive vote: the fraction is over that vote alone; the ties stay in the record.
    _, battle = vote(alice, "a")
    snap = leaderboard_snapshot()
    winner = snap["names"].index(battle.model_a.name)
    loser = 1 - winner
    assert snap["win_fraction"][winner][loser] == 1.0 and snap["win_fraction"][loser][winner] == 0.0
    assert snap["wins"][winner][loser] == 1 and snap["wins"][loser][winner] == 0
    assert snap["battle_counts"][winner][loser] == 4


@pytest.mark.django_db
def test_the_anchor_setting_pins_a_model(chat_models, alice):
    vote(alice, "a")
    with override_settings(ARENA_RATING_ANCHOR_MODEL="zephyr-7b-beta", ARENA_RATING_ANCHOR_VALUE=1114.0):
        snap = leaderboard_snapshot()
    assert next(r for r in snap["models"] if r["model"] == "zephyr-7b-beta")["rating"] == pytest.approx(1114.0)


def write_battles(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


RECORDS = [
    {"question_id": "q1", "model_a": "alpha", "model_b": "beta", "winner": "model_a", "tstamp": 1.0,
     "conversation_a": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello from alpha"}],
     "conversation_b": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey from beta"}]},
    {"question_id": "q2", "model_a": "beta", "model_b": "gamma", "winner": "tie", "tstamp": 2.0},
    {"question_id": "q3", "model_a": "gamma", "model_b": "alpha", "winner": "tie (bothbad)", "tstamp": 3.0},
    {"question_id": "q4", "model_a": "alpha", "model_b": "gamma", "winner": "model_b", "tstamp": 4.0},
    {"question_id": "q5", "model_a": "beta", "model_b": "alpha", "winner": "model_a", "tstamp": 5.0, "anony": False},
]


@pytest.mark.django_db
def test_import_is_idempotent_and_export_round_trips(tmp_path):
    path = write_battles(tmp_path / "in.jsonl", RECORDS)
    call_command("import_battles", str(path), "--no-progress")
    assert Battle.objects.count() == 5 and Vote.objects.count() == 5
    assert Vote.objects.filter(counted=True).count() == 4  # the non-anonymous one isn't rated
    call_command("import_battles", str(path), "--no-progress")
    assert Battle.objects.count() == 5
    assert not ChatModel.objects.get(name="alpha").enabled  # imported names are never drawn

    out = tmp_path / "out.jsonl"
    call_command("export_battles", str(out))
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["question_id"], r["model_a"], r["model_b"], r["winner"], r["tstamp"], r["anony"]) for r in exported] == [
        (r["question_id"], r["model_a"], r["model_b"], r["winner"], r["tstamp"], r.get("anony", True)) for r in RECORDS
    ]
    assert exported[0]["conversation_a"] == RECORDS[0]["conversation_a"]
    assert exported[0]["conversation_b"] == RECORDS[0]["conversation_b"]
    # The exported file gives the database's leaderboard.
    result = subprocess.run([sys.executable, "manage.py", "leaderboard", "--battles", str(out), "--json"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    from_file = {m["model"]: m["rating"] for m in json.loads(result.stdout)["models"]}
    from_db = {r["model"]: r["rating"] for r in leaderboard_snapshot()["models"]}
    assert from_file.keys() == from_db.keys()
    for name in from_db:
        assert from_file[name] == pytest.approx(from_db[name], abs=1e-6)


@pytest.mark.django_db
def test_a_malformed_record_names_its_line_and_imports_nothing(tmp_path):
    records = [*RECORDS[:2], {"model_a": "alpha", "model_b": "beta", "winner": "maybe"}, *RECORDS[2:]]
    path = write_battles(tmp_path / "bad.jsonl", records)
    with pytest.raises(CommandError, match="line 3"):
        call_command("import_battles", str(path), "--no-progress")
    assert Battle.objects.count() == 0 and ChatModel.objects.count() == 0
    (tmp_path / "broken.jsonl").write_text(json.dumps(RECORDS[0]) + "\n{not json\n")
    with pytest.raises(CommandError, match="line 2"):
        call_command("import_battles", str(tmp_path / "broken.jsonl"), "--no-progress")


def run_leaderboard(path, *extra):
    result = subprocess.run([sys.executable, "manage.py", "leaderboard", "--battles", str(path), *extra],
                            cwd=ROOT, capture_output=True, text=True)
    return result


def test_the_leaderboard_command_prints_one_json_object_with_reference_conventions(tmp_path):
    rng = np.random.default_rng(0)
    names = ["m0", "m1", "m2", "m3"]
    records = []
    for t in range(400):
        a, b = rng.choice(4, size=2, replace=False)
        records.append({"model_a": names[a], "model_b": names[b], "tstamp": float(1000 - t),
                        "winner": ["model_a", "model_b", "tie", "tie (bothbad)"][int(rng.integers(4))]})
    records.append({"model_a": "m0", "model_b": "m1", "winner": "model_a", "tstamp": 5.0, "anony": False})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(records))  # a JSON array this time
    result = run_leaderboard(path, "--json", "--bootstrap", "50", "--seed", "7")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"battles", "models"} and out["battles"] == 400
    models = out["models"]
    assert [m["rating"] for m in models] == sorted((m["rating"] for m in models), reverse=True)
    assert set(models[0]) == {"model", "rating", "ci_lower", "ci_upper", "rank", "votes", "elo_online"}
    assert np.mean([m["rating"] for m in models]) == pytest.approx(1000.0)
    assert sum(m["votes"] for m in models) == 800
    # Elo runs in tstamp order (the file is in reverse time order).
    order = np.argsort([r["tstamp"] for r in records[:400]], kind="stable")
    idx = {n: i for i, n in enumerate(names)}
    a = np.array([idx[records[i]["model_a"]] for i in order])
    b = np.array([idx[records[i]["model_b"]] for i in order])
    o = np.array([ratings.WINNER_TO_OUTCOME[records[i]["winner"]] for i in order])
    elo = ratings.elo_online(a, b, o, 4)
    for m in models:
        assert m["elo_online"] == pytest.approx(elo[idx[m["model"]]])
    again = json.loads(run_leaderboard(path, "--json", "--bootstrap", "50", "--seed", "7").stdout)
    assert again == out  # seeded
    table = run_leaderboard(path)
    assert table.returncode == 0 and "m0" in table.stdout and "rating" in table.stdout


def test_the_leaderboard_command_reports_a_bad_record(tmp_path):
    path = write_battles(tmp_path / "b.jsonl", [*RECORDS[:1], {"model_a": "x", "model_b": "x", "winner": "tie"}])
    result = run_leaderboard(path, "--json")
    assert result.returncode != 0 and "line 2" in result.stderr


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
async def test_a_vote_reaches_an_open_leaderboard_socket_within_a_second(chat_models, celery_worker_process):
    import time

    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    board = WebsocketCommunicator(application, "/ws/leaderboard/", headers=[(b"origin", b"http://localhost")])
    assert (await board.connect())[0]
    first = json.loads(await board.receive_from(timeout=5))
    assert first["type"] == "leaderboard" and first["leaderboard"]["total_votes"] == 0

    player = await ws_connect(await new_session_key())
    await player.send_to(text_data=json.dumps({"action": "prompt", "battle": None, "text": "Hi"}))
    frames = await frames_until(player, both_finished)
    battle_id = frames[0]["state"]["battle"]
    voted_at = time.monotonic()
    await player.send_to(text_data=json.dumps({"action": "vote", "battle": battle_id, "outcome": "a"}))
    # A refresh queued by an earlier test may still publish meanwhile: wait for the one with this vote.
    update = json.loads(await board.receive_from(timeout=5))
    while update["leaderboard"]["total_votes"] == 0:
        update = json.loads(await board.receive_from(timeout=5))
    latency = time.monotonic() - voted_at
    assert update["type"] == "leaderboard" and update["leaderboard"]["total_votes"] == 1
    assert latency < 2.0, f"leaderboard update took {latency:.2f} s"  # typically ~0.1 s; see bench/votes.py
    battle = await database_sync_to_async(Battle.objects.select_related("model_a").get)(id=battle_id)
    top = update["leaderboard"]["models"][0]
    assert top["model"] == battle.model_a.name and top["rating"] > 1000
    await player.disconnect()
    await board.disconnect()
