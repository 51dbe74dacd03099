"""export_battles carries each side's token usage, summed over the turns shown."""

import json

import pytest
from django.core.management import call_command

from arena import services
from arena.models import Reply, Turn


def finish(turn: Turn, side: str, *, tokens: int, prompt_tokens: int | None) -> None:
    reply = turn.replies.get(side=side, attempt=Turn.objects.get(id=turn.id).attempt)
    Reply.objects.filter(id=reply.id).update(status=Reply.Status.STREAMING)
    services.reply_finish(reply_id=reply.id, text=f"answer {side}", token_count=tokens, prompt_tokens=prompt_tokens)


@pytest.mark.django_db
def test_export_sums_usage_per_side_and_leaves_prompt_tokens_unknown_when_a_server_did_not_say(
    tmp_path, chat_models, alice
):
    first = services.battle_start(client=alice, text="First question")
    finish(first, "a", tokens=10, prompt_tokens=7)
    finish(first, "b", tokens=4, prompt_tokens=None)  # a TGI reply: no prompt count in its stream
    second = services.turn_submit(battle_id=first.battle_id, client=alice, text="Second question")
    finish(second, "a", tokens=5, prompt_tokens=30)
    finish(second, "b", tokens=6, prompt_tokens=25)
    services.vote_cast(battle_id=first.battle_id, client=alice, outcome="a")

    out = tmp_path / "out.jsonl"
    call_command("export_battles", str(out))
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["usage_a"] == {"prompt_tokens": 37, "completion_tokens": 15}
    assert record["usage_b"] == {"prompt_tokens": None, "completion_tokens": 10}


@pytest.mark.django_db
def test_pseudonymised_exports_keep_one_judge_per_voter_without_their_id(tmp_path, chat_models, alice, mallory):
    from tests.finished import vote_uncounted

    for client in (alice, alice, mallory):
        vote_uncounted(client, "a")
    plain, masked = tmp_path / "plain.jsonl", tmp_path / "masked.jsonl"
    call_command("export_battles", str(plain))
    call_command("export_battles", str(masked), "--pseudonymise")
    judges = [json.loads(line)["judge"] for line in plain.read_text().splitlines()]
    hidden = [json.loads(line)["judge"] for line in masked.read_text().splitlines()]
    assert judges == [alice.client_id, alice.client_id, mallory.client_id]
    assert hidden[0] == hidden[1] != hidden[2] and not set(hidden) & set(judges)


def test_a_pseudonymised_judge_model_keeps_its_name():
    from arena.clients import judge_pseudonym

    assert judge_pseudonym("model:judge-7b") == "model:judge-7b"  # re-imported, it stays out of people's ratings
    assert judge_pseudonym("c0ffee").startswith("judge-") and "c0ffee" not in judge_pseudonym("c0ffee")
