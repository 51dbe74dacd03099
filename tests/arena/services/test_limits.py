"""Rate limits (arena.services.limits) in Redis."""

import pytest
from django.test import override_settings

from arena import services
from arena.errors import RateLimited

pytestmark = pytest.mark.django_db


@override_settings(ARENA_BATTLES_PER_MINUTE=2)
def test_battles_per_minute_are_limited(chat_models, alice):
    services.battle_start(client=alice, text="1")
    services.battle_start(client=alice, text="2")
    with pytest.raises(RateLimited):
        services.battle_start(client=alice, text="3")
