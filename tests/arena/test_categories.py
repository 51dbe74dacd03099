"""Each category rule on hand-written battles (arena.categories)."""

from __future__ import annotations

import numpy as np
import pytest

from arena.categories import (
    UNKNOWN_LANGUAGE,
    UnknownCategory,
    battle_traits,
    category_mask,
    category_names,
    dedup_mask,
    holds_code,
    language_of,
    prompt_digest,
    refuses,
    trait_arrays,
)


@pytest.mark.parametrize(
    "texts",
    [
        ["Why does this fail?\n```\nprint(x\n```"],
        ["def add(a, b):\n    return a + b\nprint(add(1, 2))"],
        ["Fix it:\nint main() {\n  return 0;\n}"],
        ["SELECT name FROM users WHERE id = 1;\nSELECT 1;"],
        ["What is wrong?", "Here is the fix:\n```js\nconst x = 1;\n```"],
    ],
)
def test_a_conversation_holding_code_is_coding(texts):
    assert holds_code(texts)


@pytest.mark.parametrize(
    "texts",
    [
        ["Write a poem about the sea."],
        ["What is the capital of France?", "Paris is the capital of France."],
        ["I like apples; they are sweet.", "Sure."],  # one line ending in ; is not code
    ],
)
def test_prose_is_not_coding(texts):
    assert not holds_code(texts)


@pytest.mark.parametrize(
    "answer",
    [
        "I'm sorry, but I can't help with that.",
        "I’m sorry, but I cannot assist with this request.",
        "I cannot provide instructions for that.",
        "As an AI language model, I cannot create that content.",
        "Sorry, I am unable to help with that.",
        "Unfortunately, I can't fulfill this request.",
    ],
)
def test_an_answer_that_opens_by_declining_is_a_refusal(answer):
    assert refuses(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "Sure! Here is a poem.",
        "I can help with that: first, open the file.",
        "The function cannot return None because it always assigns x.",
        "Here is why I'm sorry the code is slow: it loops twice.",
    ],
)
def test_an_answer_that_helps_is_not_a_refusal(answer):
    assert not refuses(answer)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How do I sort a list of numbers in Python quickly?", "english"),
        ("Wie funktioniert die Photosynthese bei Pflanzen?", "german"),
        ("Écris une fonction qui trie une liste de nombres.", "french"),
        ("写一个快速排序算法并解释它的时间复杂度", "chinese"),
        ("Привет, как дела? Расскажи мне о погоде.", "russian"),
        ("", UNKNOWN_LANGUAGE),
        ("12345 67890", UNKNOWN_LANGUAGE),
    ],
)
def test_the_first_prompt_s_language(text, language):
    assert language_of(text) == language


def test_traits_of_a_battle():
    long_prompt = " ".join(["Please tell me about the history of the city"] * 50)[:-5]
    refusing = ["I'm sorry, but I can't help with that.", "x"]
    traits = battle_traits([long_prompt, "and one more"], ["ok", "fine"], refusing)
    assert traits.turns == 2 and traits.query_tokens == 449 + 3
    assert traits.refusal and not traits.coding and traits.language == "english"
    assert traits.prompt_digest == prompt_digest([long_prompt, "and one more"])
    given = battle_traits(["Hi"], ["Hello"], ["Hey"], query_tokens=7, language="german")
    assert given.query_tokens == 7 and given.language == "german"


def _arrays(*traits):
    return trait_arrays(list(traits))


def test_thresholds_of_the_long_short_and_multi_turn_categories():
    rows = _arrays(
        battle_traits([" ".join(["w"] * 500)], ["a"], ["b"]),
        battle_traits([" ".join(["w"] * 499)], ["a"], ["b"]),
        battle_traits(["one two three four"], ["a"], ["b"]),
        battle_traits(["one two three four five", "again"], ["a"], ["b"]),
    )
    assert category_mask("long_query", rows).tolist() == [True, False, False, False]
    assert category_mask("no_short", rows).tolist() == [True, True, False, True]
    assert category_mask("multi_turn", rows).tolist() == [False, False, False, True]
    assert category_mask("overall", rows).all()
    assert category_mask("english", rows).sum() >= 2 and not category_mask("klingon", rows).any()


def test_refusals_and_coding_as_categories():
    rows = _arrays(
        battle_traits(["Write code"], ["```py\nx = 1\n```"], ["Sure"]),
        battle_traits(["Tell me a joke"], ["I cannot help with that request."], ["Why did..."]),
    )
    assert category_mask("coding", rows).tolist() == [True, False]
    assert category_mask("no_refusal", rows).tolist() == [True, False]


def test_deduplication_keeps_a_too_frequent_prompt_only_as_often_as_the_percentile_allows():
    # 2000 prompts seen once or twice, one seen 400 times: the 99.99th percentile of the
    # frequencies is about 2, so the repeated prompt keeps 2 of its battles, everything else stays.
    digests = [f"p{i}" for i in range(2000)] + [f"p{i}" for i in range(500)] + ["hello"] * 400
    keep = dedup_mask(np.array(digests))
    cutoff = np.quantile(np.unique(digests, return_counts=True)[1], 0.9999)
    hello = np.array(digests) == "hello"
    assert keep[hello].sum() == int(cutoff) and keep[~hello].all()
    assert (dedup_mask(np.array(digests)) == keep).all(), "seeded"


def test_an_unknown_category_name_is_refused_and_languages_are_offered_by_frequency():
    rows = _arrays(
        battle_traits(["Wie geht es dir heute, mein Freund?"], ["a"], ["b"]),
        battle_traits(["How are you doing today, my friend?"], ["a"], ["b"]),
        battle_traits(["What is the weather like in London?"], ["a"], ["b"]),
    )
    names = category_names(rows)
    assert names[:7] == ["overall", "coding", "long_query", "multi_turn", "no_short", "no_refusal", "dedup"]
    assert names[7:] == ["english", "german"]
    with pytest.raises(UnknownCategory, match="unknown category"):
        category_mask("Not A Name!", rows)
