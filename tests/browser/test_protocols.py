"""One battle, two protocols: zephyr over TGI's stream against a model served over OpenAI's chat
completions (API key by reference), through the real worker and web server, in Chromium."""

import pytest
from playwright.sync_api import expect

from arena.models import ChatModel, Reply
from devserver import DevServerConfig, serve_in_thread
from tests.browser.helpers import send, wait_both_ended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

KEY_VARIABLE = "ARENA_TEST_OPENAI_KEY"  # set for the worker by tests.helpers.stack_env


@pytest.fixture(scope="module")
def openai_server():
    from tests.helpers import TEST_OPENAI_KEY

    config = DevServerConfig(model_id="llama-2-13b-chat", time_to_first_token=0.05, tokens_per_second=150,
                             api_key=TEST_OPENAI_KEY)
    with serve_in_thread(config) as url:
        yield url


def models_of_two_protocols(zephyr_url: str, openai_url: str) -> None:
    ChatModel.objects.create(name="zephyr-7b-beta", endpoint_url=zephyr_url, template="zephyr", timeout_seconds=20)
    ChatModel.objects.create(
        name="llama-2-13b-chat", protocol="openai", endpoint_url=f"{openai_url}/v1", served_model="llama-2-13b-chat",
        api_key_env=KEY_VARIABLE, timeout_seconds=20,
    )


def test_a_tgi_model_and_an_openai_protocol_model_both_stream_and_are_revealed_after_the_vote(
    page, live_stack, devserver_urls, openai_server
):
    models_of_two_protocols(devserver_urls[0], openai_server)
    page.goto(live_stack.base_url + "/")
    send(page, "Tell me about the history of tea")
    for side in ("a", "b"):  # each side is seen streaming before it is done
        expect(page.get_by_test_id(f"reply-{side}").locator(".msg.bot.streaming, .msg.bot.done")).to_have_count(
            1, timeout=10_000)
    wait_both_ended(page)
    texts = {side: page.get_by_test_id(f"reply-{side}").locator(".msg.bot.done").inner_text() for side in "ab"}
    assert all(len(t) > 20 for t in texts.values()) and texts["a"] != texts["b"]

    page.get_by_test_id("vote-tie").click()
    expect(page.get_by_test_id("vote-result")).to_contain_text("You voted: a tie")
    revealed = {page.get_by_test_id("model-a").inner_text(), page.get_by_test_id("model-b").inner_text()}
    assert revealed == {"— zephyr-7b-beta", "— llama-2-13b-chat"}
    openai_reply = Reply.objects.get(model__name="llama-2-13b-chat")
    assert openai_reply.status == Reply.Status.DONE and openai_reply.finish_reason in ("stop", "length")
    assert openai_reply.prompt_tokens and openai_reply.token_count > 0  # usage from the stream's usage chunk
    assert Reply.objects.get(model__name="zephyr-7b-beta").prompt_tokens is None  # TGI's stream doesn't say


def test_a_reply_ended_by_a_content_filter_says_so_and_can_be_voted_on(page, live_stack, devserver_urls, openai_server):
    models_of_two_protocols(devserver_urls[0], openai_server)
    page.goto(live_stack.base_url + "/")
    send(page, "Tell me about rivers [[devserver:content-filter:4]]")  # the TGI side ignores this marker
    wait_both_ended(page)
    filtered = page.locator(".msg.bot.done", has_text="content filter stopped the reply")
    expect(filtered).to_have_count(1)
    expect(page.get_by_test_id("vote-a")).to_be_enabled()
