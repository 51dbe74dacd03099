"""Two tabs of one battle: the second follows turns and regenerates sent in the first, and one
that missed events can neither vote on old replies nor get stuck."""

import json

import pytest
from playwright.sync_api import expect

from arena.models import Battle, Reply, Vote
from tests.browser.helpers import send, sent_frames, wait_both_ended
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


EVENT_TYPES = ("started", "delta", "done", "failed")


def user_prompts(page, side: str = "a"):
    return page.get_by_test_id(f"reply-{side}").locator(".msg.user")


def wait_turns_done(page, turns: int) -> None:
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(turns, timeout=20_000)


def assert_same_replies(page, other) -> None:
    for side in ("a", "b"):
        bots = f'[data-testid="reply-{side}"] .msg.bot'
        texts = page.evaluate(f"() => [...document.querySelectorAll('{bots}')].map((el) => el.innerText)")
        assert texts == other.evaluate(f"() => [...document.querySelectorAll('{bots}')].map((el) => el.innerText)")


def pump_until(page, predicate, what: str, timeout: float = 20) -> None:
    """Wait for something Playwright's event handlers record (they run while the page is awaited)."""
    for _ in range(int(timeout * 10)):
        if predicate():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def duplicated_tab(context, base_url: str, battle_id):
    """A second tab with the first's sessionStorage, as the browser's "Duplicate tab" makes it."""
    tab = context.new_page()
    tab.add_init_script(f"sessionStorage.setItem('arena.battle', '{battle_id}')")
    return tab


def test_a_second_tab_of_the_battle_follows_turns_and_regenerates_sent_in_the_first(chromium, live_stack, chat_models):
    context = chromium.new_context()
    first = context.new_page()
    first.goto(live_stack.base_url + "/")
    send(first, "A first question")
    wait_both_ended(first)
    second = duplicated_tab(context, live_stack.base_url, Battle.objects.get().id)
    joins = sent_frames(second, "join")
    second.goto(live_stack.base_url + "/")
    expect(user_prompts(second)).to_have_text(["A first question"])
    expect(second.get_by_test_id("vote-a")).to_be_enabled()
    assert len(joins) == 1

    # A follow-up in the first tab shows in the second, which asks for one fresh snapshot (not
    # one per token) and can vote only once it shows the new replies.
    send(first, "A follow-up")
    expect(user_prompts(second)).to_have_text(["A first question", "A follow-up"], timeout=10_000)
    wait_turns_done(first, 2)
    wait_turns_done(second, 2)
    assert_same_replies(first, second)
    assert len(joins) == 2, joins
    expect(second.get_by_test_id("vote-a")).to_be_enabled()

    # A regenerate in the first tab: the second asks for the new attempt once, and shows it.
    first.get_by_test_id("regenerate").click()
    wait_until(lambda: Reply.objects.filter(attempt=1, status="done").count() == 2, 20, "the new attempt")
    pump_until(second, lambda: len(joins) == 3, "the second tab's fresh snapshot")
    wait_turns_done(first, 2)
    wait_turns_done(second, 2)
    assert_same_replies(first, second)
    assert len(joins) == 3, joins

    # The second tab's own follow-up: accepted, its box emptied, its controls back once answered.
    send(second, "A question from the second tab")
    expect(second.get_by_test_id("prompt")).to_have_value("")
    for side in ("a", "b"):
        expect(second.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(3, timeout=20_000)
    expect(second.get_by_test_id("send")).to_be_enabled()
    expect(second.get_by_test_id("regenerate")).to_be_enabled()
    expect(user_prompts(first)).to_have_text(["A first question", "A follow-up", "A question from the second tab"])
    context.close()


def test_a_tab_that_missed_another_tabs_turn_cannot_vote_on_old_replies_nor_get_stuck(
    chromium, live_stack, chat_models
):
    context = chromium.new_context()
    first = context.new_page()
    first.goto(live_stack.base_url + "/")
    send(first, "A first question")
    wait_both_ended(first)
    second = duplicated_tab(context, live_stack.base_url, Battle.objects.get().id)
    # The second tab misses every reply event while `deaf` (asleep, say), yet its socket stays up.
    deaf = {"on": False}

    def route(ws):
        server = ws.connect_to_server()
        server.on_message(lambda m: None if deaf["on"] and json.loads(m)["type"] in EVENT_TYPES else ws.send(m))

    second.route_web_socket("**/ws/arena/", route)
    second.goto(live_stack.base_url + "/")
    expect(user_prompts(second)).to_have_text(["A first question"])
    deaf["on"] = True
    send(first, "A follow-up")
    for side in ("a", "b"):
        expect(first.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(2, timeout=20_000)

    # Its vote is on replies it shows, not on the new turn: the server refuses it and sends the
    # battle as it is now.
    expect(second.get_by_test_id("vote-a")).to_be_enabled()
    second.get_by_test_id("vote-a").click()
    expect(user_prompts(second)).to_have_text(["A first question", "A follow-up"])
    expect(second.get_by_test_id("composer-error")).to_contain_text("changed in another tab")
    assert Vote.objects.count() == 0

    # Stale again, it sends a follow-up: the server makes it turn 3, not the turn 2 it expected;
    # the tab takes that as its answer all the same (no Send stuck off until a reload).
    send(first, "A third question")
    for side in ("a", "b"):
        expect(first.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(3, timeout=20_000)
    second.wait_for_timeout(500)  # the second tab's copies of those events pass (and are dropped)
    deaf["on"] = False
    expect(user_prompts(second)).to_have_count(2)
    send(second, "A question from the second tab")
    expect(second.get_by_test_id("prompt")).to_have_value("")
    expect(user_prompts(second)).to_have_text(
        ["A first question", "A follow-up", "A third question", "A question from the second tab"])
    for side in ("a", "b"):
        expect(second.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(4, timeout=20_000)
    expect(second.get_by_test_id("send")).to_be_enabled()
    expect(second.get_by_test_id("regenerate")).to_be_enabled()
    expect(second.get_by_test_id("composer-error")).to_be_hidden()
    second.get_by_test_id("vote-tie").click()
    expect(second.get_by_test_id("vote-result")).to_contain_text("You voted: a tie", timeout=10_000)
    context.close()
