"""What the sampling policy reads from the counts (arena.pairing), and what it then does to the
battles started: the new-model boost and the adaptive draw, end to end on PostgreSQL."""

import numpy as np
import pytest
from django.core.cache import cache
from django.test import override_settings

from arena import ratings, sampling, services
from arena.leaderboard import counts_load
from arena.models import ChatModel, PairCount
from arena.pairing import CACHE_PAIRING, pairing_state
from arena.tasks import leaderboard_live_refresh

# The refresh these tests run would queue a bootstrap for the real worker that a later test's
# counts could meet; none is needed here.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_bootstrap")]


@pytest.fixture
def no_bootstrap(settings):
    settings.ARENA_BOOTSTRAP_ROUNDS = 0


@pytest.fixture
def three(chat_models, devserver_urls) -> list[ChatModel]:
    third = ChatModel.objects.create(name="third", endpoint_url=devserver_urls[1], template="chatml")
    return [*chat_models, third]


def votes_add(a: ChatModel, b: ChatModel, n: int) -> None:
    """n counted votes of a over b (weight 1 each), as counting would leave them."""
    PairCount.objects.create(model_a=a, model_b=b, outcome=ratings.A_WINS, count=n, weight=n, weight_sq=n)


def pair_chances(client, pairs: int = 3) -> dict[frozenset, float]:
    """The recorded chance of each pair, from battle starts until every one of the `pairs` pairs
    was drawn (at most 500)."""
    chances: dict[frozenset, float] = {}
    for _ in range(500):
        battle = services.battle_start(client=client, text="Hello").battle
        chances[frozenset((battle.model_a.name, battle.model_b.name))] = battle.draw_probability
        if len(chances) == pairs:
            break
    return chances


@override_settings(ARENA_SAMPLING="uniform", ARENA_NEW_MODEL_BOOST_VOTES=50, ARENA_BATTLES_PER_MINUTE=1000)
def test_a_new_model_is_drawn_five_times_as_often_until_it_has_enough_votes(three, alice):
    zephyr, mistral, third = three
    votes_add(zephyr, mistral, 60)
    chances = pair_chances(alice)
    assert chances[frozenset(("zephyr-7b-beta", "mistral-7b-instruct"))] == pytest.approx(1 / 11)
    assert chances[frozenset(("zephyr-7b-beta", "third"))] == pytest.approx(5 / 11)

    votes_add(third, zephyr, 30)
    votes_add(third, mistral, 30)
    leaderboard_live_refresh()  # the state follows the counts at the next refresh
    after = pair_chances(alice)
    assert len(after) == 3 and all(chance == pytest.approx(1 / 3) for chance in after.values())


@override_settings(ARENA_SAMPLING="adaptive", ARENA_NEW_MODEL_BOOST_VOTES=0, ARENA_BATTLES_PER_MINUTE=1000)
def test_adaptive_draws_mostly_the_pairs_the_votes_know_least(three, alice):
    zephyr, mistral, _ = three
    votes_add(zephyr, mistral, 200)
    PairCount.objects.create(model_a=mistral, model_b=zephyr, outcome=ratings.A_WINS, count=150, weight=150,
                             weight_sq=150)
    chances = pair_chances(alice)
    known = chances[frozenset(("zephyr-7b-beta", "mistral-7b-instruct"))]
    assert known < 0.25 * (1 / 3) + 0.02  # about its exploration floor
    assert known >= 0.25 * (1 / 3) - 1e-9
    assert chances[frozenset(("zephyr-7b-beta", "third"))] > 0.4


def test_the_refresh_caches_the_state_of_the_counts_it_read(three, alice):
    zephyr, mistral, third = three
    votes_add(zephyr, mistral, 20)
    votes_add(third, mistral, 5)
    cache.delete(CACHE_PAIRING)
    leaderboard_live_refresh()
    state = cache.get(CACHE_PAIRING)
    assert state.votes == {zephyr.id: 20, mistral.id: 25, third.id: 5}
    loaded = counts_load()
    np.testing.assert_allclose(state.gains, sampling.pair_gains(loaded.counts))


def test_a_model_the_state_does_not_know_yet_gets_the_largest_gain(three, devserver_urls):
    zephyr, mistral, third = three
    votes_add(zephyr, mistral, 20)
    state = pairing_state()
    assert state.ids == [zephyr.id, mistral.id, third.id]  # enabled models without votes included
    newer = ChatModel.objects.create(name="newer", endpoint_url=devserver_urls[0])
    gains = state.gains_for([zephyr.id, newer.id, mistral.id])
    assert gains[0, 1] == gains[1, 2] == state.gains.max() and gains[1, 1] == 0
    assert gains[0, 2] == state.gains[0, 1]
