"""Streaming replies: the waiting text, the reader's scroll and selection left alone, the cursor
after the last character and the Send row staying put."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import send, wait_both_ended, zephyr_against
from tests.helpers import slow_models_serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_the_waiting_text_shows_until_the_first_token(page, live_stack, devserver_urls, odd_servers):
    zephyr_against(devserver_urls[0], "slow-start", odd_servers.slow_start)
    page.goto(live_stack.base_url + "/")
    send(page, "Tell me about the history of tea")
    # The slow side has started (the worker reached its server) but has no token yet.
    expect(page.locator(".msg.bot.streaming").filter(has_text="waiting for the model")).to_have_count(1, timeout=5_000)
    wait_both_ended(page)
    expect(page.locator(".msg.bot", has_text="waiting for the model")).to_have_count(0)


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


def test_the_cursor_follows_the_last_character_and_the_send_row_stays_put(page, live_stack):
    words = " ".join(f"word{i}" for i in range(400))
    with slow_models_serving(tokens_per_second=40, max_new_tokens=300):
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(live_stack.base_url + "/")
        expect(page.get_by_test_id("send")).to_be_enabled()
        # Where the Send row sits under the prompt box (the columns above grow as replies come).
        def row():
            return page.get_by_test_id("send").bounding_box()["y"] - page.get_by_test_id("prompt").bounding_box()["y"]

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
                return {count: 1, parent: cursor.parentElement.tagName,
                        lastBlock: cursor.parentElement === bot.querySelector(".md").lastElementChild,
                        sameLine: Math.abs(at.top - last.top) < 3, after: at.left >= last.right - 1};
            }""")
            assert place == {"count": 1, "parent": "P", "lastBlock": True, "sameLine": True, "after": True}, place
            page.wait_for_timeout(150)
        wait_both_ended(page, timeout=30_000)
        expect(page.locator(".cursor")).to_have_count(0)
        expect(page.get_by_test_id("send-hint")).to_be_hidden()
        assert row() == below_box
