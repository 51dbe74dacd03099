"""Model health (arena.services.registry)."""

import pytest

from arena import services
from arena.live import live_redis, model_failures_key

pytestmark = pytest.mark.django_db


def test_repeated_generation_failures_mark_a_model_unhealthy_until_the_window_passes(chat_models):
    model = chat_models[0]
    assert services.model_failure_record(model_id=model.id, error="overloaded") is False
    assert services.model_failure_record(model_id=model.id, error="overloaded") is False
    assert services.model_failure_record(model_id=model.id, error="overloaded") is True
    model.refresh_from_db()
    assert model.healthy is False and "overloaded" in model.last_error
    services.model_health_record(model_id=model.id, healthy=True)  # /health alone doesn't clear it
    model.refresh_from_db()
    assert model.healthy is False
    live_redis().delete(model_failures_key(model.id))  # the window passed
    services.model_health_record(model_id=model.id, healthy=True, info={"model_id": "z"})
    model.refresh_from_db()
    assert model.healthy is True and model.server_info == {"model_id": "z"}


def test_a_probe_of_a_model_s_old_server_is_not_recorded(chat_models):
    from arena import services

    model = chat_models[0]
    services.model_health_record(model_id=model.id, healthy=False, error="old", endpoint_url="http://old:80")
    model.refresh_from_db()
    assert model.healthy and model.last_error == ""
    services.model_health_record(model_id=model.id, healthy=False, error="down", endpoint_url=model.endpoint_url)
    model.refresh_from_db()
    assert not model.healthy and model.last_error == "down"
