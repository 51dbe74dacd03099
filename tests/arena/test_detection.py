"""The likelihood-ratio test on simulated voters (arena/detection.py, pure numpy)."""

import numpy as np

from arena import detection
from arena.detection import CastVote

RATINGS = {i: r for i, r in enumerate(np.linspace(1250, 1000, 10))}


def honest_votes(rng, voter: str, n: int, ties: float = 0.3) -> list[CastVote]:
    """A voter who votes as the leaderboard predicts (its true ratings)."""
    out = []
    for i in range(n):
        a, b = (int(x) for x in rng.choice(10, 2, replace=False))
        p = detection.win_probability(RATINGS[a], RATINGS[b])
        outcome = 2 if rng.random() < ties else (0 if rng.random() < p else 1)
        out.append(CastVote(i, voter, a, b, outcome))
    return out


def loyal_votes(rng, voter: str, model: int, n: int, accuracy: float = 1.0) -> list[CastVote]:
    out = []
    for i in range(n):
        other = int(rng.choice([m for m in RATINGS if m != model]))
        picks_model = rng.random() < accuracy
        out.append(CastVote(i, voter, model, other, 0 if picks_model else 1))
    return out


def battles_to_flag(votes: list[CastVote], model: int) -> int | None:
    for n in range(1, len(votes) + 1):
        if (votes[0].voter, model) in detection.loyal_pairs(votes[:n], RATINGS):
            return n
    return None


def test_a_loyal_voter_for_an_even_odds_model_is_flagged_within_ten_of_its_battles():
    rng = np.random.default_rng(1)
    # model 5 sits mid-table: against a random opponent the leaderboard gives it about even odds
    flagged_at = [battles_to_flag(loyal_votes(rng, f"v{i}", 5, 30), 5) for i in range(100)]
    assert all(n is not None for n in flagged_at)
    assert np.percentile(flagged_at, 90) <= 10


def test_at_most_one_honest_voter_in_a_hundred_is_flagged():
    rng = np.random.default_rng(2)
    flagged = sum(bool(detection.loyal_pairs(honest_votes(rng, f"h{i}", 100), RATINGS)) for i in range(1000))
    assert flagged <= 10


def test_a_voter_loyal_three_times_in_four_is_caught_by_the_mild_alternative():
    rng = np.random.default_rng(3)
    caught = sum(battles_to_flag(loyal_votes(rng, f"m{i}", 5, 120, accuracy=0.8), 5) is not None for i in range(50))
    assert caught >= 45


def test_honest_history_does_not_hide_a_later_switch():
    rng = np.random.default_rng(4)
    history = honest_votes(rng, "x", 200)
    assert not detection.loyal_pairs(history, RATINGS)
    switch = [CastVote(1000 + v.vote_id, "x", v.model_a, v.model_b, v.outcome) for v in loyal_votes(rng, "x", 5, 12)]
    assert ("x", 5) in detection.loyal_pairs(history + switch, RATINGS)


def test_flagging_takes_every_vote_of_the_voter_on_the_models_battles():
    votes = [CastVote(i, "x", 5, 9 - (i % 3), 0) for i in range(12)] + [CastVote(99, "x", 1, 2, 0)]
    flagged = detection.loyal_votes(votes, RATINGS)
    assert set(flagged) == set(range(12)) and flagged[0] == 5


def test_a_winner_the_leaderboard_expects_to_win_needs_more_to_be_suspected():
    # beating a much weaker model is what an honest voter does: smaller steps
    assert detection.loyalty_increments("won", 0.9, 0.3)[0] < detection.loyalty_increments("won", 0.5, 0.3)[0]
    assert detection.loyalty_increments("lost", 0.5, 0.3)[0] < 0


def test_too_fast():
    assert detection.too_fast(0.5, 2.0) and not detection.too_fast(5.0, 2.0) and not detection.too_fast(None, 2.0)
