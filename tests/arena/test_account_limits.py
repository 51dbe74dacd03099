"""Caps per account and per address: an account's daily votes; an office's address shared by
ARENA_ADDRESS_SHARERS people, each at the per-session rate; open mode as before."""

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from arena import services
from arena.clients import ClientIdentity
from arena.errors import RateLimited
from arena.personal import personal_leaderboard
from tests.finished import battle_finished

pytestmark = pytest.mark.django_db


def member(name: str, address: str = "office") -> ClientIdentity:
    user = User.objects.create_user(name)
    return ClientIdentity(client_id=f"{name}-hash", ip_hash=address, user_id=user.pk)


@override_settings(ARENA_ACCOUNT_VOTES_PER_DAY=3, ARENA_BATTLES_PER_MINUTE=100)
def test_an_account_gets_its_daily_votes_and_no_more(chat_models):
    ada = member("ada")
    for _ in range(3):
        turn = battle_finished(ada)
        services.vote_cast(battle_id=turn.battle_id, client=ada, outcome="a")
    turn = battle_finished(ada)
    with pytest.raises(RateLimited, match="today's vote limit"):
        services.vote_cast(battle_id=turn.battle_id, client=ada, outcome="a")
    other = member("bob")  # same office, own cap
    turn = battle_finished(other)
    assert services.vote_cast(battle_id=turn.battle_id, client=other, outcome="a").user_id == other.user_id


@override_settings(ARENA_BATTLES_PER_MINUTE=2, ARENA_ADDRESS_SHARERS=3)
def test_people_behind_one_address_each_start_battles_at_the_per_session_rate(chat_models):
    staff = [member(f"staff{i}") for i in range(3)]
    for person in staff:
        for _ in range(2):
            services.battle_start(client=person, text="Q")
    with pytest.raises(RateLimited):
        services.battle_start(client=member("fourth"), text="Q")  # the address is full: 3 × 2


@override_settings(ARENA_BATTLES_PER_MINUTE=2, ARENA_ADDRESS_SHARERS=3)
def test_one_person_behind_the_office_address_keeps_the_per_session_rate(chat_models):
    ada = member("ada")
    for _ in range(2):
        services.battle_start(client=ada, text="Q")
    with pytest.raises(RateLimited):
        services.battle_start(client=ada, text="Q")


@override_settings(ARENA_BATTLES_PER_MINUTE=2, ARENA_ADDRESS_SHARERS=3)
def test_without_accounts_an_address_holds_to_the_per_session_rate(chat_models):
    for i in range(2):
        services.battle_start(client=ClientIdentity(client_id=f"s{i}", ip_hash="cafe"), text="Q")
    with pytest.raises(RateLimited):
        services.battle_start(client=ClientIdentity(client_id="s9", ip_hash="cafe"), text="Q")


@override_settings(ARENA_BATTLES_PER_MINUTE=100)
def test_a_personal_leaderboard_after_twenty_votes_shrunk_towards_the_global_one(chat_models):
    ada = member("ada")
    for i in range(20):
        turn = battle_finished(ada)
        assert personal_leaderboard(user_id=ada.user_id)["shown"] is (i >= 20)
        side = "a" if turn.battle.model_a.name == "mistral-7b-instruct" else "b"
        services.vote_cast(battle_id=turn.battle_id, client=ada, outcome=side)
    mine = personal_leaderboard(user_id=ada.user_id)
    assert mine["shown"] and mine["votes"] == 20
    top, second = mine["models"]
    assert top["model"] == "mistral-7b-instruct" and top["rank"] == 1
    # 20 straight wins, yet shrunk: far from the unbounded plain fit
    assert 1000 < top["rating"] < 1300 and abs(top["rating"] + second["rating"] - 2000) < 1
