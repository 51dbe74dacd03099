"""How far two judges agree on the same items: percentage agreement and Cohen's kappa.

Pure Python, no Django. As the MT-Bench paper reports human–GPT-4 agreement: over every item
both judged ("with ties": A, B and tie are three categories), and over the items neither called
a tie ("without ties"). Kappa corrects the agreement for what two judges voting at random with
their own base rates would reach: (p_o − p_e) / (1 − p_e); undefined (None) when p_e is 1, i.e.
both always give the same single answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

TIE = "tie"


@dataclass(frozen=True)
class Agreement:
    items: int
    agreement: float | None  # share of items on which both gave the same verdict
    kappa: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def agreement_of(pairs: Iterable[tuple[str, str]]) -> Agreement:
    """Agreement over (first judge's verdict, second judge's verdict) pairs, verdicts any labels."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return Agreement(0, None, None)
    observed = sum(x == y for x, y in pairs) / n
    first, second = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    kappa = None if expected >= 1 else (observed - expected) / (1 - expected)
    return Agreement(n, observed, kappa)


def agreement_report(pairs: Iterable[tuple[str, str]]) -> dict[str, dict]:
    """{"with_ties": ..., "without_ties": ...}, each {"items", "agreement", "kappa"}."""
    pairs = list(pairs)
    decisive = [(x, y) for x, y in pairs if x != TIE and y != TIE]
    return {"with_ties": agreement_of(pairs).as_dict(), "without_ties": agreement_of(decisive).as_dict()}
