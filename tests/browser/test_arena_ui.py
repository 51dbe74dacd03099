"""The arena page's behaviour in a real Chromium against the real stack: layout with long model
output, what happens to a prompt the server refuses, controls after a failed side, streaming that
leaves the reader alone, and the smaller things (focus, labels, mobile layout, favicon)."""

from types import SimpleNamespace

import pytest
import redis
from django.conf import settings
from playwright.sync_api import expect

from arena.models import Battle, ChatModel, Reply, Turn, Vote
from devserver import DevServerConfig, serve_in_thread
from tests.helpers import process_group_stop, slow_models_serving, wait_until, web_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

MOBILE = {"width": 390, "height": 844}


def send(page, text: str) -> None:
    page.get_by_test_id("prompt").fill(text)
    page.get_by_test_id("send").click()


def wait_both_ended(page, status: str = "done", timeout: int = 20_000) -> None:
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"reply-{side}").locator(f".msg.bot.{status}")).to_have_count(1, timeout=timeout)


def page_width(page) -> dict:
    return page.evaluate("() => ({scroll: document.documentElement.scrollWidth, view: document.documentElement.clientWidth})")


@pytest.fixture(scope="module")
def odd_servers():
    """A model server whose every reply fails after two tokens, and one slow to its first token."""
    faulty = DevServerConfig(model_id="faulty-model", time_to_first_token=0.05, tokens_per_second=150,
                             fault="error-mid-stream", fault_after_tokens=2)
    slow_start = DevServerConfig(model_id="slow-start", time_to_first_token=2.5, tokens_per_second=150)
    with serve_in_thread(faulty) as faulty_url, serve_in_thread(slow_start) as slow_start_url:
        yield SimpleNamespace(faulty=faulty_url, slow_start=slow_start_url)


# --- HIGH: long lines ---------------------------------------------------------------------------


def test_a_long_line_scrolls_inside_its_code_block_and_the_page_keeps_its_width(page, live_stack, chat_models):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(live_stack.base_url + "/")
    long_code = "x" * 300
    long_word = "y" * 300
    send(page, f"[[devserver:echo]]\n\n```\n{long_code}\n```\n\nA word: {long_word} and more.")
    wait_both_ended(page)
    for side in ("a", "b"):
        assert long_code in page.get_by_test_id(f"reply-{side}").locator("pre").inner_text()

    for viewport in ({"width": 1280, "height": 800}, MOBILE):
        page.set_viewport_size(viewport)
        width = page_width(page)
        assert width["scroll"] <= width["view"], f"the page is wider than the window at {viewport}: {width}"
        for side in ("a", "b"):
            box = page.get_by_test_id(f"reply-{side}").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (viewport, side, box)
            pre = page.get_by_test_id(f"reply-{side}").locator("pre")
            # The code block scrolls on its own; the long word wraps within the column.
            assert pre.evaluate("(el) => el.scrollWidth > el.clientWidth"), "the long line should scroll inside its block"
            assert pre.evaluate("(el) => getComputedStyle(el).overflowX") == "auto"
            paragraph = page.get_by_test_id(f"reply-{side}").locator("p", has_text="A word:")
            assert paragraph.evaluate("(el) => el.scrollWidth <= el.clientWidth"), "the long word should wrap"


# --- HIGH: a refused prompt stays in the box ---------------------------------------------------


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


# --- HIGH: a new line on a phone -----------------------------------------------------------------


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


# --- MEDIUM: the turn limit ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_turn_site(celery_worker_process, live_logs):
    """The site served with ARENA_MAX_TURNS=2 (a web process of its own; the shared worker)."""
    web, base_url = web_start(live_logs, name="web-two-turns", extra_env={"ARENA_MAX_TURNS": "2"})
    yield base_url
    process_group_stop(web)


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
    expect(page.get_by_test_id("reply-a").locator(".msg.user")).to_have_text(["A third question"])  # the new battle alone
    assert Battle.objects.count() == 2
    wait_both_ended(page)


# --- MEDIUM: Send after a failed side -----------------------------------------------------------


def test_send_is_off_while_a_side_has_failed_and_says_to_retry_it(page, live_stack, devserver_urls, odd_servers):
    ChatModel.objects.create(name="zephyr-7b-beta", endpoint_url=devserver_urls[0], template="zephyr", timeout_seconds=20)
    ChatModel.objects.create(name="faulty-model", endpoint_url=odd_servers.faulty, template="chatml", timeout_seconds=20)
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


def test_the_waiting_text_shows_until_the_first_token(page, live_stack, devserver_urls, odd_servers):
    ChatModel.objects.create(name="zephyr-7b-beta", endpoint_url=devserver_urls[0], template="zephyr", timeout_seconds=20)
    ChatModel.objects.create(name="slow-start", endpoint_url=odd_servers.slow_start, template="chatml", timeout_seconds=20)
    page.goto(live_stack.base_url + "/")
    send(page, "Tell me about the history of tea")
    # The slow side has started (the worker reached its server) but has no token yet.
    expect(page.locator(".msg.bot.streaming").filter(has_text="waiting for the model")).to_have_count(1, timeout=5_000)
    wait_both_ended(page)
    expect(page.locator(".msg.bot", has_text="waiting for the model")).to_have_count(0)


# --- MEDIUM: streaming leaves the reader alone --------------------------------------------------


def test_a_streaming_reply_leaves_the_readers_scroll_and_selection_alone(page, live_stack):
    lines = [f"Line {i} of a long answer that keeps on coming." for i in range(1, 61)]
    prompt = "[[devserver:echo]]\n\n" + "\n\n".join(lines)
    with slow_models_serving(tokens_per_second=60, max_new_tokens=400):
        page.set_viewport_size({"width": 1280, "height": 720})
        page.goto(live_stack.base_url + "/")
        send(page, prompt)
        panel_a = page.get_by_test_id("reply-a")
        panel_b = page.get_by_test_id("reply-b")
        expect(panel_a.locator(".msg.bot.streaming")).to_contain_text("Line 3 ", timeout=20_000)
        expect(panel_b.locator(".msg.bot.streaming")).to_contain_text("Line 2 ", timeout=20_000)

        # The reader scrolls column A up to the prompt and selects the start of B's reply.
        panel_a.evaluate("(el) => { el.scrollTop = 0; el.querySelector('.msg.user').dataset.seen = 'yes'; }")
        assert panel_a.evaluate("(el) => el.scrollHeight > el.clientHeight + 200"), "the column should overflow"
        selected = page.evaluate("""() => {
            const p = document.querySelector('[data-testid="reply-b"] .msg.bot p');
            const range = document.createRange();
            range.setStart(p.firstChild, 0);
            range.setEnd(p.firstChild, 6);
            getSelection().removeAllRanges();
            getSelection().addRange(range);
            return getSelection().toString();
        }""")
        assert selected == "Line 1"

        # More of both replies arrives...
        expect(panel_a.locator(".msg.bot")).to_contain_text("Line 12 ", timeout=20_000)
        expect(panel_b.locator(".msg.bot")).to_contain_text("Line 12 ", timeout=20_000)
        # ...without moving the reader or undoing the selection or rebuilding the prompt.
        assert panel_a.evaluate("(el) => el.scrollTop") <= 1
        assert page.evaluate("() => getSelection().toString()") == "Line 1"
        assert panel_a.evaluate("(el) => el.querySelector('.msg.user').dataset.seen") == "yes"
        # Screen readers aren't read every token: the streaming text is in no live region.
        assert page.evaluate("""() => [...document.querySelectorAll('[aria-live]')]
            .filter((el) => el.closest('.sides') || el.querySelector('.msg')).length""") == 0

        # A reader at the bottom keeps following the reply.
        panel_a.evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
        expect(panel_a.locator(".msg.bot")).to_contain_text("Line 20 ", timeout=20_000)
        page.wait_for_function(
            """() => { const el = document.querySelector('[data-testid="reply-a"]');
                       return el.scrollHeight - el.scrollTop - el.clientHeight <= 40; }""",
            timeout=2_000,
        )
        wait_both_ended(page, timeout=30_000)
        expect(page.get_by_test_id("announcer")).to_contain_text("has finished")


# --- LOW: voting, accessibility, mobile, favicon ------------------------------------------------


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
        box.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", isComposing: true, bubbles: true, cancelable: true}));
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
        const ratio = (x, y) => { const [a, b] = [lum(x), lum(y)].sort((p, q) => q - p); return (a + 0.05) / (b + 0.05); };
        const page = getComputedStyle(document.body).backgroundColor;
        return ['prompt', 'new-round'].map((id) =>
            ratio(getComputedStyle(document.querySelector(`[data-testid="${id}"]`)).borderTopColor, page));
    }""")
    assert min(ratios) >= 3, ratios


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


# --- MEDIUM: two tabs of one battle -------------------------------------------------------------

EVENT_TYPES = ("started", "delta", "done", "failed")


def user_prompts(page, side: str = "a"):
    return page.get_by_test_id(f"reply-{side}").locator(".msg.user")


def sent_frames(page, action: str) -> list:
    frames = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda p: frames.append(p) if f'"action":"{action}"' in p else None))
    return frames


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


def test_a_tab_that_missed_another_tabs_turn_cannot_vote_on_old_replies_nor_get_stuck(chromium, live_stack, chat_models):
    import json

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


# --- MEDIUM: focus after Send, Regenerate and Retry ---------------------------------------------


def test_focus_stays_on_the_page_after_send_retry_and_regenerate(page, live_stack, devserver_urls, odd_servers):
    ChatModel.objects.create(name="zephyr-7b-beta", endpoint_url=devserver_urls[0], template="zephyr", timeout_seconds=20)
    ChatModel.objects.create(name="faulty-model", endpoint_url=odd_servers.faulty, template="chatml", timeout_seconds=20)
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
    wait_until(lambda: Reply.objects.filter(attempt=2, status__in=("done", "failed")).count() == 2, 20, "the regenerate to end")
    expect(failed).to_have_count(1, timeout=20_000)
    expect(page.get_by_test_id("regenerate")).to_be_enabled()


# --- MEDIUM: wide tables --------------------------------------------------------------------------


def test_a_wide_table_scrolls_inside_its_column_without_breaking_words(page, live_stack, chat_models):
    columns = 14
    table = "\n".join([
        "| " + " | ".join(f"Column{i}" for i in range(columns)) + " |",
        "|" + "---|" * columns,
        *("| " + " | ".join(f"value{r}x{c}" for c in range(columns)) + " |" for r in range(3)),
    ])
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(live_stack.base_url + "/")
    send(page, f"[[devserver:echo]]\n\nA table:\n\n{table}\n\nAfter the table.")
    wait_both_ended(page)
    for viewport in ({"width": 1280, "height": 800}, MOBILE):
        page.set_viewport_size(viewport)
        width = page_width(page)
        assert width["scroll"] <= width["view"], f"the page is wider than the window at {viewport}: {width}"
        for side in ("a", "b"):
            panel = page.get_by_test_id(f"reply-{side}")
            found = panel.locator("table").evaluate("""(table) => {
                const lines = (cell) => { const r = document.createRange(); r.selectNodeContents(cell); return r.getClientRects().length; };
                const cells = [...table.querySelectorAll("th, td")];
                const box = table.getBoundingClientRect(), column = table.closest(".transcript").getBoundingClientRect();
                return {
                    cells: cells.length,
                    broken: cells.filter((c) => lines(c) !== 1).map((c) => c.textContent),
                    scrolls: table.scrollWidth > table.clientWidth,
                    overflow: getComputedStyle(table).overflowX,
                    inside: box.left >= column.left - 1 && box.right <= column.right + 1,
                };
            }""")
            assert found["cells"] == columns * 4, found
            assert found["broken"] == [], (viewport, side, found)
            assert found["scrolls"] and found["overflow"] == "auto", (viewport, side, found)
            assert found["inside"], (viewport, side, found)


# --- MEDIUM: Regenerate pressed twice ---------------------------------------------------------------


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


# --- MEDIUM: a failure no retry can fix -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_context_servers():
    """Two model servers that take at most 64 tokens, prompt and reply together."""
    configs = [
        DevServerConfig(model_id=name, time_to_first_token=0, tokens_per_second=0, max_input_tokens=48, max_total_tokens=64)
        for name in ("small-1", "small-2")
    ]
    with serve_in_thread(configs[0]) as url_1, serve_in_thread(configs[1]) as url_2:
        yield url_1, url_2


def test_a_prompt_too_long_for_the_models_offers_no_retry_and_says_to_start_again(page, live_stack, small_context_servers):
    for i, url in enumerate(small_context_servers, 1):
        ChatModel.objects.create(name=f"small-{i}", endpoint_url=url, template="zephyr", parameters={"max_new_tokens": 16})
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
            "This conversation is too long for both models, so retrying won't help. Start a new round with a shorter prompt.")
        expect(page.get_by_test_id("regenerate")).to_be_disabled()
        expect(page.get_by_test_id("send")).to_be_disabled()
    page.get_by_test_id("new-round").click()
    expect(hint).to_be_hidden()
    expect(page.get_by_test_id("send")).to_be_enabled()

    # Models set to write more than their servers accept at all: an admin's fix, not a retry.
    ChatModel.objects.update(parameters={"max_new_tokens": 100})
    send(page, "Hello")
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"error-{side}")).to_contain_text("an admin must lower its max_new_tokens", timeout=20_000)
        expect(page.get_by_test_id(f"retry-{side}")).to_be_hidden()
    expect(hint).to_have_text(
        "Retrying won't help: neither model can answer until an admin changes its settings. Start a new round.")
    expect(page.get_by_test_id("regenerate")).to_be_disabled()


# --- LOW: the cursor, the Send row, right-to-left text, quotes, the icon everywhere ------------------


def test_the_cursor_follows_the_last_character_and_the_send_row_stays_put(page, live_stack):
    words = " ".join(f"word{i}" for i in range(400))
    with slow_models_serving(tokens_per_second=40, max_new_tokens=300):
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(live_stack.base_url + "/")
        expect(page.get_by_test_id("send")).to_be_enabled()
        # Where the Send row sits under the prompt box (the columns above grow as replies come).
        row = lambda: page.get_by_test_id("send").bounding_box()["y"] - page.get_by_test_id("prompt").bounding_box()["y"]  # noqa: E731
        below_box = row()
        send(page, f"[[devserver:echo]]\n\nA first paragraph.\n\n{words}")
        expect(page.get_by_test_id("send-hint")).to_be_visible()
        streaming = page.get_by_test_id("reply-a").locator(".msg.bot.streaming")
        expect(streaming).to_contain_text("word3 ", timeout=20_000)
        assert row() == below_box, "the hint moved the Send row"
        for _ in range(3):
            place = streaming.evaluate("""(bot) => {
                const cursors = bot.querySelectorAll(".cursor");
                if (cursors.length !== 1) return {count: cursors.length};
                const cursor = cursors[0], before = cursor.previousSibling;
                const r = document.createRange();
                r.setStart(before, before.length - 1);
                r.setEnd(before, before.length);
                const last = [...r.getClientRects()].pop(), at = cursor.getBoundingClientRect();
                return {count: 1, parent: cursor.parentElement.tagName, lastBlock: cursor.parentElement === bot.querySelector(".md").lastElementChild,
                        sameLine: Math.abs(at.top - last.top) < 3, after: at.left >= last.right - 1};
            }""")
            assert place == {"count": 1, "parent": "P", "lastBlock": True, "sameLine": True, "after": True}, place
            page.wait_for_timeout(150)
        wait_both_ended(page, timeout=30_000)
        expect(page.locator(".cursor")).to_have_count(0)
        expect(page.get_by_test_id("send-hint")).to_be_hidden()
        assert row() == below_box


def test_right_to_left_text_and_quotes_read_as_they_should(page, live_stack, chat_models):
    page.goto(live_stack.base_url + "/")
    box = page.get_by_test_id("prompt")
    expect(box).to_have_attribute("dir", "auto")
    box.fill("مرحبا بالعالم، كيف حالك اليوم؟\n\n> שלום עולם\n\n[[devserver:echo]]")
    assert box.evaluate("(el) => getComputedStyle(el).direction") == "rtl"
    page.get_by_test_id("send").click()
    wait_both_ended(page)
    for side in ("a", "b"):
        panel = page.get_by_test_id(f"reply-{side}")
        assert panel.locator(".msg.user").evaluate("(el) => [el.dir, getComputedStyle(el).direction]") == ["auto", "rtl"]
        reply = panel.locator(".msg.bot .md")
        assert reply.evaluate("(el) => [el.dir, getComputedStyle(el).direction]") == ["auto", "rtl"]
        quote = reply.locator("blockquote")
        style = quote.evaluate("""(el) => { const s = getComputedStyle(el);
            return {border: parseFloat(s.borderInlineStartWidth), padding: parseFloat(s.paddingInlineStart)}; }""")
        assert style["border"] >= 2 and style["padding"] > 0, style


def test_every_page_has_the_icon_even_the_admin(page, live_stack):
    answer = page.request.get(live_stack.base_url + "/favicon.ico")
    assert answer.status == 200 and "svg" in answer.headers["content-type"], answer.status
    failed = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(live_stack.base_url + "/admin/login/")
    page.wait_for_load_state("load")
    assert failed == [], failed
