"""Health-aware sampling: the probe takes sick models out of the draw and brings them back; with
none left, the page and the websocket say so; the admin shows each model's health."""

from __future__ import annotations

import contextlib
import re
from collections import Counter

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.test import Client, override_settings

from arena import services
from arena.models import Battle, ChatModel
from arena.tasks import models_probe
from devserver import DevServerConfig, serve_in_thread
from tests.helpers import free_port
from tests.reliability.helpers import fault_set, new_session_key, ws_connect, ws_receive, ws_send

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ("model-x", "model-y", "model-z")


def server(name: str, port: int = 0):
    return serve_in_thread(DevServerConfig(model_id=name, time_to_first_token=0, tokens_per_second=0), port=port)


@pytest.fixture
def three(transactional_db):
    """Three models, each on a dev server of its own: {name: (model, url)}."""
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(server(name)) for name in NAMES}
        yield {
            name: ChatModel.objects.create(name=name, endpoint_url=url, template="zephyr") for name, url in urls.items()
        }


def draws(client, n: int = 30) -> Counter:
    """Which models n new battles draw."""
    seen: Counter = Counter()
    for _ in range(n):
        battle = services.battle_start(client=client, text="Hello").battle
        seen.update([battle.model_a.name, battle.model_b.name])
    Battle.objects.all().delete()
    return seen


def model(name: str) -> ChatModel:
    return ChatModel.objects.get(name=name)


@override_settings(ARENA_BATTLES_PER_MINUTE=1000)
def test_an_unhealthy_model_is_never_drawn_until_it_recovers(three, alice, no_generation):
    sick = three["model-z"]
    fault_set(sick.endpoint_url, "unhealthy")  # /health answers 503 until switched off
    assert models_probe() == 2
    assert not model("model-z").healthy and model("model-z").last_error == "/health answered HTTP 503"
    assert model("model-z").health_checked_at is not None
    assert model("model-x").healthy and model("model-x").server_info["model_id"] == "model-x"
    assert set(draws(alice)) == {"model-x", "model-y"}

    fault_set(sick.endpoint_url, None)
    assert models_probe() == 3
    assert model("model-z").healthy and model("model-z").last_error == ""
    assert draws(alice)["model-z"] > 0


@override_settings(ARENA_BATTLES_PER_MINUTE=1000)
def test_a_stopped_model_server_is_taken_out_and_back(transactional_db, alice, no_generation):
    port = free_port()
    with server("model-x") as url_x, server("model-y") as url_y:
        for name, url in (("model-x", url_x), ("model-y", url_y), ("model-z", f"http://127.0.0.1:{port}")):
            ChatModel.objects.create(name=name, endpoint_url=url, template="zephyr")
        assert models_probe() == 2  # nothing listens on model-z's port
        assert not model("model-z").healthy
        assert re.search(r"Connect|connect|refused", model("model-z").last_error), model("model-z").last_error
        assert set(draws(alice)) == {"model-x", "model-y"}
        with server("model-z", port=port):
            assert models_probe() == 3
            assert model("model-z").healthy
            assert draws(alice)["model-z"] > 0


def banner_tag(html: str) -> str:
    return re.search(r'<div[^>]*data-testid="no-models"[^>]*>', html).group(0)


async def test_with_every_model_down_the_page_and_the_socket_say_so(three):
    page = await database_sync_to_async(Client().get)("/")
    assert " hidden" in banner_tag(page.content.decode())  # all well: no banner

    for sick in three.values():
        fault_set(sick.endpoint_url, "unhealthy")
    assert await database_sync_to_async(models_probe)() == 0

    page = await database_sync_to_async(Client().get)("/")
    tag = banner_tag(page.content.decode())
    assert " hidden" not in tag and 'class="banner"' in tag
    assert "No models are available right now" in page.content.decode()

    comm = await ws_connect(await new_session_key())
    try:
        await ws_send(comm, {"action": "prompt", "battle": None, "text": "Hello?"})
        error = await ws_receive(comm, 10)
    finally:
        await comm.disconnect()
    assert error["type"] == "error" and error["code"] == "no_models"
    assert "Not enough models are available right now" in error["message"]
    assert await database_sync_to_async(Battle.objects.count)() == 0


def test_the_admin_lists_each_model_s_health_and_last_error(three):
    fault_set(three["model-y"].endpoint_url, "unhealthy")
    models_probe()
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    html = admin.get("/admin/arena/chatmodel/").content.decode()
    rows = {name: re.search(rf"<tr>(?:(?!</tr>).)*{name}(?:(?!</tr>).)*</tr>", html, re.S).group(0) for name in NAMES}
    assert 'alt="False"' in rows["model-y"] and "/health answered HTTP 503" in rows["model-y"]
    for name in ("model-x", "model-z"):
        assert 'alt="True"' in rows[name] and "/health answered" not in rows[name]
    assert "Healthy" in html and "Last error" in html  # the column headers
