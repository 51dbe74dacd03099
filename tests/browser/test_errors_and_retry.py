"""Failed replies: the failure without an empty bubble, Regenerate pressed twice, and failures
no retry can fix."""

import pytest
from playwright.sync_api import expect

from arena.models import ChatModel, Turn
from devserver import DevServerConfig, serve_in_thread
from tests.browser.helpers import send, sent_frames, wait_both_ended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_a_side_that_fails_before_any_text_shows_the_failure_without_an_empty_bubble(page, live_stack, chat_models):
    page.goto(live_stack.base_url + "/")
    send(page, "[[devserver:error-mid-stream:0]] Hello")
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"error-{side}")).to_be_visible(timeout=20_000)
        expect(page.get_by_test_id(f"error-{side}")).to_contain_text("out of memory")
        expect(page.get_by_test_id(f"reply-{side}").locator(".msg.bot:visible")).to_have_count(0)
    expect(page.get_by_test_id("send")).to_be_disabled()
    expect(page.get_by_test_id("send-hint")).to_contain_text("Both replies failed")
    expect(page.get_by_test_id("regenerate")).to_be_enabled()


def test_regenerate_pressed_twice_sends_once_and_an_out_of_date_refusal_goes_away(chromium, live_stack, chat_models):
    context = chromium.new_context()
    page = context.new_page()
    regenerates = sent_frames(page, "regenerate")
    page.goto(live_stack.base_url + "/")
    send(page, "Which is better, tea or coffee?")
    wait_both_ended(page)
    page.get_by_test_id("regenerate").dblclick()
    page.wait_for_function("() => document.querySelectorAll('.msg.bot.done').length < 2", timeout=10_000)
    wait_both_ended(page)
    assert len(regenerates) == 1, regenerates
    assert Turn.objects.get().attempt == 1
    expect(page.get_by_test_id("composer-error")).to_be_hidden()

    # Should two frames go out anyway (another tab's Regenerate, say), the refusal of the second
    # says to wait, and goes once both replies have finished.
    twice = context.new_page()

    def route(ws):
        server = ws.connect_to_server()

        def to_server(message):
            for _ in range(2 if '"action":"regenerate"' in message else 1):
                server.send(message)

        ws.on_message(to_server)

    twice.route_web_socket("**/ws/arena/", route)
    twice.goto(live_stack.base_url + "/")
    send(twice, "Which is better, rain or snow?")
    wait_both_ended(twice)
    twice.get_by_test_id("regenerate").click()
    error = twice.get_by_test_id("composer-error")
    expect(error).to_have_text("Wait until both replies have finished.")
    wait_both_ended(twice)
    expect(error).to_be_hidden()
    assert list(Turn.objects.filter(prompt__contains="rain").values_list("attempt", flat=True)) == [1]
    context.close()


@pytest.fixture(scope="module")
def small_context_servers():
    """Two model servers that take at most 64 tokens, prompt and reply together."""
    configs = [
        DevServerConfig(model_id=name, time_to_first_token=0, tokens_per_second=0, max_input_tokens=48,
                        max_total_tokens=64)
        for name in ("small-1", "small-2")
    ]
    with serve_in_thread(configs[0]) as url_1, serve_in_thread(configs[1]) as url_2:
        yield url_1, url_2


def test_a_prompt_too_long_for_the_models_offers_no_retry_and_says_to_start_again(
    page, live_stack, small_context_servers
):
    for i, url in enumerate(small_context_servers, 1):
        ChatModel.objects.create(name=f"small-{i}", endpoint_url=url, template="zephyr",
                                 parameters={"max_new_tokens": 16})
    page.goto(live_stack.base_url + "/")
    send(page, "tea " * 100)
    hint = page.get_by_test_id("send-hint")
    for reload in (False, True):  # live, then from the snapshot a reload gets
        if reload:
            page.reload()
        for side in ("a", "b"):
            expect(page.get_by_test_id(f"error-{side}")).to_be_visible(timeout=20_000)
            expect(page.get_by_test_id(f"error-{side}")).to_contain_text("This conversation is too long for this model")
            expect(page.get_by_test_id(f"retry-{side}")).to_be_hidden()
        expect(hint).to_have_text(
            "This conversation is too long for both models, so retrying won't help. "
            "Start a new round with a shorter prompt.")
        expect(page.get_by_test_id("regenerate")).to_be_disabled()
        expect(page.get_by_test_id("send")).to_be_disabled()
    page.get_by_test_id("new-round").click()
    expect(hint).to_be_hidden()
    expect(page.get_by_test_id("send")).to_be_enabled()

    # Models set to write more than their servers accept at all: an admin's fix, not a retry.
    ChatModel.objects.update(parameters={"max_new_tokens": 100})
    send(page, "Hello")
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"error-{side}")).to_contain_text("an admin must lower its max_new_tokens",
                                                                     timeout=20_000)
        expect(page.get_by_test_id(f"retry-{side}")).to_be_hidden()
    expect(hint).to_have_text(
        "Retrying won't help: neither model can answer until an admin changes its settings. Start a new round.")
    expect(page.get_by_test_id("regenerate")).to_be_disabled()
