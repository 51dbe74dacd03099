"""What the sampling policy (arena.sampling) reads from the database: each model's counted votes
(for the new-model boost) and every pair's gain (for the adaptive policy), from the pair counts.

Computed at every leaderboard refresh, from the counts that refresh read, and cached; a battle
start then costs a cache read and a D x D sum (bench/sampling.py times both). A cache miss (Redis
restarted) recomputes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from arena import ratings, sampling
from arena.leaderboard import Counts, counts_load
from arena.models import ChatModel

# The key names the state's shape: a state cached by an older version is never used.
CACHE_PAIRING = "pairing:state:1"


@dataclass(frozen=True)
class PairingState:
    ids: list[int]  # the models covered, in the order of `gains`
    votes: dict[int, int]  # counted votes per model id (absent: none)
    gains: np.ndarray  # (len(ids), len(ids)), arena.sampling.pair_gains

    def gains_for(self, model_ids: Sequence[int]) -> np.ndarray:
        """The gains between these models. A model the state doesn't cover (added since it was
        computed) has had no vote: its pairs get the largest gain there is."""
        index = {model_id: i for i, model_id in enumerate(self.ids)}
        at = np.array([index.get(model_id, -1) for model_id in model_ids], dtype=np.intp)
        known = np.flatnonzero(at >= 0)
        top = float(self.gains.max()) if self.gains.size else 1.0
        out = np.full((at.size, at.size), top if top > 0 else 1.0)
        out[np.ix_(known, known)] = self.gains[np.ix_(at[known], at[known])]
        np.fill_diagonal(out, 0.0)
        return out


def pairing_state(loaded: Counts | None = None) -> PairingState:
    """From the counts (read unless given), over the rated models and every enabled one."""
    loaded = loaded or counts_load()
    rated = set(loaded.ids)
    extra = sorted(set(ChatModel.objects.filter(enabled=True).values_list("id", flat=True)) - rated)
    counts = np.pad(loaded.counts, ((0, len(extra)), (0, len(extra)), (0, 0)))
    votes = ratings.votes_per_model(loaded.counts) if loaded.ids else np.zeros(0)
    return PairingState(
        ids=loaded.ids + extra,
        votes={model_id: int(round(n)) for model_id, n in zip(loaded.ids, votes, strict=True)},
        gains=sampling.pair_gains(counts),
    )
