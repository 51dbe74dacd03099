"""A reply's style as the public arena counts it (arena.style)."""

from __future__ import annotations

import pytest

from arena.style import (
    Style,
    StyleMetadataError,
    markdown_counts,
    style_from_metadata,
    style_of_answers,
    tokens_estimate,
)

ANSWER = """# Plan
Some **bold** words and __more bold__, but not ** this **
## Steps
1. first
2. second
- a bullet
  * a nested bullet
+ plus
#not a header (no space)
####### seven hashes is not a header

```python
# a comment, not a header
- not a list item
**not bold either**
```
"""


def test_headers_lists_and_bold_are_counted_outside_code_blocks():
    counts = markdown_counts(ANSWER)
    assert counts.headers == 2
    assert counts.lists == 5
    assert counts.bold == 3  # "** this **" counts: FastChat's pattern allows the spaces


def test_a_code_block_hides_its_markdown_and_only_its_own():
    text = "```\n# x\n```\n# y\n```\n- z\n```\n- w"
    assert markdown_counts(text) == (1, 1, 0)


def test_tokens_are_estimated_as_words_and_punctuation():
    assert tokens_estimate("Hello, world! It's 2 o'clock.") == 12
    assert tokens_estimate("") == 0


def test_a_side_s_style_sums_its_answers():
    style = style_of_answers(["# A\n- x", "**b** c"])
    assert style == Style(tokens=tokens_estimate("# A\n- x") + tokens_estimate("**b** c"), headers=1, lists=1, bold=1)


def test_conv_metadata_is_taken_as_given_dicts_summed():
    meta = {
        "sum_assistant_a_tokens": 412, "header_count_a": {"h1": 1, "h2": 3, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
        "list_count_a": {"ordered": 2, "unordered": 5}, "bold_count_a": {"**": 4, "__": 1},
        "sum_assistant_b_tokens": 90, "header_count_b": 0, "list_count_b": 1, "bold_count_b": 0,
    }
    assert style_from_metadata(meta, "a") == Style(412, 4, 7, 5)
    assert style_from_metadata(meta, "b") == Style(90, 0, 1, 0)
    assert style_from_metadata({"turns": 1}, "a") is None


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, {"h1": "x"}])
def test_bad_conv_metadata_is_refused_by_name(bad):
    with pytest.raises(StyleMetadataError, match=r"conv_metadata\.header_count_a"):
        style_from_metadata({"sum_assistant_a_tokens": 3, "header_count_a": bad}, "a")
