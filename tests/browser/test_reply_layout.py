"""How replies are laid out: long lines, wide tables, right-to-left text and quotes stay inside
their column at desktop and phone widths."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import MOBILE, page_width, send, wait_both_ended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


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
            scrolls = pre.evaluate("(el) => el.scrollWidth > el.clientWidth")
            assert scrolls, "the long line should scroll inside its block"
            assert pre.evaluate("(el) => getComputedStyle(el).overflowX") == "auto"
            paragraph = page.get_by_test_id(f"reply-{side}").locator("p", has_text="A word:")
            assert paragraph.evaluate("(el) => el.scrollWidth <= el.clientWidth"), "the long word should wrap"


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
                const lines = (cell) => {
                    const r = document.createRange(); r.selectNodeContents(cell); return r.getClientRects().length;
                };
                const cells = [...table.querySelectorAll("th, td")];
                const box = table.getBoundingClientRect();
                const column = table.closest(".transcript").getBoundingClientRect();
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
        prompt = panel.locator(".msg.user")
        assert prompt.evaluate("(el) => [el.dir, getComputedStyle(el).direction]") == ["auto", "rtl"]
        reply = panel.locator(".msg.bot .md")
        assert reply.evaluate("(el) => [el.dir, getComputedStyle(el).direction]") == ["auto", "rtl"]
        quote = reply.locator("blockquote")
        style = quote.evaluate("""(el) => { const s = getComputedStyle(el);
            return {border: parseFloat(s.borderInlineStartWidth), padding: parseFloat(s.paddingInlineStart)}; }""")
        assert style["border"] >= 2 and style["padding"] > 0, style
