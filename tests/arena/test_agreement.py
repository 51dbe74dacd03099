"""Agreement figures on a hand-computed example (the MT-Bench paper's two setups)."""

from __future__ import annotations

import pytest

from arena.agreement import agreement_of, agreement_report

# Ten items, (person, judge):
#   a/a x3, b/b x2, tie/tie x1, a/b x1, b/tie x1, tie/a x1, a/tie x1
PAIRS = [("a", "a")] * 3 + [("b", "b")] * 2 + [("tie", "tie")] + [("a", "b"), ("b", "tie"), ("tie", "a"), ("a", "tie")]


def test_with_ties_by_hand():
    # Agreement 6/10. Person: a 5, b 3, tie 2; judge: a 4, b 3, tie 3.
    # p_e = (5*4 + 3*3 + 2*3) / 100 = 0.35; kappa = (0.6 - 0.35) / 0.65 = 0.384615...
    result = agreement_of(PAIRS)
    assert result.items == 10
    assert result.agreement == pytest.approx(0.6)
    assert result.kappa == pytest.approx(0.25 / 0.65)


def test_without_ties_keeps_the_items_neither_called_a_tie():
    # Left: a/a x3, b/b x2, a/b x1 -> agreement 5/6. Person: a 4, b 2; judge: a 3, b 3.
    # p_e = (4*3 + 2*3) / 36 = 0.5; kappa = (5/6 - 0.5) / 0.5 = 2/3.
    report = agreement_report(PAIRS)
    assert report["without_ties"] == {"items": 6, "agreement": pytest.approx(5 / 6), "kappa": pytest.approx(2 / 3)}
    assert report["with_ties"]["items"] == 10


def test_no_items_and_a_single_shared_answer_have_no_kappa():
    assert agreement_of([]).as_dict() == {"items": 0, "agreement": None, "kappa": None}
    same = agreement_of([("a", "a")] * 4)
    assert same.agreement == 1.0 and same.kappa is None


def test_complete_disagreement_is_below_chance():
    result = agreement_of([("a", "b"), ("b", "a")])
    assert result.agreement == 0.0 and result.kappa == pytest.approx(-1.0)
