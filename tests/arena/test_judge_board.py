"""A judge model's leaderboard and its agreement with people's votes, read from the database."""

from __future__ import annotations

import pytest
from django.test import override_settings

from arena.judge_board import agreement_with_humans, judge_items, judge_leaderboard, judges_known
from arena.leaderboard import counts_load
from arena.models import Battle, ChatModel, Reply, Turn, Vote
from arena.services import leaderboard_rebuild

pytestmark = pytest.mark.django_db
JUDGE = "model:gpt-judge"


@pytest.fixture
def trio():
    return [ChatModel.objects.create(name=n, endpoint_url="", enabled=False) for n in ("m1", "m2", "m3")]


def battle(a, b, outcome, prompts=("Q1",), judge="", client="person"):
    made = Battle.objects.create(model_a=a, model_b=b, client_id=client, judge=judge)
    for i, prompt in enumerate(prompts):
        turn = Turn.objects.create(battle=made, index=i, prompt=prompt)
        for side, model in (("a", a), ("b", b)):
            Reply.objects.create(turn=turn, side=side, model=model, status=Reply.Status.DONE, text="x")
    Vote.objects.create(battle=made, outcome=outcome, client_id=client, reasoning="because" if judge else "")
    return made


def test_both_orders_combine_agreeing_or_into_a_tie(trio):
    m1, m2, m3 = trio
    battle(m1, m2, "a", judge=JUDGE)  # m1 wins as A ...
    battle(m2, m1, "b", judge=JUDGE)  # ... and as B: consistent
    battle(m1, m3, "a", judge=JUDGE)  # m1 as A ...
    battle(m3, m1, "a", judge=JUDGE)  # ... m3 as A: the judge favours position A, a tie
    battle(m2, m3, "b", judge=JUDGE, prompts=("Q2",))  # one order only (the other invalid)
    assert judge_items(JUDGE) == {
        (("Q1",), m1.id, m2.id): "a",
        (("Q1",), m1.id, m3.id): "tie",
        (("Q2",), m2.id, m3.id): "b",
    }


def test_agreement_with_people_on_the_same_prompts_and_pairs(trio):
    m1, m2, m3 = trio
    battle(m1, m2, "a", judge=JUDGE)
    battle(m2, m1, "b", judge=JUDGE)  # judge: m1 over m2 on Q1
    battle(m1, m3, "a", judge=JUDGE)
    battle(m3, m1, "a", judge=JUDGE)  # judge: tie m1-m3 on Q1
    # People: on Q1 m1-m2 three votes (two agree, one as B-wins from the other side), m1-m3 one
    # both-bad (a tie: agrees); another prompt, and another pair, don't count.
    battle(m1, m2, "a")  # m1 wins: agrees
    battle(m2, m1, "b")  # m1 wins: agrees
    battle(m2, m1, "a")  # m2 wins: disagrees
    battle(m3, m1, "bothbad")  # tie: agrees
    battle(m1, m2, "b", prompts=("Another question",))
    battle(m2, m3, "a")
    report = agreement_with_humans(JUDGE)
    # With ties: 4 items, 3 agree. Person (m-lower as A): a 2, b 1, tie 1; judge: a 3, tie 1.
    # p_e = (2*3 + 1*1) / 16 = 7/16; kappa = (3/4 - 7/16) / (9/16) = 5/9.
    assert report["with_ties"] == {"items": 4, "agreement": pytest.approx(0.75), "kappa": pytest.approx(5 / 9)}
    # Without ties: 3 items, 2 agree; person a 2, b 1; judge a 3: p_e = 6/9, kappa = (2/3 - 2/3) / (1/3) = 0.
    assert report["without_ties"] == {"items": 3, "agreement": pytest.approx(2 / 3), "kappa": pytest.approx(0.0)}


def test_a_judge_s_votes_are_rated_apart_from_people_s_unless_chosen(trio):
    m1, m2, _ = trio
    for _ in range(3):
        battle(m1, m2, "a", judge=JUDGE)
    battle(m2, m1, "a")
    leaderboard_rebuild()
    people = counts_load()
    assert people.counts.sum() == 1  # the person's vote only
    board = judge_leaderboard(JUDGE)
    assert board["total_votes"] == 3 and board["judge"] == JUDGE
    assert [row["model"] for row in board["models"]] == ["m1", "m2"]  # the judge's ranking, not people's
    assert judges_known() == [JUDGE]
    with override_settings(ARENA_RATINGS_INCLUDE_JUDGED=True):
        leaderboard_rebuild()
        assert counts_load().counts.sum() == 4


def test_a_judge_s_leaderboard_says_it_has_no_style_or_category_views(trio, client):
    m1, m2, _ = trio
    battle(m1, m2, "a", judge=JUDGE)
    assert client.get(f"/api/leaderboard/?judge={JUDGE}").status_code == 200
    for query in ("style=1", "category=coding"):
        response = client.get(f"/api/leaderboard/?judge={JUDGE}&{query}")
        assert response.status_code == 400
        assert "no style control or categories" in response.json()["error"]
        page = client.get(f"/leaderboard/?judge={JUDGE}&{query}")
        assert page.status_code == 400 and "no style control or categories" in page.content.decode()
