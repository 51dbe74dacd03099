"""The arena page in a real Chromium against the real stack (uvicorn, Celery worker, dev servers)."""

import pytest
from playwright.sync_api import expect

from arena.models import Battle, Vote

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_a_full_battle_votes_and_reveals_the_names(page, live_stack, chat_models):
    html_before = []
    page.on("response",
            lambda r: html_before.append(r.text()) if "text/html" in r.headers.get("content-type", "") else None)
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    page.goto(live_stack.base_url + "/")
    expect(page.get_by_test_id("vote-a")).to_be_disabled()
    page.get_by_test_id("prompt").fill("Tell me about the history of tea")
    page.get_by_test_id("send").click()

    for side in ("a", "b"):
        expect(page.get_by_test_id(f"reply-{side}").locator(".msg.bot.done")).to_have_count(1, timeout=20_000)
    text_a = page.get_by_test_id("reply-a").locator(".msg.bot").inner_text()
    text_b = page.get_by_test_id("reply-b").locator(".msg.bot").inner_text()
    assert len(text_a) > 20 and text_a != text_b
    expect(page.get_by_test_id("model-a")).to_have_text("")
    for name in ("zephyr-7b-beta", "mistral-7b-instruct"):
        assert all(name not in html for html in html_before)
        assert all(name not in str(frame) for frame in frames)
        assert name not in page.content()

    expect(page.get_by_test_id("vote-b")).to_be_enabled()
    page.get_by_test_id("vote-b").click()
    expect(page.get_by_test_id("model-a")).not_to_have_text("", timeout=10_000)
    revealed = {page.get_by_test_id("model-a").inner_text(), page.get_by_test_id("model-b").inner_text()}
    assert revealed == {"— zephyr-7b-beta", "— mistral-7b-instruct"}
    expect(page.get_by_test_id("vote-a")).to_be_disabled()
    battle = Battle.objects.get()
    assert Vote.objects.get(battle=battle).outcome == "b"
    expect(page.get_by_test_id("vote-result")).to_contain_text("You voted: B is better")
    assert page.dialogs == []


def test_a_vote_in_one_browser_moves_the_leaderboard_in_another(chromium, live_stack, chat_models):
    import time

    voter = chromium.new_context().new_page()
    watcher = chromium.new_context().new_page()
    watcher.goto(live_stack.base_url + "/leaderboard/")
    expect(watcher.get_by_test_id("leaderboard-empty")).to_be_visible()
    voter.goto(live_stack.base_url + "/")
    voter.get_by_test_id("prompt").fill("Which is better, tea or coffee?")
    voter.get_by_test_id("send").click()
    expect(voter.get_by_test_id("vote-a")).to_be_enabled(timeout=20_000)
    voter.get_by_test_id("vote-a").click()
    clicked = time.monotonic()
    rows = watcher.get_by_test_id("leaderboard-row")
    expect(rows).to_have_count(2, timeout=5_000)
    seen = time.monotonic() - clicked
    expect(voter.get_by_test_id("model-a")).not_to_have_text("")
    winner = voter.get_by_test_id("model-a").inner_text().removeprefix("— ")
    top = rows.first
    assert top.get_attribute("data-model") == winner
    assert float(top.get_by_test_id("rating").inner_text()) > 1000
    assert seen < 3.0, f"the leaderboard took {seen:.2f} s to move"  # polling included; bench/votes.py measures it
    voter.context.close()
    watcher.context.close()
