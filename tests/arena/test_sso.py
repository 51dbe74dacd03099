"""ARENA_ACCESS=sso end to end: the arena (uvicorn) signs people in through a real OpenID
provider (django-oauth-toolkit, tests/oidc_provider) running as a process of its own."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import requests
import websockets

from tests.helpers import free_port, process_group_stop, web_start
from tests.oidc_provider.serve import provider_running

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEOPLE = [
    {"username": "ada", "password": "correct horse battery", "email": "ada@example.com"},
    {"username": "eve", "password": "another horse battery", "email": "eve@elsewhere.org"},
]


@pytest.fixture(scope="module")
def sso_arena(tmp_path_factory, django_db_setup, django_db_blocker):
    workdir = tmp_path_factory.mktemp("sso")
    # The provider must know the arena's callback before the arena starts: fix the port first.
    port = free_port()
    with provider_running(workdir, redirect_uri=f"http://127.0.0.1:{port}/oidc/callback/", people=PEOPLE) as idp:
        web, base_url = web_start(workdir, "web-sso", idp.arena_env(domains="example.com"), port=port)
        try:
            yield idp, base_url
        finally:
            process_group_stop(web)


def sign_in(base_url: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """What a browser does: the arena's SSO link, the provider's login form, back to the arena."""
    s = requests.Session()
    answer = s.get(f"{base_url}/oidc/authenticate/", timeout=10)  # → provider → its login page
    assert "Example identity provider" in answer.text, answer.text[:500]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', answer.text)[1]
    nxt = re.search(r'name="next" value="([^"]+)"', answer.text)[1].replace("&amp;", "&")
    landed = s.post(answer.url, data={"csrfmiddlewaretoken": csrf, "username": username, "password": password,
                                      "next": nxt}, headers={"Referer": answer.url}, timeout=10)
    return s, landed


def test_a_member_of_an_allowed_domain_signs_in_and_plays(sso_arena):
    _, base_url = sso_arena
    s, landed = sign_in(base_url, "ada", "correct horse battery")
    assert landed.url == f"{base_url}/"
    page = s.get(f"{base_url}/", timeout=10)
    assert page.status_code == 200 and 'data-testid="sign-out"' in page.text
    assert "ada@example.com" not in page.text  # addresses are for admins only

    async def socket_opens() -> dict:
        cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.domain in ("127.0.0.1", ""))
        ws_url = base_url.replace("http://", "ws://") + "/ws/arena/"
        async with websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": base_url}) as ws:
            await ws.send(json.dumps({"action": "new_round"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    assert asyncio.run(socket_opens()) == {"type": "state", "state": None}
    from django.contrib.auth.models import User

    assert User.objects.get(email="ada@example.com").username != "ada@example.com"


def test_an_address_outside_the_allowed_domains_is_refused(sso_arena):
    _, base_url = sso_arena
    s, landed = sign_in(base_url, "eve", "another horse battery")
    assert landed.url == f"{base_url}/accounts/sign-in/?failed=1"
    assert 'data-testid="sign-in-failed"' in landed.text
    assert "/accounts/sign-in/" in s.get(f"{base_url}/", timeout=10).url  # still signed out
    from django.contrib.auth.models import User

    assert not User.objects.filter(email="eve@elsewhere.org").exists()


def test_signed_out_visitors_are_sent_to_sign_in_and_the_socket_refuses_them(sso_arena):
    _, base_url = sso_arena
    answer = requests.get(f"{base_url}/", timeout=10)
    assert "/accounts/sign-in/" in answer.url and 'data-testid="sso-sign-in"' in answer.text
    assert "Sign in with Example Corp" in answer.text

    async def refused() -> int:
        ws_url = base_url.replace("http://", "ws://") + "/ws/arena/"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(ws_url, additional_headers={"Origin": base_url}) as ws:
                await ws.recv()
        return refused.value.response.status_code

    assert asyncio.run(refused()) == 403
