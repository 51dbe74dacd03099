"""Which two models fight: the first by sampling weight, the second by weight among the rest,
then sides shuffled, as the reference arena does."""

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def pair_draw(candidates: Sequence[T], weights: Sequence[float], rng: random.Random) -> tuple[T, T]:
    """Two distinct candidates, weighted; raises ValueError with fewer than two drawable ones."""
    pool = [(c, w) for c, w in zip(candidates, weights, strict=True) if w > 0]
    if len(pool) < 2:
        raise ValueError("At least two models with a positive weight are needed")
    first_index = rng.choices(range(len(pool)), weights=[w for _, w in pool])[0]
    first = pool.pop(first_index)[0]
    second = rng.choices([c for c, _ in pool], weights=[w for _, w in pool])[0]
    return (first, second) if rng.random() < 0.5 else (second, first)
