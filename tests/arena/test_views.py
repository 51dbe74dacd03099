"""The plain HTTP pages and endpoints: GET and HEAD (uptime monitors use HEAD), nothing else."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = ["/", "/leaderboard/", "/healthz", "/api/leaderboard/", "/api/models/status"]


@pytest.mark.parametrize("path", PAGES)
def test_head_answers_like_get_without_a_body(path):
    client = Client()
    get = client.get(path)
    head = client.head(path)
    assert get.status_code == head.status_code == 200
    assert head["Content-Type"] == get["Content-Type"]
    assert head.content == b""


@pytest.mark.parametrize("path", PAGES)
def test_other_methods_are_refused(path):
    assert Client().post(path).status_code == 405


def test_a_head_request_leaves_no_session_behind():
    response = Client().head("/")
    assert response.status_code == 200
    assert "sessionid" not in response.cookies and not Session.objects.exists()
    assert "sessionid" in Client().get("/").cookies  # a browser's GET still gets one


def test_models_status_says_whether_a_battle_can_start_and_nothing_else():
    from arena.models import ChatModel

    def status():
        return Client().get("/api/models/status")

    answer = status()
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    assert answer.json() == {"available": False}
    assert "max-age=2" in answer["Cache-Control"]  # polled by every waiting page: a shared cache may answer
    assert "sessionid" not in answer.cookies and not Session.objects.exists()

    one = ChatModel.objects.create(name="secret-model-one", endpoint_url="http://127.0.0.1:9", template="zephyr")
    assert status().json() == {"available": False}  # one model can't battle itself
    ChatModel.objects.create(name="secret-model-two", endpoint_url="http://127.0.0.1:9", template="chatml")
    answer = status()
    assert answer.json() == {"available": True}
    assert b"secret-model" not in answer.content and answer.content == b'{"available": true}'

    for change in ({"healthy": False}, {"enabled": False}, {"weight": 0}):
        ChatModel.objects.filter(id=one.id).update(**change)
        assert status().json() == {"available": False}, change
        ChatModel.objects.filter(id=one.id).update(healthy=True, enabled=True, weight=1)
    assert status().json() == {"available": True}
