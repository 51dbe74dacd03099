"""The admin: models added, probed and checked there; battles, turns, replies and votes written by
the arena only, shown read-only, deletable (deleting votes recounts the leaderboard)."""

import re

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from arena import queue, ratings, services, tasks
from arena.live import model_failures_key
from arena.models import Battle, ChatModel, PairCount, Reply, Turn, Vote
from devserver import DevServerConfig, serve_in_thread
from tests.finished import turn_finish, vote
from tests.helpers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize("model", ["vote", "battle", "turn"])
def test_records_the_arena_writes_cannot_be_added(admin_client, model):
    assert admin_client.get(f"/admin/arena/{model}/add/").status_code == 403
    assert admin_client.post(f"/admin/arena/{model}/add/", {}).status_code == 403
    changelist = admin_client.get(f"/admin/arena/{model}/").content.decode()
    assert f'href="/admin/arena/{model}/add/"' not in changelist


def test_a_turn_shows_its_replies_text_read_only_and_offers_no_new_reply(admin_client, chat_models, alice):
    turn = services.battle_start(client=alice, text="What is a monad?")
    turn_finish(turn, text_a="A monoid in the category of endofunctors.", text_b="A burrito, roughly.")
    html = admin_client.get(f"/admin/arena/turn/{turn.id}/change/").content.decode()
    assert "A monoid in the category of endofunctors." in html and "A burrito, roughly." in html
    assert "What is a monad?" in html
    assert re.search(r'class="inline-heading">\s*Replies\s*</h2>', html) and "Replys" not in html
    assert "empty-form" not in html  # the template the "Add another Reply" link copies
    assert "<textarea" not in html and 'name="_save"' not in html  # nothing to edit
    assert Reply._meta.verbose_name_plural == "replies"


def test_computed_and_imported_fields_are_read_only(admin_client, chat_models, alice):
    turn = services.battle_start(client=alice, text="Q")
    Battle.objects.filter(id=turn.battle_id).update(source_id="q-123", judge="arena_user_7")
    html = admin_client.get(f"/admin/arena/battle/{turn.battle_id}/change/").content.decode()
    assert "q-123" in html and "arena_user_7" in html
    assert 'name="source_id"' not in html and 'name="judge"' not in html
    before = Battle.objects.values().get(id=turn.battle_id)
    admin_client.post(f"/admin/arena/battle/{turn.battle_id}/change/", {"source_id": "edited", "judge": "x"})
    assert Battle.objects.values().get(id=turn.battle_id) == before

    model = chat_models[0]
    html = admin_client.get(f"/admin/arena/chatmodel/{model.id}/change/").content.decode()
    assert 'name="elo_online"' not in html and 'name="healthy"' not in html
    assert 'name="endpoint_url"' in html  # the operator's own fields stay editable


@override_settings(ARENA_BOOTSTRAP_ROUNDS=0)
def test_deleting_votes_in_the_admin_recounts_the_leaderboard(
    admin_client, chat_models, alice, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    # The rebuild and the refresh it queues run here, as a worker would run them.
    monkeypatch.setattr(queue, "leaderboard_rebuild_queue", lambda: tasks.leaderboard_rebuild())
    monkeypatch.setattr(queue, "leaderboard_refresh_queue", lambda **kw: tasks.leaderboard_live_refresh())
    votes = []
    for outcome in ("a", "a", "b", "tie"):
        votes.append(vote(alice, outcome)[0])
        cache.clear()  # rate limits
    tasks.leaderboard_live_refresh()
    assert admin_client.get("/api/leaderboard/").json()["total_votes"] == 4

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/arena/vote/{votes[0].id}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Vote.objects.filter(id=votes[0].id).exists()
    board = admin_client.get("/api/leaderboard/").json()
    assert board["total_votes"] == 3
    assert sum(PairCount.objects.values_list("count", flat=True)) == 3
    # The online Elo is replayed without the deleted vote, as if it had never been cast.
    ids = [m.id for m in chat_models]
    in_order = Vote.objects.order_by("created_at", "id")
    rows = list(in_order.values_list("battle__model_a_id", "battle__model_b_id", "outcome"))
    expected = ratings.elo_online(
        np.array([ids.index(r[0]) for r in rows]), np.array([ids.index(r[1]) for r in rows]),
        np.array([Vote.Outcome(r[2]).code for r in rows]), len(ids),
    )
    assert [ChatModel.objects.get(id=i).elo_online for i in ids] == pytest.approx(list(expected))

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/arena/vote/", {
            "action": "delete_selected", "_selected_action": [v.id for v in votes[1:3]], "post": "yes",
        })
    assert admin_client.get("/api/leaderboard/").json()["total_votes"] == 1

    # Deleting a battle deletes its vote, which is recounted the same way; the last one empties the board.
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/admin/arena/battle/{votes[3].battle_id}/delete/", {"post": "yes"})
    assert not Vote.objects.exists() and not Turn.objects.filter(battle_id=votes[3].battle_id).exists()
    board = admin_client.get("/api/leaderboard/").json()
    assert board["total_votes"] == 0 and board["models"] == []
    assert set(ChatModel.objects.values_list("elo_online", flat=True)) == {1000.0}


def test_the_probe_action_shows_model_id_limits_and_health(client):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    with serve_in_thread(DevServerConfig(model_id="HuggingFaceH4/zephyr-7b-beta", time_to_first_token=0)) as url:
        up = ChatModel.objects.create(name="up", endpoint_url=url, template="zephyr")
        down = ChatModel.objects.create(name="down", endpoint_url=f"http://127.0.0.1:{free_port()}", template="zephyr")
        response = client.post(
            "/admin/arena/chatmodel/",
            {"action": "probe", "_selected_action": [up.id, down.id]},
            follow=True,
        )
    text = response.content.decode()
    # Model names keep their case (the admin capitalises each message's first letter).
    assert "“up” is healthy — model HuggingFaceH4/zephyr-7b-beta" in text
    assert "max total tokens 4096" in text
    assert "“down” is unhealthy" in text
    up.refresh_from_db(), down.refresh_from_db()
    assert up.healthy and up.server_info["model_id"] == "HuggingFaceH4/zephyr-7b-beta"
    assert not down.healthy and down.last_error


def test_the_probe_action_on_an_openai_model_says_what_its_server_serves(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    with serve_in_thread(DevServerConfig(model_id="Qwen/Qwen2.5-7B-Instruct", time_to_first_token=0)) as url:
        model = ChatModel.objects.create(
            name="qwen", protocol="openai", endpoint_url=f"{url}/v1", served_model="Qwen/Qwen2.5-7B-Instruct",
        )
        response = client.post("/admin/arena/chatmodel/", {"action": "probe", "_selected_action": [model.id]},
                               follow=True)
    text = response.content.decode()
    assert "“qwen” is healthy — serves Qwen/Qwen2.5-7B-Instruct over the OpenAI protocol" in text
    assert "TGI" not in text.split("is healthy")[1].split("</li>")[0]
    model.refresh_from_db()
    assert model.healthy and model.server_info["id"] == "Qwen/Qwen2.5-7B-Instruct"


def test_the_admin_shows_each_bad_parameter_on_the_field_and_saves_nothing(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.post("/admin/arena/chatmodel/add/", {
        "name": "m", "protocol": "tgi", "endpoint_url": "http://tgi:80", "template": "zephyr", "system_prompt": "",
        "extra_headers": "{}",
        "parameters": '{"temperature": -1, "bogus": 3}', "weight": "1", "enabled": "on", "timeout_seconds": "180",
    })
    assert response.status_code == 200  # the form again, with its errors
    html = response.content.decode()
    assert "temperature must be a number &gt; 0 (got -1)." in html
    assert "“bogus” is not a generation parameter; allowed: do_sample," in html
    assert not ChatModel.objects.exists()


def test_a_model_added_in_the_admin_is_out_of_the_draw_until_its_probe_succeeds(
    client, chat_models, probes_run_here, django_capture_on_commit_callbacks
):
    from arena.selectors import models_drawable

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    form = {"protocol": "tgi", "template": "zephyr", "system_prompt": "", "parameters": "{}", "extra_headers": "{}",
            "weight": "1", "enabled": "on", "timeout_seconds": "180"}
    with serve_in_thread(DevServerConfig(model_id="new-model", time_to_first_token=0)) as url:
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(
                "/admin/arena/chatmodel/add/", {**form, "name": "new-model", "endpoint_url": url}, follow=True
            )
        model = ChatModel.objects.get(name="new-model")
        assert not model.healthy and "Not probed yet" in model.last_error  # saved, not yet drawn
        assert model not in models_drawable()
        assert "“new-model” joins battles once its server" in response.content.decode()
        for callback in callbacks:
            callback()
        assert probes_run_here == [{"model_ids": [model.id], "retries": 5}]
        model.refresh_from_db()
        assert model.healthy and model.server_info["model_id"] == "new-model" and model.health_checked_at
        assert model in models_drawable()

    dead = f"http://127.0.0.1:{free_port()}"
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/arena/chatmodel/add/", {**form, "name": "dead-model", "endpoint_url": dead})
    model = ChatModel.objects.get(name="dead-model")
    assert not model.healthy and model.health_checked_at and "Connect" in model.last_error
    assert model not in models_drawable()

    # Pointing a model at another server takes it out until that one answers; other edits don't.
    zephyr = chat_models[0]
    change = {**form, "name": zephyr.name, "template": zephyr.template, "timeout_seconds": "20"}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/admin/arena/chatmodel/{zephyr.id}/change/",
            {**change, "endpoint_url": zephyr.endpoint_url, "weight": "2"},
        )
    zephyr.refresh_from_db()
    assert zephyr.healthy and zephyr.weight == 2 and len(probes_run_here) == 2
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/arena/chatmodel/{zephyr.id}/change/", {**change, "endpoint_url": dead})
    zephyr.refresh_from_db()
    assert not zephyr.healthy and zephyr.endpoint_url == dead and len(probes_run_here) == 3


def test_the_probe_action_reports_what_was_stored_not_the_raw_answer(client, chat_models):
    from arena.live import live_redis

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    model = chat_models[0]
    live_redis().set(model_failures_key(model.id), 5, ex=60)  # its generations kept failing
    answer = client.post("/admin/arena/chatmodel/", {"action": "probe", "_selected_action": [model.id]}, follow=True)
    text = answer.content.decode()
    model.refresh_from_db()
    assert not model.healthy
    assert f"“{model.name}” is unhealthy — the server answers but 5 generations failed recently" in text
    assert "is healthy" not in text
