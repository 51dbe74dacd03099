"""A streaming reply is drawn block by block (markdown.js markdownStream, reply_view.js): at every
frame it shows what a whole render of the text so far shows, the blocks it finished stay the
same elements, and the ended reply is exactly the whole render."""

import json

import pytest

from tests.browser.helpers import send, wait_both_ended
from tests.helpers import slow_models_serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

# Lists that go on after a blank line (and turn loose) or after a code block in an item (the next
# item's number arrives a character at a time), nested lists, code fences opened and
# closed across frames (one holding a blank line and what looks like markdown), tables, a
# paragraph turned into a heading by the next line, quotes, raw HTML shown as text.
TRICKY = """Here is the plan:

1. **Read** the file
2. Parse it:
   - split the lines
   - keep the *valid* ones
     1. deeply nested
3. Run it:
   ```
   data = load()
   ```
4. Write it back

- a list
- that goes on

- after a blank line, so it is loose

```python
def f(x):

    # not a heading
    return x * 2
```

| name | value |
|------|:-----:|
| a    | 1     |
| b    | 2     |

Then a paragraph
that becomes a heading
---

> a quote
continued lazily

<script>alert(1)</script> and <b>bold?</b> stay text; a [link](https://example.com).

~~~
tilde fence
~~~
The end.
"""

# The page's own modules, imported next to arena.js (whatever its static URL), and a column of
# replies drawn off-screen from the frames given, checked against a whole render at each one.
DRAW_IN_STEPS = """async ([text, sizes]) => {
    const base = document.querySelector('script[type="module"]').src;
    const { renderMarkdown } = await import(new URL("markdown.js", base));
    const { replyColumn } = await import(new URL("reply_view.js", base));
    const panel = document.createElement("div");
    document.body.append(panel);
    const column = replyColumn(panel, "a");
    const turn = (status, shown) => [{ index: 0, prompt: "p", attempt: 1, sides: { a: { status, text: shown } } }];
    const whole = (shown) => {
        const div = document.createElement("div");
        div.innerHTML = renderMarkdown(shown);
        return div;
    };
    const drawn = () => {
        const md = panel.querySelector(".md").cloneNode(true);
        md.querySelector(".cursor")?.remove();
        return md;
    };
    const differ = [];
    let end = 0, step = 0, frames = 0, kept = null, keptAlive = true;
    while (end < text.length) {
        end = Math.min(text.length, end + sizes[step++ % sizes.length]);
        column.draw(turn("streaming", text.slice(0, end)));
        frames++;
        if (drawn().innerHTML !== whole(text.slice(0, end)).innerHTML) differ.push(text.slice(0, end).slice(-30));
        const first = panel.querySelector(".md").firstElementChild;
        if (kept === null && end > text.length / 2) kept = first;  // well before the end: finished long ago
        else if (kept !== null && first !== kept) keptAlive = false;
    }
    column.draw(turn("done", text));
    const md = panel.querySelector(".md");
    const wholeMd = md.cloneNode(false);  // the same element, children from a whole render
    wholeMd.innerHTML = renderMarkdown(text);
    const ended = md.isEqualNode(wholeMd) && !md.querySelector(".cursor");
    panel.remove();
    return { differ, frames, ended, keptAlive, keptTag: kept && kept.tagName };
}"""


def test_each_frame_shows_what_a_whole_render_shows(page, live_stack):
    page.goto(live_stack.base_url + "/")
    for sizes in ([1], [3, 1, 7, 2], [16, 5]):  # a character at a time, then token-like pieces
        result = page.evaluate(DRAW_IN_STEPS, [TRICKY, sizes])
        assert result["differ"] == [], f"pieces {sizes}: frames unlike a whole render, ending {result['differ'][:3]}"
        assert result["frames"] >= len(TRICKY) // max(sizes)
        assert result["ended"], "the ended reply must be exactly the whole render"
        assert result["keptAlive"] and result["keptTag"] == "P", "a finished block must stay the element drawn"


def test_only_the_last_blocks_are_parsed_again(page, live_stack):
    page.goto(live_stack.base_url + "/")
    result = page.evaluate("""async () => {
        const base = document.querySelector('script[type="module"]').src;
        const { markdownStream, renderMarkdown } = await import(new URL("markdown.js", base));
        const stream = markdownStream();
        const text = Array.from({ length: 300 }, (_, i) => `Paragraph ${i} with **some** words in it.`).join("\\n\\n");
        let widest = 0, finished = "", live = "";
        for (let end = 7; end < text.length + 7; end += 7) {
            const part = stream.next(text.slice(0, end));
            finished += part.finished;
            live = part.live;
            widest = Math.max(widest, part.live.length);
        }
        return { widest, whole: renderMarkdown(text).length, same: finished + live === renderMarkdown(text) };
    }""")
    assert result["same"]
    # What is parsed again per piece is the last blocks, not the whole reply (~14,000 characters).
    assert result["widest"] < 200 < result["whole"] / 50


def test_a_text_that_does_not_extend_the_last_one_is_drawn_afresh(page, live_stack):
    page.goto(live_stack.base_url + "/")
    result = page.evaluate("""async () => {
        const base = document.querySelector('script[type="module"]').src;
        const { renderMarkdown } = await import(new URL("markdown.js", base));
        const { replyColumn } = await import(new URL("reply_view.js", base));
        const panel = document.createElement("div");
        const column = replyColumn(panel, "a");
        const draw = (text) => column.draw(
            [{ index: 0, prompt: "p", attempt: 1, sides: { a: { status: "streaming", text } } }]);
        draw("# One\\n\\npara one\\n\\n- x\\n- y\\n\\nmore");
        draw("# Two\\n\\nanother");  // e.g. a fresh snapshot after a reconnect
        const md = panel.querySelector(".md").cloneNode(true);
        md.querySelector(".cursor")?.remove();
        return [md.innerHTML, renderMarkdown("# Two\\n\\nanother")];
    }""")
    assert result[0] == result[1]


def test_a_streamed_reply_ends_drawn_as_a_whole_render_of_its_text(page, live_stack):
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    with slow_models_serving(tokens_per_second=150, max_new_tokens=1000):
        page.goto(live_stack.base_url + "/")
        send(page, "[[devserver:echo]]\n" + TRICKY)
        wait_both_ended(page, timeout=30_000)
    done = [json.loads(f) for f in frames if '"type":"done"' in f.replace(" ", "")]
    assert len(done) == 2
    for frame in done:
        assert "alert(1)" in frame["text"] and "| name | value |" in frame["text"]
        same = page.evaluate("""async ([side, text]) => {
            const base = document.querySelector('script[type="module"]').src;
            const { renderMarkdown } = await import(new URL("markdown.js", base));
            const md = document.querySelector(`[data-testid="reply-${side}"] .msg.bot .md`);
            const whole = md.cloneNode(false);  // the same element, children from a whole render
            whole.innerHTML = renderMarkdown(text);
            return md.isEqualNode(whole) && md.querySelectorAll("table, ol ul ol, pre code").length >= 3;
        }""", [frame["side"], frame["text"]])
        assert same, f"side {frame['side']} differs from a whole render of its text"
    assert page.locator(".md script").count() == 0
