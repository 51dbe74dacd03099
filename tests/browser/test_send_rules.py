"""When Send is off and what the hint says: at the turn limit, and while a side has failed."""

import pytest
from playwright.sync_api import expect

from arena.models import Battle, Turn
from tests.browser.helpers import send, wait_both_ended, zephyr_against
from tests.helpers import process_group_stop, web_start, worker_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture(scope="module")
def two_turn_site(django_db_setup, live_logs):
    """The site served with ARENA_MAX_TURNS=2: a web process and a worker of its own, on a queue of
    their own (the worker tells the page what the battle accepts after each reply, by that setting)."""
    two_turns = {"ARENA_MAX_TURNS": "2", "CELERY_QUEUE": "two-turns"}
    worker = worker_start(live_logs, name="worker-two-turns", extra_env=two_turns)
    web, base_url = web_start(live_logs, name="web-two-turns", extra_env=two_turns)
    yield base_url
    process_group_stop(web)
    process_group_stop(worker)


def test_send_is_off_with_a_hint_once_the_battle_has_its_maximum_turns(page, two_turn_site, chat_models):
    page.goto(two_turn_site + "/")
    expect(page.get_by_test_id("composer")).to_have_attribute("data-max-turns", "2")
    hint = page.get_by_test_id("send-hint")
    send(page, "A first question")
    wait_both_ended(page)
    expect(page.get_by_test_id("send")).to_be_enabled()  # one turn of two: a follow-up is fine
    expect(hint).to_be_hidden()
    send(page, "A follow-up")
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(2, timeout=20_000)

    # Two turns of two: the page says so before anyone types a third prompt into a server error.
    expect(page.get_by_test_id("send")).to_be_disabled()
    expect(hint).to_be_visible()
    expect(hint).to_have_text("This battle has reached its 2 turns; vote, or start a new round.")
    box = page.get_by_test_id("prompt")
    box.fill("A third question")
    box.press("Enter")
    expect(box).to_have_value("A third question")
    expect(page.get_by_test_id("composer-error")).to_be_hidden()
    assert Turn.objects.count() == 2
    # Voting is still open, and after it the same text starts a new battle.
    expect(page.get_by_test_id("vote-tie")).to_be_enabled()
    page.get_by_test_id("vote-tie").click()
    expect(page.get_by_test_id("vote-result")).to_contain_text("You voted: a tie", timeout=10_000)
    expect(hint).to_be_hidden()
    expect(page.get_by_test_id("send")).to_be_enabled()
    page.get_by_test_id("send").click()
    # The new battle alone.
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_text(["A third question"])
    assert Battle.objects.count() == 2
    wait_both_ended(page)


def test_send_is_off_while_a_side_has_failed_and_says_to_retry_it(page, live_stack, devserver_urls, odd_servers):
    zephyr_against(devserver_urls[0], "faulty-model", odd_servers.faulty)
    page.goto(live_stack.base_url + "/")
    send(page, "Tell me about the history of tea")
    failed = page.locator('[data-testid^="error-"]:visible')
    expect(failed).to_have_count(1, timeout=20_000)
    bad = failed.get_attribute("data-testid").removeprefix("error-")
    good = "b" if bad == "a" else "a"
    expect(page.get_by_test_id(f"reply-{good}").locator(".msg.bot.done")).to_have_count(1, timeout=20_000)
    expect(failed).to_contain_text("out of memory")

    # The server refuses a follow-up now ("Wait until both replies have finished"): so does the page.
    expect(page.get_by_test_id("send")).to_be_disabled()
    hint = page.get_by_test_id("send-hint")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text(f"Model {bad.upper()}")
    expect(hint).to_contain_text("Retry")
    # Enter in the prompt box doesn't get around it.
    box = page.get_by_test_id("prompt")
    box.fill("A follow-up")
    box.press("Enter")
    expect(box).to_have_value("A follow-up")
    expect(page.get_by_test_id("composer-error")).to_be_hidden()
    # No vote until both are done; a retry or a regenerate is what the server accepts.
    for outcome in ("a", "b", "tie", "bothbad"):
        expect(page.get_by_test_id(f"vote-{outcome}")).to_be_disabled()
    expect(page.get_by_test_id(f"retry-{bad}")).to_be_enabled()
    expect(page.get_by_test_id("regenerate")).to_be_enabled()
