"""Members-only arenas in a real Chromium: a visitor is sent to sign in, a member signs in (a
password, or the organisation's OpenID provider), battles and votes; signing out shuts the page."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from arena.models import Vote
from tests.helpers import free_port, process_group_stop, web_start
from tests.oidc_provider.serve import provider_running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def accounts_web(tmp_path_factory, django_db_setup, celery_worker_process):
    web, base_url = web_start(tmp_path_factory.mktemp("accounts"), "web-accounts", {"ARENA_ACCESS": "accounts"})
    yield base_url
    process_group_stop(web)


@pytest.fixture(scope="module")
def sso_web(tmp_path_factory, django_db_setup):
    workdir = tmp_path_factory.mktemp("sso-browser")
    port = free_port()
    people = [{"username": "grace", "password": "a long password for tests", "email": "grace@example.com"}]
    with provider_running(workdir, redirect_uri=f"http://127.0.0.1:{port}/oidc/callback/", people=people) as idp:
        web, base_url = web_start(workdir, "web-sso", idp.arena_env(domains="example.com"), port=port)
        yield base_url
        process_group_stop(web)


def test_a_visitor_signs_in_with_a_password_battles_votes_and_signs_out(page, accounts_web, chat_models):
    User.objects.create_user("ada", password="a long password for tests")
    page.goto(accounts_web + "/")
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("a long password for tests")
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(accounts_web + "/", wait_until="load")  # the page's scripts are running
    page.get_by_test_id("prompt").fill("Tell me about tea")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("vote-a")).to_be_enabled(timeout=20_000)
    page.get_by_test_id("vote-a").click()
    expect(page.get_by_test_id("model-a")).not_to_have_text("", timeout=10_000)
    assert Vote.objects.get().user == User.objects.get(username="ada")
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()
    page.goto(accounts_web + "/")
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()  # still signed out


def test_a_member_signs_in_through_the_organisations_provider(page, sso_web):
    page.goto(sso_web + "/")
    page.get_by_test_id("sso-sign-in").click()
    expect(page.get_by_role("heading", name="Example identity provider")).to_be_visible()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("a long password for tests")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_test_id("prompt")).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("sign-out")).to_be_visible()
    assert "grace@example.com" not in page.content()
