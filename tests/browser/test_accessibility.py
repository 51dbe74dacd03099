"""Keyboard and screen-reader use: voting by keyboard, the labelled prompt box and an IME's
Enter, control contrast, and focus after Send, Retry and Regenerate."""

import pytest
from playwright.sync_api import expect

from arena.models import Reply, Vote
from tests.browser.helpers import send, zephyr_against
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_voting_by_keyboard_marks_the_choice_and_keeps_focus(page, live_stack, chat_models):
    page.goto(live_stack.base_url + "/")
    send(page, "Which is better, tea or coffee?")
    expect(page.get_by_test_id("vote-a")).to_be_enabled(timeout=20_000)
    page.get_by_test_id("vote-a").focus()
    page.keyboard.press("Enter")
    # A second vote button pressed at once does nothing: every vote button is off already.
    page.evaluate("() => document.querySelector('[data-testid=\"vote-b\"]').click()")
    result = page.get_by_test_id("vote-result")
    expect(result).to_contain_text("You voted: A is better", timeout=10_000)
    expect(result).to_be_focused()
    expect(page.get_by_test_id("vote-a")).to_have_attribute("aria-pressed", "true")
    for outcome in ("b", "tie", "bothbad"):
        expect(page.get_by_test_id(f"vote-{outcome}")).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_test_id("composer-error")).to_be_hidden()
    expect(page.get_by_test_id("status")).to_be_hidden()
    assert Vote.objects.get().outcome == "a"


def test_the_prompt_box_is_labelled_and_enter_while_composing_does_not_send(page, live_stack, chat_models):
    page.goto(live_stack.base_url + "/")
    expect(page.locator("h1")).to_have_count(1)
    box = page.get_by_label("Your prompt")
    expect(box).to_have_attribute("data-testid", "prompt")
    expect(page.get_by_test_id("send")).to_be_enabled()
    box.fill("日本語")
    sent = page.evaluate("""() => {
        const box = document.querySelector('[data-testid="prompt"]');
        box.dispatchEvent(new KeyboardEvent("keydown",
            {key: "Enter", isComposing: true, bubbles: true, cancelable: true}));
        return {value: box.value, sendDisabled: document.querySelector('[data-testid="send"]').disabled};
    }""")
    assert sent == {"value": "日本語", "sendDisabled": False}
    # Control borders stand out from the page (WCAG 1.4.11: at least 3:1).
    ratios = page.evaluate("""() => {
        const lum = (css) => {
            const [r, g, b] = css.match(/\\d+/g).slice(0, 3).map((v) => {
                v = v / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const ratio = (x, y) => {
            const [a, b] = [lum(x), lum(y)].sort((p, q) => q - p); return (a + 0.05) / (b + 0.05); };
        const page = getComputedStyle(document.body).backgroundColor;
        return ['prompt', 'new-round'].map((id) =>
            ratio(getComputedStyle(document.querySelector(`[data-testid="${id}"]`)).borderTopColor, page));
    }""")
    assert min(ratios) >= 3, ratios


def test_focus_stays_on_the_page_after_send_retry_and_regenerate(page, live_stack, devserver_urls, odd_servers):
    zephyr_against(devserver_urls[0], "faulty-model", odd_servers.faulty)
    page.goto(live_stack.base_url + "/")
    box = page.get_by_test_id("prompt")
    expect(page.get_by_test_id("send")).to_be_enabled()
    box.fill("Tell me about the history of tea")
    page.get_by_test_id("send").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_count(1)
    expect(box).to_be_focused()  # ready for the next prompt

    failed = page.locator('[data-testid^="error-"]:visible')
    expect(failed).to_have_count(1, timeout=20_000)
    bad = failed.get_attribute("data-testid").removeprefix("error-")
    good = "b" if bad == "a" else "a"
    expect(page.get_by_test_id(f"reply-{good}").locator(".msg.bot.done")).to_have_count(1, timeout=20_000)
    page.get_by_test_id(f"retry-{bad}").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id(f"reply-{bad}")).to_be_focused()  # the reply being written again
    wait_until(lambda: Reply.objects.filter(attempt=1, side=bad, status="failed").exists(), 20, "the retry to fail")
    expect(failed).to_have_count(1, timeout=20_000)  # it fails again (the server always does)
    expect(page.get_by_test_id("regenerate")).to_be_enabled()

    page.get_by_test_id("regenerate").focus()
    page.keyboard.press("Space")
    expect(page.get_by_test_id("reply-a")).to_be_focused()
    assert page.evaluate("() => document.activeElement !== document.body")
    wait_until(
        lambda: Reply.objects.filter(attempt=2, status__in=("done", "failed")).count() == 2, 20, "the regenerate to end"
    )
    expect(failed).to_have_count(1, timeout=20_000)
    expect(page.get_by_test_id("regenerate")).to_be_enabled()
