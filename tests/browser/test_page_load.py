"""Every page on arrival: the prompt box in view on a phone, no console errors, an icon
everywhere (the admin too)."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import MOBILE, page_width

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_on_a_phone_the_prompt_box_is_in_view_and_the_leaderboard_fits(chromium, live_stack, chat_models):
    context = chromium.new_context(viewport=MOBILE)
    page = context.new_page()
    page.goto(live_stack.base_url + "/")
    expect(page.get_by_test_id("prompt")).to_be_in_viewport()
    expect(page.get_by_test_id("send")).to_be_in_viewport()
    assert page.get_by_test_id("send").bounding_box()["y"] + 40 <= MOBILE["height"]
    page.goto(live_stack.base_url + "/leaderboard/")
    width = page_width(page)
    assert width["scroll"] <= width["view"], width
    context.close()


def test_pages_load_without_console_errors_and_have_an_icon(page, live_stack, chat_models):
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    for path in ("/", "/leaderboard/"):
        page.goto(live_stack.base_url + path)
        page.wait_for_load_state("load")
        if path == "/":
            expect(page.get_by_test_id("send")).to_be_enabled()  # its socket is open
        icon = page.locator('link[rel="icon"]').get_attribute("href")
        answer = page.request.get(live_stack.base_url + icon)
        assert answer.status == 200 and "svg" in answer.headers["content-type"], (icon, answer.status)
    expect(page.get_by_test_id("leaderboard-empty")).to_be_visible()
    assert errors == [] and failed == [], (errors, failed)


def test_every_page_has_the_icon_even_the_admin(page, live_stack):
    answer = page.request.get(live_stack.base_url + "/favicon.ico")
    assert answer.status == 200 and "svg" in answer.headers["content-type"], answer.status
    failed = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(live_stack.base_url + "/admin/login/")
    page.wait_for_load_state("load")
    assert failed == [], failed
