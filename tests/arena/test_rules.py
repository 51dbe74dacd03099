"""When a battle accepts a follow-up, a regenerate, a retry or a vote (arena.rules, no database)."""

import pytest

from arena.rules import (
    BattleNow,
    SideNow,
    battle_controls,
    failure_facts,
    regenerate_refusal,
    send_refusal,
    vote_refusal,
)

DONE = SideNow("done")
STREAMING = SideNow("streaming")


def now(a: SideNow, b: SideNow, *, voted=False, index=0, max_turns=5) -> BattleNow:
    return BattleNow(voted=voted, turn_index=index, sides={"a": a, "b": b}, max_turns=max_turns)


def test_both_done_opens_everything():
    controls = battle_controls(now(DONE, DONE))
    assert controls == {"may_send": True, "may_vote": True, "may_regenerate": True, "may_retry": [], "hint": ""}


def test_while_streaming_nothing_but_waiting():
    state = now(DONE, STREAMING)
    controls = battle_controls(state)
    assert not controls["may_send"] and not controls["may_vote"] and not controls["may_regenerate"]
    assert controls["hint"] == "Both models are still answering; you can send your next prompt when they have finished."
    assert send_refusal(state) == "Wait until both replies have finished (regenerate a failed one)."
    assert regenerate_refusal(state, "b") == "Wait until both replies have finished."
    assert vote_refusal(state) == "You can vote once both replies have finished."


def test_one_failed_side_may_be_retried_and_blocks_send_and_vote():
    state = now(DONE, SideNow("failed", "unavailable"))
    controls = battle_controls(state)
    assert controls["may_retry"] == ["b"] and controls["may_regenerate"]
    assert not controls["may_send"] and not controls["may_vote"]
    assert controls["hint"] == "Model B's reply failed. Retry it (or start a new round) before sending another prompt."


def test_both_failed_says_regenerate():
    controls = battle_controls(now(SideNow("failed", "timeout"), SideNow("failed", "")))
    assert controls["may_retry"] == ["a", "b"] and controls["may_regenerate"]
    assert controls["hint"] == (
        "Both replies failed. Press Regenerate (or start a new round) before sending another prompt."
    )


@pytest.mark.parametrize(
    "kind, hint",
    [
        ("too_long", "This conversation is too long for model A, so retrying won't help. "
                     "Start a new round with a shorter prompt."),
        ("misconfigured", "Retrying won't help: model A can't answer until an admin changes its settings. "
                          "Start a new round."),
    ],
)
def test_a_failure_no_retry_can_fix_offers_no_retry(kind, hint):
    state = now(SideNow("failed", kind), DONE)
    controls = battle_controls(state)
    assert controls["may_retry"] == [] and not controls["may_regenerate"] and not controls["may_send"]
    assert controls["hint"] == hint
    assert regenerate_refusal(state, "a").startswith("Retrying won't help")
    assert regenerate_refusal(state, None).startswith("Retrying won't help")
    assert failure_facts(kind) == {"failure_kind": kind, "retryable": False}


def test_a_hopeless_side_does_not_stop_retrying_the_other():
    state = now(SideNow("failed", "unavailable"), SideNow("failed", "too_long"))
    controls = battle_controls(state)
    assert controls["may_retry"] == ["a"] and not controls["may_regenerate"]
    assert controls["hint"].startswith("This conversation is too long for model B")
    assert regenerate_refusal(state, "a") == ""


def test_both_hopeless_names_both_models():
    controls = battle_controls(now(SideNow("failed", "too_long"), SideNow("failed", "too_long")))
    assert controls["hint"].startswith("This conversation is too long for both models")
    controls = battle_controls(now(SideNow("failed", "misconfigured"), SideNow("failed", "misconfigured")))
    assert controls["hint"].startswith("Retrying won't help: neither model can answer")


def test_the_turn_limit_stops_follow_ups_but_not_the_vote():
    state = now(DONE, DONE, index=1, max_turns=2)
    controls = battle_controls(state)
    assert not controls["may_send"] and controls["may_vote"]
    assert controls["hint"] == "This battle has reached its 2 turns; vote, or start a new round."
    assert send_refusal(state) == "A battle has at most 2 turns; vote or start a new round."


def test_a_voted_battle_accepts_nothing():
    state = now(DONE, DONE, voted=True)
    controls = battle_controls(state)
    assert controls == {"may_send": False, "may_vote": False, "may_regenerate": False, "may_retry": [], "hint": ""}
    assert send_refusal(state) == regenerate_refusal(state, None) == "This battle is over; start a new round."
    assert vote_refusal(state) == "This battle already has a vote."


def test_an_unknown_kind_may_be_retried():
    assert failure_facts("") == {"failure_kind": "", "retryable": True}
    assert failure_facts("something-new") == {"failure_kind": "something-new", "retryable": True}


def test_the_rules_speak_of_the_reply_statuses_the_database_stores():
    from arena import rules
    from arena.models import Reply

    assert (rules.DONE, rules.FAILED) == (Reply.Status.DONE, Reply.Status.FAILED)


@pytest.mark.parametrize(
    "kind", ["unavailable", "overloaded", "incomplete", "timeout", "worker_lost", "no_worker", "internal", ""]
)
def test_other_failures_may_be_retried(kind):
    assert failure_facts(kind) == {"failure_kind": kind, "retryable": True}
