"""ARENA_ACCESS through the routed ASGI app: who may open the websocket and act on it, which pages
need a member, sign-in and sign-up by invitation."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, override_settings

from arena.models import Invitation
from arena.views_access import SIGN_IN_ATTEMPTS
from config.asgi import application
from tests.websockets import ORIGIN, new_session_key, ws_connect

pytestmark = [pytest.mark.django_db(transaction=True)]

MEMBERS = override_settings(ARENA_ACCESS="accounts")


@database_sync_to_async
def signed_in_session(username: str = "ada", active: bool = True) -> tuple[str, User]:
    """A session as Django's login leaves it (the browser's sign-in is tested in tests/browser)."""
    user = User.objects.create_user(username, password="pw-for-tests-only", is_active=active)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value, user


async def refused(session_key: str | None) -> bool:
    headers = [ORIGIN] + ([(b"cookie", f"sessionid={session_key}".encode())] if session_key else [])
    comm = WebsocketCommunicator(application, "/ws/arena/", headers=headers)
    connected, _ = await comm.connect(timeout=5)
    await comm.disconnect()
    return not connected


@MEMBERS
async def test_a_signed_out_visitor_cannot_open_the_arena_socket():
    assert await refused(await new_session_key())  # a session, but nobody signed in


@MEMBERS
async def test_a_member_opens_the_socket_and_acts():
    key, _ = await signed_in_session()
    comm = await ws_connect(key)
    await comm.send_to(text_data=json.dumps({"action": "new_round"}))
    assert json.loads(await comm.receive_from(timeout=5)) == {"type": "state", "state": None}
    await comm.disconnect()


@MEMBERS
async def test_signing_out_stops_a_socket_already_open():
    key, _ = await signed_in_session()
    comm = await ws_connect(key)
    await database_sync_to_async(SessionStore(session_key=key).delete)()  # what signing out does
    await comm.send_to(text_data=json.dumps({"action": "vote", "battle": "x", "outcome": "a"}))
    frame = json.loads(await comm.receive_from(timeout=5))
    assert frame["type"] == "error" and frame["code"] == "signed_out"
    assert (await comm.receive_output(timeout=5))["type"] == "websocket.close"


@MEMBERS
async def test_an_account_deactivated_by_an_admin_can_do_nothing_more():
    key, user = await signed_in_session()
    comm = await ws_connect(key)
    await database_sync_to_async(User.objects.filter(pk=user.pk).update)(is_active=False)
    await comm.send_to(text_data=json.dumps({"action": "new_round"}))
    assert json.loads(await comm.receive_from(timeout=5))["code"] == "signed_out"
    await comm.disconnect()


async def test_open_mode_needs_no_account():
    comm = await ws_connect(await new_session_key())
    await comm.send_to(text_data=json.dumps({"action": "new_round"}))
    assert json.loads(await comm.receive_from(timeout=5)) == {"type": "state", "state": None}
    await comm.disconnect()


async def leaderboard_refused(session_key: str | None) -> bool:
    headers = [ORIGIN] + ([(b"cookie", f"sessionid={session_key}".encode())] if session_key else [])
    comm = WebsocketCommunicator(application, "/ws/leaderboard/", headers=headers)
    connected, _ = await comm.connect(timeout=5)
    await comm.disconnect()
    return not connected


@override_settings(ARENA_ACCESS="accounts", ARENA_LEADERBOARD_PUBLIC=False)
async def test_a_members_only_leaderboard_socket_refuses_visitors_and_serves_members():
    assert await leaderboard_refused(None)
    key, _ = await signed_in_session()
    assert not await leaderboard_refused(key)


@override_settings(ARENA_ACCESS="accounts", ARENA_LEADERBOARD_PUBLIC=True)
async def test_a_public_leaderboard_socket_serves_visitors():
    assert not await leaderboard_refused(None)


# --- pages ----------------------------------------------------------------------------------


@MEMBERS
def test_pages_send_visitors_to_sign_in_and_serve_members():
    visitor = Client()
    assert visitor.get("/").url == "/accounts/sign-in/?next=/"
    assert visitor.get("/api/models/status").status_code == 403
    assert visitor.get("/leaderboard/").status_code == 200  # public unless ARENA_LEADERBOARD_PUBLIC=false
    member = Client()
    member.force_login(User.objects.create_user("ada", password="pw-for-tests-only"))
    assert member.get("/").status_code == 200


@override_settings(ARENA_ACCESS="accounts", ARENA_LEADERBOARD_PUBLIC=False)
def test_a_members_only_leaderboard_page_and_api():
    assert Client().get("/leaderboard/").status_code == 302
    assert Client().get("/api/leaderboard/").status_code == 403


@MEMBERS
def test_the_sign_in_page_signs_a_member_in_and_a_wrong_password_says_so():
    User.objects.create_user("ada", password="a long password for tests")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/sign-in/")
    token = page.cookies["csrftoken"].value
    wrong = client.post("/accounts/sign-in/", {"username": "ada", "password": "nope", "csrfmiddlewaretoken": token})
    assert wrong.status_code == 200 and "didn't match" in wrong.content.decode()
    right = client.post("/accounts/sign-in/", {"username": "ada", "password": "a long password for tests",
                                               "csrfmiddlewaretoken": token})
    assert right.status_code == 302 and client.get("/").status_code == 200
    assert client.post("/accounts/sign-out/", {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}).status_code \
        == 302
    assert client.get("/").status_code == 302


@MEMBERS
def test_password_guessing_is_limited_per_name_and_the_page_says_so():
    User.objects.create_user("grace", password="a long password for tests")
    client = Client()
    for _ in range(SIGN_IN_ATTEMPTS):
        assert client.post("/accounts/sign-in/", {"username": "grace", "password": "guess"}).status_code == 200
    limited = client.post("/accounts/sign-in/", {"username": "grace", "password": "a long password for tests"})
    assert limited.status_code == 429 and "Too many sign-in attempts" in limited.content.decode()
    assert client.get("/").status_code == 302  # not signed in, even with the right password
    User.objects.create_user("hopper", password="another long password")
    # Another name isn't held back by the first one's guesses.
    assert client.post("/accounts/sign-in/", {"username": "hopper", "password": "another long password"}).status_code \
        == 302


@MEMBERS
def test_an_invitation_makes_one_account_and_then_is_used_up():
    invitation = Invitation.objects.create(note="for Ada")
    client = Client()
    form = {"username": "ada", "password1": "a long password for tests", "password2": "a long password for tests"}
    assert client.post(f"/accounts/invite/{invitation.token}/", form).url == "/"
    assert client.get("/").status_code == 200  # signed in
    again = Client().post(f"/accounts/invite/{invitation.token}/", form | {"username": "eve"})
    assert again.status_code == 410 and not User.objects.filter(username="eve").exists()
    assert Client().get("/accounts/invite/not-a-token/").status_code == 410


def test_invitations_are_for_accounts_mode_only():
    invitation = Invitation.objects.create()
    assert Client().get(f"/accounts/invite/{invitation.token}/").status_code == 404
    assert Client().get("/accounts/sign-in/").url == "/"
