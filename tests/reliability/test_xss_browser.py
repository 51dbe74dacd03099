"""Untrusted text in a real Chromium: markup from a model (or from the user) never runs and never
becomes elements that could; and the no-models banner is really visible when it should be."""

import pytest
from playwright.sync_api import expect

from arena.models import ChatModel, Reply
from tests.browser.helpers import send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    "[click](javascript:window.__xss=3)",
    '<a href="javascript:window.__xss=4">x</a>',
    "&lt;b&gt;entity&lt;/b&gt;",
    '<iframe src="javascript:alert(1)">',
    "<svg onload=alert(5)>",
    # Raw HTML is shown as text, so an unclosed tag above can't swallow what follows.
    "the end of the reply",
]
# Each payload its own paragraph (markdown block).
ECHOED = "\n\n".join(PAYLOADS)

INSPECT_PANEL = """(panel) => ({
    dangerous: panel.querySelectorAll("script, img, iframe, svg, object, embed, math, style, form").length,
    handlers: [...panel.querySelectorAll("*")].flatMap(
        (el) => [...el.attributes].filter((a) => a.name.toLowerCase().startsWith("on"))
            .map((a) => el.tagName + " " + a.name)),
    hrefs: [...panel.querySelectorAll("a[href]")].map((a) => a.getAttribute("href")),
    bold: [...panel.querySelectorAll("b, strong")].map((el) => el.textContent),
})"""


def test_markup_in_replies_and_prompts_is_shown_as_text(page, live_stack, chat_models):
    page.goto(live_stack.base_url + "/")
    prompt = "[[devserver:echo]]\n\n" + ECHOED
    send(page, prompt)
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(1, timeout=20_000)
    # The models really said all of it (the dev server echoes the prompt).
    assert sorted(Reply.objects.values_list("text", flat=True)) == [ECHOED, ECHOED]
    page.wait_for_timeout(300)  # time for anything that would fire (onerror, onload) to fire

    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []
    for side in ("a", "b"):
        panel = page.get_by_test_id(f"reply-{side}")
        found = panel.evaluate(INSPECT_PANEL)
        assert found["dangerous"] == 0, found
        assert found["handlers"] == [], found
        assert all(not (h or "").strip().lower().startswith("javascript:") for h in found["hrefs"]), found
        assert "entity" not in found["bold"], "the escaped entity became markup"
        bot = panel.locator(".msg.bot")
        assert "<b>entity</b>" in bot.inner_text()  # shown literally, as text
        assert "<script>window.__xss=1</script>" in bot.inner_text()  # raw HTML shown as text
        assert "the end of the reply" in bot.inner_text()

        # The user's own prompt: verbatim text, no elements at all.
        user = panel.locator(".msg.user")
        assert user.evaluate("(el) => el.children.length") == 0
        assert user.evaluate("(el) => el.textContent") == prompt
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []


def test_the_no_models_banner_shows_when_no_pair_can_be_drawn(page, live_stack, chat_models):
    page.goto(live_stack.base_url + "/")
    expect(page.get_by_test_id("no-models")).to_be_hidden()

    ChatModel.objects.update(healthy=False, last_error="/health answered HTTP 503")
    page.goto(live_stack.base_url + "/")
    expect(page.get_by_test_id("no-models")).to_be_visible()
    expect(page.get_by_test_id("no-models")).to_contain_text("No models are available right now")
    # One notice, and no prompt to send into nothing (tests/browser/test_prompt_box.py: the refusal).
    page.get_by_test_id("prompt").fill("Anyone there?")
    expect(page.get_by_test_id("send")).to_be_disabled()
    expect(page.get_by_test_id("status")).to_be_hidden()
    expect(page.get_by_test_id("prompt")).to_have_value("Anyone there?")
