"""What a failure kind implies (inference.failures)."""

import pytest

from inference.failures import FailureKind, GenerationFailure


@pytest.mark.parametrize("kind", [FailureKind.TOO_LONG, FailureKind.MISCONFIGURED])
def test_a_conversation_too_long_or_a_misconfigured_model_fails_the_same_way_again(kind):
    assert kind.permanent and GenerationFailure(kind, "x").permanent
    assert not kind.about_server  # one conversation or one setting, not the server's health


@pytest.mark.parametrize(
    "kind",
    [FailureKind.OVERLOADED, FailureKind.UNAVAILABLE, FailureKind.DISCONNECTED, FailureKind.STALLED,
     FailureKind.TIMEOUT, FailureKind.INCOMPLETE],
)
def test_failures_of_the_server_count_against_its_health_and_may_pass(kind):
    assert kind.about_server and not kind.permanent


@pytest.mark.parametrize(
    "kind", [FailureKind.GENERATION, FailureKind.VALIDATION, FailureKind.PROTOCOL, FailureKind.INTERNAL,
             FailureKind.NO_WORKER, FailureKind.WORKER_LOST],
)
def test_other_failures_neither_repeat_for_sure_nor_count_against_the_server(kind):
    assert not kind.permanent and not kind.about_server


def test_kinds_are_the_strings_stored_with_a_reply():
    assert FailureKind("too_long") is FailureKind.TOO_LONG and FailureKind.TOO_LONG == "too_long"
    failure = GenerationFailure(FailureKind.OVERLOADED, "The model server is overloaded.", retryable=True)
    assert (failure.kind, failure.message, failure.retryable, str(failure)) == (
        "overloaded", "The model server is overloaded.", True, "The model server is overloaded."
    )
