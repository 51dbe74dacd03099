"""Celery tasks run in this process: the probe and its retries."""

import html

import pytest
from django.contrib.auth.models import User

from arena.models import ChatModel
from devserver import DevServerConfig, serve_in_thread
from tests.helpers import free_port

pytestmark = pytest.mark.django_db


def test_a_first_probe_that_fails_is_retried_a_few_times(monkeypatch):
    from arena import queue, tasks
    from arena.services.registry import NEW_MODEL_PROBE_INTERVAL_SECONDS

    later = []
    monkeypatch.setattr(queue, "models_probe_queue", lambda **kw: later.append(kw))
    with serve_in_thread(DevServerConfig(model_id="up", time_to_first_token=0)) as url:
        up = ChatModel.objects.create(name="up", endpoint_url=url, template="zephyr", healthy=False)
        down = ChatModel.objects.create(name="down", endpoint_url=f"http://127.0.0.1:{free_port()}", template="zephyr")
        assert tasks.models_probe(model_ids=[up.id, down.id], retries=2) == 1
    assert later == [{"model_ids": [down.id], "retries": 1, "countdown": NEW_MODEL_PROBE_INTERVAL_SECONDS}]
    assert tasks.models_probe(model_ids=[down.id], retries=0) == 0 and len(later) == 1  # the last try


def test_parameters_that_don_t_fit_the_server_keep_a_model_out_once_probed(client, monkeypatch):
    """The admin can't know the server's limits before the first /info; the probe checks them."""
    from arena import queue, tasks
    from arena.selectors import models_drawable

    later = []
    monkeypatch.setattr(queue, "models_probe_queue", lambda **kw: later.append(kw))
    with serve_in_thread(DevServerConfig(model_id="big", time_to_first_token=0)) as url:  # max_total_tokens 4096
        model = ChatModel.objects.create(
            name="big", endpoint_url=url, template="zephyr", parameters={"max_new_tokens": 5000}
        )
        model.full_clean()  # nothing known about the server yet: accepted
        assert tasks.models_probe(model_ids=[model.id], retries=3) == 0
        assert later == []  # the server answered: asking again wouldn't help
        model.refresh_from_db()
        assert not model.healthy and model not in models_drawable()
        assert "parameters don't fit this server" in model.last_error and "max_total_tokens (4096)" in model.last_error

        client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
        text = html.unescape(client.post(
            "/admin/arena/chatmodel/", {"action": "probe", "_selected_action": [model.id]}, follow=True
        ).content.decode())
        assert "“big” is unhealthy — Its parameters don't fit this server" in text

        ChatModel.objects.filter(id=model.id).update(parameters={"max_new_tokens": 512})
        assert tasks.models_probe(model_ids=[model.id]) == 1
    model.refresh_from_db()
    assert model.healthy and model.last_error == ""
