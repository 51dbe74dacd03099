"""Flagged votes: screened as they are counted, kept out of the ratings, listed for review in the
admin with their reasons; include, exclude and recount change the leaderboard. The voter is never told."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

from arena import services
from arena.clients import ClientIdentity
from arena.leaderboard import leaderboard_snapshot
from arena.models import Reply, Vote
from tests.finished import turn_finish, vote_uncounted

pytestmark = pytest.mark.django_db

DETECTING = override_settings(ARENA_VOTE_DETECTION=True, ARENA_VOTE_MIN_SECONDS=0, ARENA_BATTLES_PER_MINUTE=100)


def member(name: str) -> ClientIdentity:
    user = User.objects.create_user(name)
    return ClientIdentity(client_id=f"{name}-hash", ip_hash="office", user_id=user.pk)


def loyal_votes(voter: ClientIdentity, model_name: str, n: int) -> list[Vote]:
    """n votes, each for whichever side `model_name` is on."""
    out = []
    for _ in range(n):
        turn = services.battle_start(client=voter, text="Q")
        turn_finish(turn)
        side = "a" if turn.battle.model_a.name == model_name else "b"
        out.append(services.vote_cast(battle_id=turn.battle_id, client=voter, outcome=side))
    return out


def votes_of(name: str) -> int:
    return next((m["votes"] for m in leaderboard_snapshot()["models"] if m["model"] == name), 0)


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@DETECTING
def test_a_loyal_voter_is_flagged_and_their_votes_wait_out_of_the_ratings(chat_models):
    mallory = member("mallory")
    votes = loyal_votes(mallory, "zephyr-7b-beta", 12)
    services.votes_count_pending()
    flagged = Vote.objects.filter(id__in=[v.id for v in votes], review=Vote.Review.PENDING)
    assert flagged.count() == 12  # every one of the pair's votes, the early ones too
    assert all(f"loyal:{chat_models[0].id}" in v.flag_reasons for v in flagged)
    assert votes_of("zephyr-7b-beta") < 12  # counted before the test crossed, then taken out...
    services.leaderboard_rebuild()  # ...by the recount counting queued
    assert votes_of("zephyr-7b-beta") == 0


@DETECTING
def test_an_honest_voter_is_not_flagged(chat_models):
    alice = member("alice")
    for outcome in ["a", "b", "tie", "b", "a", "bothbad", "a", "b", "tie", "a", "b", "b"]:
        vote_uncounted(alice, outcome)
    services.votes_count_pending()
    assert not Vote.objects.exclude(review=Vote.Review.NONE).exists()
    assert votes_of("zephyr-7b-beta") == 12


@override_settings(ARENA_VOTE_DETECTION=True, ARENA_VOTE_MIN_SECONDS=2)
def test_a_vote_cast_right_after_the_replies_finished_is_flagged(chat_models, alice):
    slow, _ = vote_uncounted(alice, "a")
    Reply.objects.filter(turn__battle=slow.battle).update(finished_at=timezone.now() - datetime.timedelta(seconds=30))
    fast, _ = vote_uncounted(alice, "b")
    services.votes_count_pending()
    assert Vote.objects.get(id=fast.id).flag_reasons == ["too_fast"]
    assert Vote.objects.get(id=slow.id).review == Vote.Review.NONE
    assert votes_of("zephyr-7b-beta") == 1


@override_settings(ARENA_VOTE_DETECTION=False, ARENA_BATTLES_PER_MINUTE=100)
def test_with_detection_off_nothing_is_screened(chat_models):
    loyal_votes(member("mallory"), "zephyr-7b-beta", 12)
    services.votes_count_pending()
    assert votes_of("zephyr-7b-beta") == 12 and not Vote.objects.filter(review=Vote.Review.PENDING).exists()


@DETECTING
def test_the_review_list_shows_reasons_and_include_exclude_recount_move_the_leaderboard(chat_models, admin_client):
    votes = loyal_votes(member("mallory"), "zephyr-7b-beta", 12)
    services.votes_count_pending()
    services.leaderboard_rebuild()
    page = admin_client.get("/admin/arena/flaggedvote/").content.decode()
    assert "keeps picking “zephyr-7b-beta” against the odds" in page and "mallory" in page
    ids = [str(v.id) for v in votes[:6]]
    answer = admin_client.post("/admin/arena/flaggedvote/", {"action": "votes_include", "_selected_action": ids})
    assert answer.status_code == 302
    services.leaderboard_rebuild()  # what the queued recount runs
    assert votes_of("zephyr-7b-beta") == 6
    admin_client.post("/admin/arena/flaggedvote/", {"action": "votes_exclude", "_selected_action": ids[:2]})
    services.leaderboard_rebuild()
    assert votes_of("zephyr-7b-beta") == 4
    # a decision stands: counting again does not flag the included votes back
    services.votes_count_pending()
    assert Vote.objects.filter(review=Vote.Review.INCLUDED).count() == 4
    assert admin_client.post("/admin/arena/flaggedvote/", {"action": "recount", "_selected_action": ids[:1]}
                             ).status_code == 302


def test_the_review_list_is_for_admins_only(chat_models):
    staff_less = Client()
    staff_less.force_login(User.objects.create_user("ada"))
    assert staff_less.get("/admin/arena/flaggedvote/").status_code == 302


@DETECTING
def test_the_voter_is_not_told(chat_models):
    mallory = member("mallory")
    votes = loyal_votes(mallory, "zephyr-7b-beta", 12)
    services.votes_count_pending()
    assert Vote.objects.get(id=votes[-1].id).review == Vote.Review.PENDING
    # The reveal and a later snapshot look as for any vote; the flags live in the admin only.
    from arena.selectors import battle_state_for_client

    state = str(battle_state_for_client(battle_id=votes[-1].battle_id, client=mallory))
    assert "flag" not in state and "review" not in state and "loyal" not in state


@override_settings(ARENA_NEW_ACCOUNT_HOLD_VOTES=3)
def test_a_new_accounts_votes_are_held_until_it_has_cast_enough(chat_models):
    newcomer = member("newcomer")
    vote_uncounted(newcomer, "a")
    vote_uncounted(newcomer, "b")
    services.votes_count_pending()
    assert votes_of("zephyr-7b-beta") == 0
    vote_uncounted(newcomer, "tie")
    services.votes_count_pending()
    assert votes_of("zephyr-7b-beta") == 3
