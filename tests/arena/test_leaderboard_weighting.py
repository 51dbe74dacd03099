"""Each battle's draw probability: summed as vote weights by counting and by a recount, fitted
when ARENA_RATINGS_WEIGHTING asks, kept through export and import; provisional models apart."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from arena import ratings, sampling, services
from arena.leaderboard import counts_load, leaderboard_snapshot
from arena.models import Battle, ChatModel, PairCount, Vote
from tests.finished import vote

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def voted(chat_models, alice, devserver_urls) -> list[Battle]:
    """24 counted votes between three models of unequal weight (so the draw is uneven)."""
    ChatModel.objects.create(name="third", endpoint_url=devserver_urls[1], template="chatml", weight=4)
    rng = np.random.default_rng(11)
    battles = []
    for _ in range(24):
        battles.append(vote(alice, str(rng.choice(["a", "b", "tie", "bothbad"])))[1])
        cache.clear()  # rate limits
    return battles


def weights_by_cell() -> dict[tuple[int, int, int], tuple[int, float, float]]:
    return {(c.model_a_id, c.model_b_id, c.outcome): (c.count, c.weight, c.weight_sq) for c in PairCount.objects.all()}


def test_counting_sums_each_votes_weight_and_a_recount_agrees(voted):
    expected: dict[tuple[int, int, int], list[float]] = {}
    for battle in Battle.objects.select_related("vote"):
        assert battle.draw_probability is not None and battle.draw_pairs == 3
        key = (battle.model_a_id, battle.model_b_id, Vote.Outcome(battle.vote.outcome).code)
        cell = expected.setdefault(key, [0, 0.0, 0.0])
        w = sampling.vote_weight(battle.draw_probability, battle.draw_pairs)
        cell[0] += 1
        cell[1] += w
        cell[2] += w * w
    live = weights_by_cell()
    assert live.keys() == expected.keys()
    for key, (n, w, w2) in expected.items():
        assert live[key][0] == n and live[key][1] == pytest.approx(w) and live[key][2] == pytest.approx(w2)
    assert any(abs(w - n) > 1e-6 for n, w, _ in live.values())  # the weights are not all 1 here
    services.leaderboard_rebuild()
    for key, (n, w, w2) in weights_by_cell().items():
        assert (n, w, w2) == (live[key][0], pytest.approx(live[key][1]), pytest.approx(live[key][2]))


def test_the_snapshot_fits_the_weights_only_when_asked(voted):
    loaded = counts_load()
    plain = {r["model"]: r["rating"] for r in leaderboard_snapshot()["models"]}
    with override_settings(ARENA_RATINGS_WEIGHTING="inverse-probability"):
        snap = leaderboard_snapshot()
    weighted = {r["model"]: r["rating"] for r in snap["models"]}
    assert snap["weighting"] == "inverse-probability"
    expected_plain, expected_weighted = ratings.fit_bt(loaded.counts), ratings.fit_bt(loaded.sums)
    for i, name in enumerate(loaded.names):
        assert plain[name] == pytest.approx(expected_plain[i])
        assert weighted[name] == pytest.approx(expected_weighted[i])
    assert max(abs(plain[n] - weighted[n]) for n in plain) > 0.1


def test_provisional_models_are_flagged_unranked_and_listed_last(voted):
    votes = {r["model"]: r["votes"] for r in leaderboard_snapshot()["models"]}
    threshold = min(votes.values()) + 1  # the model(s) with the fewest votes fall below it
    with override_settings(ARENA_PROVISIONAL_VOTES=threshold):
        rows = leaderboard_snapshot()["models"]
    provisional = [r for r in rows if r["provisional"]]
    assert {r["model"] for r in provisional} == {m for m, n in votes.items() if n < threshold} != set()
    assert rows[len(rows) - len(provisional):] == provisional and all(r["rank"] is None for r in provisional)
    assert all(r["rank"] >= 1 for r in rows if not r["provisional"])


def test_draw_probabilities_survive_an_export_and_an_import(voted, tmp_path):
    out = tmp_path / "out.jsonl"
    call_command("export_battles", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    drawn = {str(b.id): (b.draw_probability, b.draw_pairs) for b in Battle.objects.all()}
    assert {r["question_id"]: (r["draw_probability"], r["draw_pairs"]) for r in records} == drawn
    before = weights_by_cell()
    names = {m.id: m.name for m in ChatModel.objects.all()}
    Battle.objects.all().delete()
    PairCount.objects.all().delete()
    call_command("import_battles", str(out), "--no-progress")
    imported = {b.source_id: (b.draw_probability, b.draw_pairs) for b in Battle.objects.all()}
    assert imported == {f"q:{qid}": value for qid, value in drawn.items()}
    after = {(names[a], names[b], o): v for (a, b, o), v in weights_by_cell().items()}
    assert after == {(names[a], names[b], o): (n, pytest.approx(w), pytest.approx(w2))
                     for (a, b, o), (n, w, w2) in before.items()}


def test_the_leaderboard_command_weights_an_exported_file_as_the_database_does(voted, tmp_path):
    out = tmp_path / "out.jsonl"
    call_command("export_battles", str(out))
    for weighting in ("none", "inverse-probability"):
        result = subprocess.run(
            [sys.executable, "manage.py", "leaderboard", "--battles", str(out), "--json", "--weighting", weighting],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        file_rows = json.loads(result.stdout)["models"]
        with override_settings(ARENA_RATINGS_WEIGHTING=weighting, ARENA_PROVISIONAL_VOTES=0):
            db_rows = leaderboard_snapshot()["models"]
        from_file = {m["model"]: (m["rating"], m["ci_upper"] - m["ci_lower"]) for m in file_rows}
        from_db = {r["model"]: (r["rating"], r["ci_upper"] - r["ci_lower"]) for r in db_rows}
        assert from_file.keys() == from_db.keys()
        # The same weights summed in another order: equal to rounding (a model that won nearly
        # everything amplifies it).
        for name, (rating, width) in from_db.items():
            assert from_file[name] == (pytest.approx(rating, rel=1e-6), pytest.approx(width, rel=1e-4))


@pytest.mark.parametrize("field, value", [("draw_probability", 0), ("draw_probability", 1.5),
                                          ("draw_probability", "0.1"), ("draw_pairs", 0), ("draw_pairs", 2.5)])
def test_a_bad_draw_probability_stops_the_import_with_its_line(tmp_path, field, value):
    path = tmp_path / "in.jsonl"
    good = {"model_a": "x", "model_b": "y", "winner": "tie", "draw_probability": 0.5, "draw_pairs": 1}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, field: value}) + "\n")
    with pytest.raises(CommandError, match=f"line 2: {field}"):
        call_command("import_battles", str(path), "--no-progress")
    assert not Battle.objects.exists()
