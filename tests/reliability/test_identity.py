"""Identity leaks: a reply naming a model or vendor flags the vote; a prompt doing so doesn't."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from arena import services
from arena.models import Reply, Turn, Vote
from arena.text import text_names_identity
from tests.finished import battle_finished
from tests.helpers import ROOT
from tests.websockets import both_finished, frames_until, new_session_key, state_of, ws_connect, ws_receive, ws_send

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONFESSION = "I am ChatGPT, made by OpenAI."


async def battle_through_the_worker(prompt: str) -> tuple[str, dict[str, str]]:
    """Prompt, wait for both replies, vote; returns the battle id and the replies' texts."""
    comm = await ws_connect(await new_session_key())
    try:
        await ws_send(comm, {"action": "prompt", "battle": None, "text": prompt})
        frames = await frames_until(comm, both_finished)
        battle_id = state_of(frames)["battle"]
        texts = {f["side"]: f["text"] for f in frames if f["type"] == "done"}
        assert set(texts) == {"a", "b"}, frames[-1]
        await ws_send(comm, {"action": "vote", "battle": battle_id, "outcome": "a"})
        assert (await ws_receive(comm, 10))["type"] == "revealed"
    finally:
        await comm.disconnect()
    return battle_id, texts


async def test_a_reply_naming_a_vendor_flags_the_vote(chat_models, celery_worker_process):
    battle_id, texts = await battle_through_the_worker(f"[[devserver:echo]] {CONFESSION}")
    assert texts == {"a": CONFESSION, "b": CONFESSION}  # both "models" said it
    replies = await database_sync_to_async(list)(Reply.objects.filter(turn__battle_id=battle_id))
    assert all(r.names_identity for r in replies)
    assert (await database_sync_to_async(Vote.objects.get)(battle_id=battle_id)).identity_flagged


async def test_a_prompt_naming_a_vendor_does_not_flag_the_vote(chat_models, celery_worker_process):
    # The dev server's reply picks up the prompt's longest words only, so OpenAI stays out of it.
    prompt = "Compare photosynthesis, transpiration, chlorophyll and mitochondria, like OpenAI would."
    battle_id, texts = await battle_through_the_worker(prompt)
    assert all("openai" not in text.lower() for text in texts.values()), texts
    turn = await database_sync_to_async(Turn.objects.get)(battle_id=battle_id)
    assert "OpenAI" in turn.prompt
    assert not (await database_sync_to_async(Vote.objects.get)(battle_id=battle_id)).identity_flagged


@override_settings(ARENA_IDENTITY_WORDS=["frobnicator", "acme labs"])
def test_the_word_list_comes_from_settings(chat_models, alice, no_generation):
    assert text_names_identity("I was trained by Acme Labs.")
    assert not text_names_identity(CONFESSION)  # no longer on the list
    assert not text_names_identity("Frobnicators are tools.")  # whole words only
    flagged = battle_finished(alice, text_a="Hello, I am Frobnicator-2.", text_b="Hi")
    services.vote_cast(battle_id=flagged.battle_id, client=alice, outcome="a")
    clean = battle_finished(alice, text="Is Frobnicator good?", text_a=CONFESSION, text_b="Hi")
    services.vote_cast(battle_id=clean.battle_id, client=alice, outcome="a")
    assert Vote.objects.get(battle_id=flagged.battle_id).identity_flagged
    assert not Vote.objects.get(battle_id=clean.battle_id).identity_flagged


def test_the_word_list_is_read_from_the_environment():
    env = dict(os.environ, ARENA_IDENTITY_WORDS="frobnicator,acme labs", DJANGO_SETTINGS_MODULE="config.settings")
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.ARENA_IDENTITY_WORDS)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert out.strip() == "['frobnicator', 'acme labs']"
