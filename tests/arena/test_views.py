"""The plain HTTP pages: GET and HEAD (uptime monitors use HEAD), nothing else."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = ["/", "/leaderboard/", "/healthz", "/api/leaderboard/"]


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
