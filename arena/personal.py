"""A signed-in voter's own leaderboard: Bradley–Terry on their votes, shrunk towards the global
ratings while they have few (arena.ratings.fit_bt_shrunk). Every vote of theirs counts here,
flagged or not, so the page can't tell them which were flagged."""

from __future__ import annotations

import numpy as np

from arena import ratings
from arena.models import Vote
from arena.selectors import leaderboard_current

# Shown from this many votes on (Copilot Arena shows one after 20); fewer say how many to go.
PERSONAL_MIN_VOTES = 20


def personal_leaderboard(*, user_id: int) -> dict:
    rows = list(
        Vote.objects.filter(user_id=user_id, battle__anonymous=True)
        .values_list("battle__model_a__name", "battle__model_b__name", "outcome")
    )
    glob = {row["model"]: row["rating"] for row in leaderboard_current().get("models", [])}
    names = sorted(set(glob) | {r[0] for r in rows} | {r[1] for r in rows})
    index = {name: i for i, name in enumerate(names)}
    counts = np.zeros((len(names), len(names), ratings.N_OUTCOMES))
    for a, b, outcome in rows:
        counts[index[a], index[b], Vote.Outcome(outcome).code] += 1
    prior = np.array([glob.get(name, ratings.INITIAL_RATING) for name in names])
    mine = ratings.fit_bt_shrunk(counts, prior) if names else np.zeros(0)
    order = np.argsort(-mine, kind="stable")
    models = [
        {"model": names[i], "rating": round(float(mine[i]), 1), "global_rating": glob.get(names[i]),
         "rank": rank, "votes": int(counts[i].sum() + counts[:, i].sum())}
        for rank, i in enumerate(order, start=1)
    ]
    return {
        "votes": len(rows), "min_votes": PERSONAL_MIN_VOTES, "shown": len(rows) >= PERSONAL_MIN_VOTES,
        "models": models if len(rows) >= PERSONAL_MIN_VOTES else [],
    }
