"""The leaderboard page in a real Chromium against the real stack: how ties read in the win
fractions, the visible explanations, provisional models apart, the empty state and its live
replacement, the interval plot on a phone."""

import re
import time

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from arena import ratings
from arena.models import Battle, ChatModel, PairCount, Reply, Turn, Vote
from arena.tasks import leaderboard_live_refresh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

MOBILE = {"width": 390, "height": 844}


def rated(*names: str) -> dict[str, ChatModel]:
    """Models that are rated only (as imported ones): never drawn into a battle."""
    return {n: ChatModel.objects.create(name=n, endpoint_url="", enabled=False) for n in names}


def counts_set(models: dict[str, ChatModel], cells: dict[tuple[str, str, int], int]) -> None:
    for (a, b, outcome), n in cells.items():
        PairCount.objects.create(model_a=models[a], model_b=models[b], outcome=outcome, count=n, weight=n, weight_sq=n)


def counts_shown(models: dict[str, ChatModel], cells: dict[tuple[str, str, int], int]) -> None:
    """The counts, then published as a refresh publishes them: a debounced refresh that an earlier
    test's votes left in the worker, run before the counts were in, can't leave the page its older
    snapshot (and this refresh leaves no bootstrap behind for the next test)."""
    counts_set(models, cells)
    with override_settings(ARENA_BOOTSTRAP_ROUNDS=0):
        leaderboard_live_refresh()


# alpha vs beta: only ties; alpha vs gamma: 3 wins, 1 loss, 2 ties; beta vs gamma: beta won twice.
CELLS = {
    ("alpha", "beta", ratings.TIE): 2,
    ("beta", "alpha", ratings.BOTH_BAD): 1,
    ("alpha", "gamma", ratings.A_WINS): 2,
    ("gamma", "alpha", ratings.B_WINS): 1,
    ("gamma", "alpha", ratings.A_WINS): 1,
    ("alpha", "gamma", ratings.TIE): 1,
    ("gamma", "alpha", ratings.BOTH_BAD): 1,
    ("beta", "gamma", ratings.A_WINS): 2,
}


def matrix(page, test_id: str) -> dict:
    """{row model: {column model: {text, title, label}}} as drawn."""
    return page.get_by_test_id(test_id).evaluate("""(table) => {
        const rows = [...table.rows];
        const cols = [...rows[0].cells].slice(1).map((c) => c.textContent);
        const out = {};
        for (const tr of rows.slice(1)) {
            const name = tr.cells[0].textContent;
            out[name] = {};
            [...tr.cells].slice(1).forEach((td, j) => {
                out[name][cols[j]] = {text: td.textContent, title: td.title, label: td.getAttribute("aria-label")};
            });
        }
        return out;
    }""")


# --- MEDIUM: ties in the win fraction -----------------------------------------------------------


def test_the_win_fraction_leaves_ties_out_says_so_and_shows_each_pair_s_record(page, live_stack):
    counts_shown(rated("alpha", "beta", "gamma"), CELLS)
    page.goto(live_stack.base_url + "/leaderboard/")
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(3)
    win = matrix(page, "win-fraction")

    # A pair that only ever tied: no 0.00 / 0.00, and the reason is at hand.
    for a, b in (("alpha", "beta"), ("beta", "alpha")):
        assert win[a][b]["text"] == "–"
        assert f"{a} vs {b}: 0–0–3 (wins–losses–ties, 3 battles)" in win[a][b]["title"]
        assert "only ties" in win[a][b]["title"] and "0–0–3" in win[a][b]["label"]
    # Over the decisive battles (3 of 4 won), as the reference chart; the ties are in the record.
    assert win["alpha"]["gamma"]["text"] == "0.75" and win["gamma"]["alpha"]["text"] == "0.25"
    assert win["alpha"]["gamma"]["title"] == "alpha vs gamma: 3–1–2 (wins–losses–ties, 6 battles)"
    assert win["gamma"]["alpha"]["title"] == "gamma vs alpha: 1–3–2 (wins–losses–ties, 6 battles)"
    assert win["alpha"]["gamma"]["label"].startswith("0.75: alpha vs gamma: 3–1–2")
    assert win["beta"]["gamma"]["text"] == "1.00" and win["gamma"]["beta"]["text"] == "0.00"
    assert win["alpha"]["alpha"] == {"text": "", "title": "", "label": None}

    note = page.get_by_test_id("win-fraction-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("ties and “both are bad” votes are left out")
    expect(note).to_contain_text("Chatbot Arena")
    expect(note).to_contain_text("half a win")
    counts = matrix(page, "battle-counts")
    assert counts["alpha"]["beta"]["text"] == "3" and counts["alpha"]["gamma"]["text"] == "6"
    assert counts["alpha"]["gamma"]["title"] == "alpha vs gamma: 3–1–2 (wins–losses–ties, 6 battles)"


# --- MEDIUM: visible explanations ---------------------------------------------------------------


def test_rank_ub_and_the_intervals_are_explained_on_the_page(page, live_stack):
    counts_shown(rated("alpha", "beta", "gamma"), CELLS)
    page.goto(live_stack.base_url + "/leaderboard/")
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(3)
    # Analytic, unless the worker's debounced bootstrap, queued by an earlier test's votes, landed
    # on these same counts meanwhile (it is then current for them, and shown).
    expect(page.get_by_test_id("leaderboard-summary")).to_contain_text(
        re.compile(r"95% intervals: (analytic \(sandwich\), live|bootstrap, 1000 rounds)")
    )

    # Without hovering anything: a legend right under the table.
    legend = page.get_by_test_id("leaderboard-legend")
    expect(legend).to_be_visible()
    expect(legend).to_contain_text("Rank (UB) is 1 plus the number of models that are clearly ahead")
    expect(legend).to_contain_text("share a rank")
    expect(legend).to_contain_text("95% CI")
    table = page.get_by_test_id("leaderboard").bounding_box()
    assert legend.bounding_box()["y"] >= table["y"] + table["height"]

    # The longer story, one click away.
    method = page.get_by_test_id("leaderboard-method")
    summary = method.locator("summary")
    expect(summary).to_have_text("How ranks and intervals are computed")
    sandwich = method.get_by_text("“Sandwich” is the way the standard error is estimated", exact=False)
    expect(sandwich).to_be_hidden()
    summary.click()
    expect(sandwich).to_be_visible()
    for words in ("analytic (sandwich)", "bootstrap", "half a win", "upper bound", "Online Elo", "1000 times"):
        expect(method).to_contain_text(words)


def test_provisional_models_are_listed_apart_without_a_rank_and_the_draw_is_explained(page, live_stack):
    models = rated("alpha", "beta", "gamma")  # the stack's default: provisional below 50 votes
    counts_shown(models, {("alpha", "beta", ratings.A_WINS): 40, ("beta", "alpha", ratings.TIE): 30,
                        ("gamma", "alpha", ratings.A_WINS): 3, ("beta", "gamma", ratings.TIE): 2})
    page.goto(live_stack.base_url + "/leaderboard/")
    ranked = page.get_by_test_id("leaderboard-body").get_by_test_id("leaderboard-row")
    expect(ranked).to_have_count(2)
    assert ranked.evaluate_all("(rows) => rows.map((r) => r.dataset.model)") == ["alpha", "beta"]
    section = page.get_by_test_id("provisional")
    expect(section).to_be_visible()
    expect(section).to_contain_text("Fewer than 50 counted votes")
    row = page.get_by_test_id("provisional-body").get_by_test_id("leaderboard-row")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-model", "gamma")
    expect(row.locator("td").first).to_have_text("provisional")
    table = page.get_by_test_id("leaderboard").bounding_box()
    assert section.bounding_box()["y"] >= table["y"] + table["height"]  # apart, below the ranked ones
    expect(page.get_by_test_id("leaderboard-summary")).to_contain_text("3 models (1 provisional)")
    # The plot still shows it, drawn hollow, and says why.
    expect(page.get_by_test_id("interval-plot").locator("g.provisional circle")).to_have_count(1)

    method = page.get_by_test_id("leaderboard-method")
    method.locator("summary").click()
    expect(page.get_by_test_id("method-sampling")).to_contain_text("Mostly the pairs whose next vote would tell")
    expect(page.get_by_test_id("method-sampling")).to_contain_text("25% of the chance is spread evenly")
    expect(page.get_by_test_id("method-sampling")).to_contain_text("fewer than 100 counted votes is drawn 5 times")
    expect(page.get_by_test_id("method-weighting")).to_be_visible()
    expect(method).to_contain_text("listed apart as provisional")


# --- MEDIUM: the empty state, replaced live -----------------------------------------------------


def test_with_no_votes_one_empty_state_then_the_first_update_shows_everything(page, live_stack):
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    page.goto(live_stack.base_url + "/leaderboard/")
    empty = page.get_by_test_id("leaderboard-empty")
    expect(empty).to_be_visible()
    expect(empty).to_contain_text("No votes yet — ratings appear after the first counted vote")
    for test_id in ("leaderboard", "interval-plot", "win-fraction", "battle-counts", "leaderboard-summary",
                    "leaderboard-legend", "win-fraction-note"):
        expect(page.get_by_test_id(test_id)).to_be_hidden()
    for heading in ("Ratings with 95% intervals", "Win fraction (row beats column)", "Battle counts"):
        expect(page.get_by_role("heading", name=heading)).to_be_hidden()

    # The first counted votes arrive over the websocket (once it is connected: its first frame).
    deadline = time.monotonic() + 10
    while not frames and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert frames, "the leaderboard socket never connected"
    counts_set(rated("alpha", "beta", "gamma"), CELLS)
    with override_settings(ARENA_BOOTSTRAP_ROUNDS=0):  # no bootstrap left behind for the next test
        leaderboard_live_refresh()
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(3)
    expect(empty).to_be_hidden()
    for test_id in ("leaderboard", "interval-plot", "win-fraction", "battle-counts", "leaderboard-summary",
                    "leaderboard-legend"):
        expect(page.get_by_test_id(test_id)).to_be_visible()
    expect(page.get_by_role("heading", name="Ratings with 95% intervals")).to_be_visible()
    expect(page.get_by_test_id("interval-plot").locator("circle")).to_have_count(3)
    expect(page.get_by_test_id("leaderboard-summary")).to_contain_text("11 counted votes · 3 models")


# --- MEDIUM: the interval plot on a phone -------------------------------------------------------


PLOT_TEXT = """(svg) => {
    const box = svg.getBoundingClientRect();
    return [...svg.querySelectorAll("text")].map((t) => {
        const r = t.getBoundingClientRect();
        return {text: t.textContent, height: r.height, left: r.left - box.left, right: box.right - r.right,
                font: parseFloat(getComputedStyle(t).fontSize) * box.width / svg.viewBox.baseVal.width};
    });
}"""


def test_the_interval_plot_is_legible_on_a_phone(chromium, live_stack):
    names = ("zephyr-7b-beta", "mistral-7b-instruct-v0.2", "openhermes-2.5-mistral-7b")
    models = rated(*names)
    counts_shown(models, {(names[0], names[1], ratings.A_WINS): 5, (names[1], names[2], ratings.A_WINS): 4,
                        (names[2], names[0], ratings.TIE): 3, (names[2], names[0], ratings.B_WINS): 2})
    context = chromium.new_context(viewport=MOBILE, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(live_stack.base_url + "/leaderboard/")
    plot = page.get_by_test_id("interval-plot")
    expect(plot.locator("circle")).to_have_count(3)
    labels = plot.evaluate(PLOT_TEXT)
    for label in labels:
        # Text as large as the page's small print (it was scaled down to ~7 px here).
        assert label["font"] >= 12 and label["height"] >= 12, label
        assert label["left"] >= 0 and label["right"] >= 0, f"cut off: {label}"
    assert len(labels) == 5  # a name per row and the two ends of the scale
    # Each model can be told by name (in full where it fits; its title has it anyway).
    in_table = page.get_by_test_id("leaderboard-row").evaluate_all("(rows) => rows.map((r) => r.dataset.model)")
    assert [label["text"].split(" · ")[0] for label in labels[:3]] == in_table
    width = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, view: document.documentElement.clientWidth})")
    assert width["scroll"] <= width["view"], width
    context.close()


def test_the_interval_plot_redraws_for_a_new_width(page, live_stack):
    counts_shown(rated("alpha", "beta", "gamma"), CELLS)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(live_stack.base_url + "/leaderboard/")
    plot = page.get_by_test_id("interval-plot")
    expect(plot).to_have_attribute("data-layout", "side")
    assert all(label["font"] >= 12 for label in plot.evaluate(PLOT_TEXT))
    page.set_viewport_size(MOBILE)
    expect(plot).to_have_attribute("data-layout", "stacked")
    for label in plot.evaluate(PLOT_TEXT):
        assert label["font"] >= 12 and label["left"] >= 0 and label["right"] >= 0, label


# --- style control, categories, speed --------------------------------------------------------------


def test_the_style_toggle_and_the_category_menu_change_the_view(page, live_stack):
    import json
    from io import StringIO
    from pathlib import Path

    from django.core.management import call_command

    data = Path(__file__).resolve().parents[1] / "arena" / "data"
    reference = json.loads((data / "style_reference.json").read_text())
    call_command("import_battles", str(data / "style_battles.jsonl"), "--no-progress", stdout=StringIO())
    with override_settings(ARENA_BOOTSTRAP_ROUNDS=0):
        leaderboard_live_refresh()
    page.goto(live_stack.base_url + "/leaderboard/")
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(8)
    toggle, menu = page.get_by_test_id("style-toggle"), page.get_by_test_id("category-menu")
    expect(toggle).not_to_be_checked()
    expect(page.get_by_test_id("style-coefficients")).to_be_hidden()
    expect(page.get_by_test_id("rank-change").first).to_be_hidden()

    toggle.check()
    page.wait_for_url(re.compile(r"/leaderboard/\?style=1$"))
    expect(page.get_by_test_id("style-toggle")).to_be_checked()
    coefficients = page.get_by_test_id("style-coefficient")
    expect(coefficients).to_have_count(4)
    expect(coefficients.first).to_contain_text("Longer answers win more often")
    expect(page.get_by_test_id("rank-change").first).to_be_visible()
    expect(page.get_by_test_id("leaderboard-summary")).to_contain_text("style-controlled")
    for row in page.get_by_test_id("leaderboard-row").all():
        shown = float(row.get_by_test_id("rating").text_content())
        assert shown == pytest.approx(reference["style_control"][row.get_attribute("data-model")], abs=1.0)

    page.get_by_test_id("category-menu").select_option("coding")
    page.wait_for_url(re.compile(r"\?style=1&category=coding$"))
    few = page.get_by_test_id("too-few-votes")
    expect(few).to_be_visible()
    expect(few).to_contain_text("Only 0 counted votes in “Coding")
    expect(page.get_by_test_id("leaderboard-content")).to_be_hidden()

    page.get_by_test_id("category-menu").select_option("english")
    page.wait_for_url(re.compile(r"category=english$"))
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(8)
    expect(page.get_by_test_id("too-few-votes")).to_be_hidden()
    expect(menu).to_have_value("english")


def test_the_speed_columns_can_be_hidden_and_stay_so(page, live_stack):
    counts_shown(rated("alpha", "beta", "gamma"), CELLS)
    page.goto(live_stack.base_url + "/leaderboard/")
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(3)
    speed_header = page.get_by_test_id("leaderboard").locator("th", has_text="TTFT p50")
    expect(speed_header).to_be_visible()
    page.get_by_test_id("speed-toggle").uncheck()
    expect(speed_header).to_be_hidden()
    page.reload()
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(3)
    expect(page.get_by_test_id("speed-toggle")).not_to_be_checked()
    expect(speed_header).to_be_hidden()


def test_a_judge_model_s_leaderboard_is_one_click_away_with_its_agreement(page, live_stack):
    models = rated("alpha", "beta")
    judge = "model:judge-7b"

    def judged(a: str, b: str, outcome: str, who: str = judge) -> None:
        battle = Battle.objects.create(
            model_a=models[a], model_b=models[b], client_id=who, judge=who if who.startswith("model:") else ""
        )
        turn = Turn.objects.create(battle=battle, index=0, prompt="Which is larger, 9.11 or 9.9?")
        for side, name in (("a", a), ("b", b)):
            Reply.objects.create(turn=turn, side=side, model=models[name], status=Reply.Status.DONE, text="x")
        Vote.objects.create(battle=battle, outcome=outcome, client_id=who, reasoning="[[A]]")

    judged("alpha", "beta", "a")
    judged("beta", "alpha", "b")  # both orders: alpha
    judged("alpha", "beta", "a", who="person")  # a person agrees
    page.goto(live_stack.base_url + "/leaderboard/")
    expect(page.get_by_test_id("leaderboard-controls")).to_be_visible()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.get_by_test_id("leaderboard-judges").get_by_role("link", name=judge).click()
    expect(page.get_by_test_id("leaderboard-judge")).to_have_text(f"judged by {judge}")
    expect(page.get_by_test_id("leaderboard-row")).to_have_count(2)
    expect(page.get_by_test_id("leaderboard-row").first).to_contain_text("alpha")
    expect(page.get_by_test_id("agreement-with-ties")).to_contain_text("100%")
    expect(page.get_by_test_id("leaderboard-controls")).to_have_count(0)  # no style or category views
    assert errors == []
    page.get_by_test_id("leaderboard-judges").get_by_role("link", name="people").click()
    expect(page.get_by_test_id("leaderboard-judge")).to_have_count(0)
