"""The prompt box: a prompt the server refuses stays in it (rate limit, no models, models back),
and Enter sends or makes a new line depending on the device."""

import pytest
import redis
from django.conf import settings
from playwright.sync_api import expect

from arena.models import Battle, ChatModel, Turn
from tests.browser.helpers import MOBILE, send, wait_both_ended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_a_prompt_the_server_refuses_stays_in_the_box(chromium, live_stack, chat_models):
    context = chromium.new_context(viewport=MOBILE)
    page = context.new_page()
    page.clock.install()  # time runs as usual; fast-forwarded below
    page.goto(live_stack.base_url + "/")
    box = page.get_by_test_id("prompt")
    expect(page.get_by_test_id("send")).to_be_enabled()

    # Accepted: the box empties once the battle has started.
    send(page, "A first question")
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_text("A first question")
    expect(box).to_have_value("")
    wait_both_ended(page)
    page.get_by_test_id("new-round").click()

    # Refused by the rate limit: the text stays, the reason shows by the prompt box, in view.
    limits = redis.Redis.from_url(settings.REDIS_URL)
    for key in limits.scan_iter("arena:rl:battle:*"):
        prefix, window = key.decode().rsplit(":", 1)
        for w in (int(window), int(window) + 1):  # the next minute too, should the window turn now
            limits.set(f"{prefix}:{w}", 1000, ex=120)
    typed = "A careful question I took a while to type"
    send(page, typed)
    error = page.get_by_test_id("composer-error")
    expect(box).to_have_value(typed)
    expect(error).to_contain_text("too quickly")  # the server has answered...
    expect(error).to_be_in_viewport()
    expect(box).to_have_value(typed)  # ...and the text is still there
    expect(page.get_by_test_id("send")).to_be_enabled()  # nothing stops a later try
    for key in limits.scan_iter("arena:rl:battle:*"):
        limits.delete(key)

    # Refused because no models are left: one notice, no false claim, Send off; the text stays.
    ChatModel.objects.update(healthy=False, last_error="/health answered HTTP 503")
    page.get_by_test_id("send").click()
    notice = page.get_by_test_id("no-models")
    expect(notice).to_be_visible()
    expect(notice).to_be_in_viewport()
    expect(box).to_have_value(typed)
    expect(page.get_by_test_id("send")).to_be_disabled()
    expect(page.get_by_test_id("status")).to_be_hidden()
    expect(error).to_be_hidden()
    assert "notified" not in notice.inner_text()
    assert Battle.objects.count() == 1

    # Models back: the page notices by itself, asking a small JSON endpoint (not reloading the
    # page), and the same text can be sent.
    asked = []
    page.on("request", lambda r: asked.append((r.url.removeprefix(live_stack.base_url), r.resource_type)))
    ChatModel.objects.update(healthy=True, last_error="")
    page.clock.fast_forward("00:20")
    expect(notice).to_be_hidden()
    assert ("/api/models/status", "fetch") in asked, asked
    assert not [url for url, kind in asked if url == "/" or kind == "document"], asked
    expect(page.get_by_test_id("send")).to_be_enabled()
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_text(typed)
    expect(box).to_have_value("")
    wait_both_ended(page)
    context.close()


def test_on_a_touch_screen_enter_is_a_new_line_and_send_sends(chromium, live_stack, chat_models):
    context = chromium.new_context(viewport=MOBILE, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(live_stack.base_url + "/")
    box = page.get_by_test_id("prompt")
    expect(page.get_by_test_id("send")).to_be_enabled()
    expect(box).to_have_attribute("placeholder", "Type a prompt, then tap Send")
    box.tap()
    page.keyboard.type("A shopping list:")
    page.keyboard.press("Enter")
    page.keyboard.type("- tea")
    page.keyboard.press("Enter")
    page.keyboard.type("- milk")
    expect(box).to_have_value("A shopping list:\n- tea\n- milk")
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_count(0)
    assert Battle.objects.count() == 0

    page.get_by_test_id("send").tap()
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_text("A shopping list:\n- tea\n- milk")
    expect(box).to_have_value("")
    assert Turn.objects.get().prompt == "A shopping list:\n- tea\n- milk"
    wait_both_ended(page)
    context.close()


def test_with_a_keyboard_enter_sends_and_shift_enter_is_a_new_line(page, live_stack, chat_models):
    page.goto(live_stack.base_url + "/")
    box = page.get_by_test_id("prompt")
    expect(page.get_by_test_id("send")).to_be_enabled()
    expect(box).to_have_attribute("placeholder", "Type a prompt and press Enter (Shift+Enter for a new line)")
    box.click()
    page.keyboard.type("First line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(box).to_have_value("First line\nsecond line")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_text("First line\nsecond line")
    expect(box).to_have_value("")
    wait_both_ended(page)
