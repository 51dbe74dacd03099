"""Web security: CSRF, websocket Origin, the staff-only admin and the Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.websockets import new_session_key

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/arena/chatmodel/"


def test_admin_login_post_without_a_csrf_token_is_refused():
    User.objects.create_superuser("root", "root@example.com", "s3cret-pass")
    client = Client(enforce_csrf_checks=True)
    answer = client.post("/admin/login/", {"username": "root", "password": "s3cret-pass"})
    assert answer.status_code == 403
    assert "_auth_user_id" not in client.session

    # The same login with the page's token works: the 403 was the CSRF check, nothing else.
    token = login_token(client)
    answer = client.post("/admin/login/", {"username": "root", "password": "s3cret-pass", "csrfmiddlewaretoken": token})
    assert answer.status_code == 302 and client.session["_auth_user_id"]


def login_token(client: Client) -> str:
    page = client.get("/admin/login/").content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_a_csrf_token_from_another_browser_is_refused():
    victim, attacker = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    stolen = login_token(attacker)
    login_token(victim)  # the victim has a CSRF cookie of its own
    answer = victim.post("/admin/login/", {"username": "a", "password": "b", "csrfmiddlewaretoken": stolen})
    assert answer.status_code == 403
    own = login_token(victim)
    answer = victim.post("/admin/login/", {"username": "a", "password": "b", "csrfmiddlewaretoken": own})
    assert answer.status_code == 200  # the form again (wrong password), past the CSRF check


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_without_an_origin_is_refused():
    from config.asgi import application

    key = await new_session_key()
    communicator = WebsocketCommunicator(application, "/ws/arena/", headers=[(b"cookie", f"sessionid={key}".encode())])
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect()

    # The same socket with our own Origin is accepted: the refusal above was about the Origin.
    communicator = WebsocketCommunicator(
        application, "/ws/arena/", headers=[(b"cookie", f"sessionid={key}".encode()), (b"origin", b"http://localhost")]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.disconnect()


def test_the_admin_is_for_staff_only(chat_models):
    anonymous = Client()
    answer = anonymous.get(CHANGELIST)
    assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")

    member = User.objects.create_user("member", password="pw-member-1")
    client = Client()
    client.force_login(member)
    answer = client.get(CHANGELIST)
    assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")  # not staff: not in

    staff = User.objects.create_user("staff", password="pw-staff-1", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403  # staff, but no permission on models

    staff.user_permissions.add(Permission.objects.get(codename="view_chatmodel"))
    client = Client()
    client.force_login(User.objects.get(id=staff.id))
    answer = client.get(CHANGELIST)
    assert answer.status_code == 200 and "zephyr-7b-beta" in answer.content.decode()
    assert client.post(f"{CHANGELIST}{chat_models[0].id}/delete/", {"post": "yes"}).status_code == 403  # view only


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def test_the_page_sends_a_strict_content_security_policy():
    answer = Client().get("/")
    policy = csp_directives(answer["Content-Security-Policy"])
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts == ["'self'"], scripts
    assert "'unsafe-inline'" not in policy.get("default-src", [])
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    # The page itself has no inline script that the policy would have to allow.
    html = answer.content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers"
    assert answer["X-Frame-Options"] == "DENY" and answer["X-Content-Type-Options"] == "nosniff"


def test_the_session_cookie_is_out_of_reach_of_scripts():
    answer = Client().get("/")
    cookie = answer.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
