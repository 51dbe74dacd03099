"""Style control, categories and model speed through the database, the JSON API, the page and the
leaderboard command: traits stored as battles are counted or imported, the views agree with the
reference arena's numbers, bad parameters get a clear error."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from celery import current_app
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from arena import queue, services
from arena.leaderboard_variants import CACHE_VARIANT
from arena.models import BattleTraits, ChatModel, Reply
from arena.speed import model_speed
from arena.tasks import battle_traits_store, leaderboard_variant_refresh
from tests.finished import battle_finished, vote, vote_uncounted

DATA = Path(__file__).parent / "data"
BATTLES = DATA / "style_battles.jsonl"
REFERENCE = json.loads((DATA / "style_reference.json").read_text())


def _leaderboard_json(*args: str) -> dict:
    out = StringIO()
    call_command("leaderboard", "--battles", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_a_counted_vote_stores_its_battle_s_style_and_categories(chat_models, alice):
    text_a = "# Title\n- one\n- two with **bold**\n```\n# not a header\n```"
    _, battle = vote(alice, "a", text_a=text_a, text_b="Plain words only.")
    reply_a = Reply.objects.get(turn__battle=battle, side="a")
    assert (reply_a.header_count, reply_a.list_count, reply_a.bold_count) == (1, 2, 1)
    traits = BattleTraits.objects.get(battle=battle)
    assert (traits.tokens_a, traits.headers_a, traits.lists_a, traits.bold_a) == (3, 1, 2, 1)  # 3: the server's count
    assert (traits.headers_b, traits.lists_b, traits.bold_b) == (0, 0, 0)
    assert traits.turns == 1 and traits.coding and not traits.refusal


@pytest.mark.django_db
def test_counting_hands_the_battles_traits_to_a_worker_once_committed(
    chat_models, alice, monkeypatch, django_capture_on_commit_callbacks
):
    _, battle = vote_uncounted(alice, "a", text_a="- one\n- two", text_b="Plain.")
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda *a, **kw: sent.append((a[0], kw["kwargs"])))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.votes_count_pending() == 1
        assert not BattleTraits.objects.filter(battle=battle).exists()  # not on the counting's path
    queued = [kwargs for name, kwargs in sent if name == queue.BATTLE_TRAITS_STORE]
    assert queued == [{"battle_ids": [str(battle.id)]}]
    assert battle_traits_store(**queued[0]) == 1
    assert BattleTraits.objects.get(battle=battle).lists_a == 2


@pytest.mark.django_db
def test_imported_battles_keep_their_conv_metadata_and_get_categories_from_conversations(tmp_path):
    records = [
        {"question_id": "m", "model_a": "x", "model_b": "y", "winner": "model_a", "language": "German",
         "conv_metadata": {"sum_assistant_a_tokens": 300, "header_count_a": {"h1": 2}, "list_count_a": 4,
                           "bold_count_a": 1, "sum_assistant_b_tokens": 20, "header_count_b": 0,
                           "list_count_b": 0, "bold_count_b": 0, "sum_user_tokens": 612}},
        {"question_id": "c", "model_a": "x", "model_b": "y", "winner": "model_b",
         "conversation_a": [{"role": "user", "content": "How do I reverse a list in Python?"},
                            {"role": "assistant", "content": "Use slicing:\n```python\nxs[::-1]\n```"}],
         "conversation_b": [{"role": "user", "content": "How do I reverse a list in Python?"},
                            {"role": "assistant", "content": "I'm sorry, but I can't help with that."}]},
        {"question_id": "n", "model_a": "x", "model_b": "y", "winner": "tie"},
    ]
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    call_command("import_battles", str(path), "--no-progress", stdout=StringIO())
    given = BattleTraits.objects.get(battle__source_id="q:m")
    assert (given.tokens_a, given.headers_a, given.lists_a, given.bold_a, given.tokens_b) == (300, 2, 4, 1, 20)
    assert given.query_tokens == 612 and given.language == "german"
    counted = BattleTraits.objects.get(battle__source_id="q:c")
    assert counted.coding and counted.refusal and counted.language == "english" and counted.turns == 1
    assert not BattleTraits.objects.filter(battle__source_id="q:n").exists()


@pytest.mark.django_db
def test_bad_conv_metadata_stops_the_import_with_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"model_a": "x", "model_b": "y", "winner": "tie",
                                "conv_metadata": {"sum_assistant_a_tokens": -3}}))
    with pytest.raises(CommandError, match=r"line 1: conv_metadata.sum_assistant_a_tokens .*nothing was imported"):
        call_command("import_battles", str(path), "--no-progress", stdout=StringIO())
    assert not ChatModel.objects.filter(name="x").exists()


@pytest.fixture
def imported(db):
    call_command("import_battles", str(BATTLES), "--no-progress", stdout=StringIO())


@override_settings(ARENA_CATEGORY_MIN_VOTES=100)
def test_a_stale_variant_is_served_from_the_cache_and_recomputed_by_a_worker(
    imported, client, monkeypatch, django_capture_on_commit_callbacks
):
    first = client.get("/api/leaderboard/?style=1").json()  # nothing cached: computed in the request
    key = CACHE_VARIANT.format(style=1, category="overall", weighting="none")
    stale = {**cache.get(key), "total_votes": first["total_votes"] - 1, "computed_at": 0.0, "models": []}
    cache.set(key, stale, timeout=None)
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get("/api/leaderboard/?style=1").json()["models"] == []  # the cached one, at once
        assert client.get("/api/leaderboard/?style=1").json()["models"] == []
    assert [kw["kwargs"] for _, kw in sent] == [{"style": True, "category": "overall"}]  # queued once
    assert leaderboard_variant_refresh(style=True, category="overall") == first["total_votes"]
    assert client.get("/api/leaderboard/?style=1").json()["models"] == first["models"]
    assert len(sent) == 1  # fresh again: nothing more to queue


@override_settings(ARENA_CATEGORY_MIN_VOTES=100)
def test_the_style_controlled_json_agrees_with_the_reference_and_the_command(imported, client):
    body = client.get("/api/leaderboard/?style=1").json()
    assert body["style_control"] is True and body["battles"] == 2000 and not body["too_few_votes"]
    ratings = {row["model"]: row["rating"] for row in body["models"]}
    for name, expected in REFERENCE["style_control"].items():
        assert ratings[name] == pytest.approx(expected, abs=0.5)
    coefficients = {c["feature"]: c for c in body["coefficients"]}
    assert coefficients["tokens"]["value"] == pytest.approx(REFERENCE["coefficients"]["tokens"], rel=0.05)
    assert coefficients["tokens"]["says"].startswith("Longer answers win more often")
    plain = {row["model"]: row["rating"] for row in client.get("/api/leaderboard/").json()["models"]}
    for row in body["models"]:
        assert row["rating_plain"] == pytest.approx(plain[row["model"]], abs=1e-6)
        if row["rank"] is not None and row["rank_plain"] is not None:
            assert row["rank_change"] == row["rank_plain"] - row["rank"]
    command = _leaderboard_json(str(BATTLES), "--style-control")
    for row in command["models"]:
        assert row["rating"] == pytest.approx(ratings[row["model"]], abs=1e-6)


@override_settings(ARENA_CATEGORY_MIN_VOTES=100)
def test_a_category_ranks_its_own_battles_and_one_with_too_few_says_so(imported, client):
    english = client.get("/api/leaderboard/?category=english").json()
    assert english["battles"] == 2000 and english["models"] and english["category_label"] == "English"
    coding = client.get("/api/leaderboard/?category=coding").json()
    assert coding["too_few_votes"] is True and coding["battles"] == 0 and coding["models"] == []
    assert coding["min_battles"] == 100
    menu = {c["name"]: c["battles"] for c in client.get("/api/leaderboard/?category=english").json()["categories"]}
    assert menu["overall"] == 2000 and menu["english"] == 2000 and menu["coding"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [("style=2", "style must be 0 or 1"), ("category=Coding!", "category must be"), ("style=yes", "style must")],
)
def test_bad_view_parameters_get_a_clear_error(client, query, message):
    response = client.get(f"/api/leaderboard/?{query}")
    assert response.status_code == 400 and message in response.json()["error"]
    page = client.get(f"/leaderboard/?{query}")
    assert page.status_code == 400 and message in page.content.decode()


@override_settings(ARENA_CATEGORY_MIN_VOTES=100)
def test_the_page_shows_the_view_asked_for_with_its_controls(imported, client):
    html = client.get("/leaderboard/?style=1&category=english").content.decode()
    assert 'data-testid="style-toggle" checked' in html
    assert '<option value="english" selected>' in html
    view = html.split('id="leaderboard-view" type="application/json">')[1].split("</script>")[0]
    assert json.loads(view) == {"style": True, "category": "english", "judge": None}
    # Names on the page go through json_script: a model named like markup stays text.
    ChatModel.objects.filter(name="model-a").update(name="<img src=x onerror=alert(1)>")
    html = client.get("/leaderboard/?style=1").content.decode()
    assert "<img src=x" not in html


@pytest.mark.django_db
def test_model_speed_over_recent_replies(chat_models, alice):
    for _ in range(6):
        battle_finished(alice)
    model = chat_models[0]
    replies = list(Reply.objects.filter(model=model).order_by("id"))
    ttfts = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200][: len(replies)]
    for reply, ttft in zip(replies, ttfts, strict=False):
        Reply.objects.filter(id=reply.id).update(ttft_ms=ttft, duration_ms=ttft + 1000, token_count=51,
                                                 finished_at=timezone.now())
    Reply.objects.filter(id=replies[0].id).update(status=Reply.Status.FAILED, failure_kind="overloaded")
    speed = model_speed(model.id)
    done = np.array(ttfts[1: len(replies)], dtype=float)
    assert speed["replies"] == len(replies)
    assert speed["ttft_p50_ms"] == pytest.approx(np.percentile(done, 50), abs=0.1)
    assert speed["ttft_p90_ms"] == pytest.approx(np.percentile(done, 90), abs=0.1)
    assert speed["tokens_per_second"] == pytest.approx(50.0)
    assert speed["failure_rate"] == pytest.approx(1 / len(replies), abs=1e-4)
    services.votes_count_pending()


@pytest.mark.django_db
def test_the_live_json_carries_each_model_s_speed(chat_models, alice, client):
    vote(alice, "a")
    rows = client.get("/api/leaderboard/").json()["models"]
    assert rows and all(set(row["speed"]) >= {"ttft_p50_ms", "ttft_p90_ms", "tokens_per_second", "failure_rate"}
                        for row in rows)


def test_the_command_s_style_control_agrees_with_fastchat():
    result = _leaderboard_json(str(BATTLES), "--style-control")
    assert result["style_control"] is True and result["category"] == "overall" and result["battles"] == 2000
    for row in result["models"]:
        assert row["rating"] == pytest.approx(REFERENCE["style_control"][row["model"]], abs=0.5)
    for c in result["coefficients"]:
        assert c["value"] == pytest.approx(REFERENCE["coefficients"][c["feature"]], rel=0.05, abs=1e-4)


def test_the_command_s_style_bootstrap_brackets_each_rating():
    result = _leaderboard_json(str(BATTLES), "--style-control", "--bootstrap", "50", "--seed", "3")
    assert all(row["ci_lower"] < row["rating"] < row["ci_upper"] for row in result["models"])
    assert all(c["ci_lower"] <= c["value"] <= c["ci_upper"] for c in result["coefficients"])


def test_the_command_s_categories(tmp_path):
    english = _leaderboard_json(str(BATTLES), "--category", "english")
    overall = _leaderboard_json(str(BATTLES))
    assert english["battles"] == overall["battles"] == 2000
    assert [r["rating"] for r in english["models"]] == pytest.approx([r["rating"] for r in overall["models"]])
    coding = _leaderboard_json(str(BATTLES), "--category", "coding")
    assert coding["battles"] == 0 and coding["models"] == []
    with pytest.raises(CommandError, match="--category 'Coding!'"):
        _leaderboard_json(str(BATTLES), "--category", "Coding!")
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"model_a": "x", "model_b": "y", "winner": "tie"}))
    with pytest.raises(CommandError, match=r"no battle in .* has conversations or conv_metadata"):
        _leaderboard_json(str(bare), "--style-control")


@pytest.mark.django_db
def test_an_export_carries_the_style_as_conv_metadata_and_a_reimport_keeps_it(chat_models, alice, tmp_path):
    _, battle = vote(alice, "b", text_a="## Head\n1. one\n2. two", text_b="__bold__ and **bold**")
    original = BattleTraits.objects.get(battle=battle)
    path = tmp_path / "out.jsonl"
    call_command("export_battles", str(path), stdout=StringIO())
    record = json.loads(path.read_text().splitlines()[0])
    meta = record["conv_metadata"]
    assert (meta["header_count_a"], meta["list_count_a"], meta["bold_count_b"]) == (1, 2, 2)
    assert meta["sum_assistant_a_tokens"] == original.tokens_a and record["language"] == original.language
    call_command("import_battles", str(path), "--no-progress", stdout=StringIO())
    again = BattleTraits.objects.get(battle__source_id=f"q:{battle.id}")
    fields = (*BattleTraits.STYLE_FIELDS, *BattleTraits.TRAIT_FIELDS)
    assert [getattr(again, f) for f in fields] == [getattr(original, f) for f in fields]
