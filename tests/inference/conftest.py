"""The backends' tests share the session's event loop: its OpenAI clients are closed with it."""

import pytest

from inference.openai_chat import clients_close


@pytest.fixture(scope="session", autouse=True)
async def _openai_clients_closed():
    yield
    await clients_close()
