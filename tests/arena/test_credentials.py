"""Secrets by reference: what a reference may be, and what reading one says when it gives nothing."""

import pytest

from arena.credentials import (
    CredentialMissing,
    api_key_read,
    headers_problems,
    headers_read,
    reference_problem,
    reference_read,
)

SENTINEL = "sk-sentinel-0123456789abcdef"


def test_references_name_an_environment_variable_or_an_absolute_file():
    assert reference_problem("env:OPENAI_API_KEY") is None
    assert reference_problem("file:/run/secrets/openai") is None
    assert "must be env:VARIABLE or file:/path" in reference_problem(SENTINEL)
    assert "not an environment variable name" in reference_problem("env:sk-live-1")
    assert "absolute path" in reference_problem("file:secrets/key")


def test_a_pasted_value_is_refused_without_being_echoed_whole():
    problem = reference_problem("Bearer " + SENTINEL * 3)
    assert SENTINEL * 3 not in problem and len(problem) < 120


def test_header_references_are_checked_and_authorization_is_the_api_keys():
    assert headers_problems({"OpenAI-Organization": "env:OPENAI_ORG", "X-Title": "file:/run/title"}) == []
    problems = headers_problems({"Bad Name": "env:X", "Authorization": "env:TOKEN", "X-Org": "org-1", "X-N": 3})
    assert len(problems) == 4
    assert headers_problems(["env:X"]) and headers_problems(None)


def test_reading_gives_the_value_or_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("ARENA_TEST_KEY", SENTINEL + "\n")
    assert reference_read("env:ARENA_TEST_KEY") == SENTINEL
    secret = tmp_path / "key"
    secret.write_text(SENTINEL + "\n")
    assert api_key_read(env="", file=str(secret)) == SENTINEL
    assert api_key_read(env="", file="") == ""  # no key: a server without one

    monkeypatch.delenv("ARENA_TEST_KEY")
    missing = "Its API key is missing: environment variable ARENA_TEST_KEY is not set"
    with pytest.raises(CredentialMissing, match=missing):
        api_key_read(env="ARENA_TEST_KEY", file="")
    with pytest.raises(CredentialMissing, match=r"secret file .*/absent can't be read"):
        reference_read(f"file:{tmp_path / 'absent'}")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(CredentialMissing, match="is empty"):
        reference_read(f"file:{tmp_path / 'empty'}")
    with pytest.raises(CredentialMissing, match="Its header X-Org is missing"):
        headers_read({"X-Org": "env:ARENA_TEST_ORG_UNSET"})
