import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from arena.models import ChatModel
from inference.devserver import DevServerConfig, serve_in_thread
from tests.conftest import free_port

pytestmark = pytest.mark.django_db


def test_add_model_creates_then_updates_by_name():
    call_command("add_model", "zephyr-7b-beta", "http://tgi:80", "--template", "zephyr", "--weight", "2",
                 "--param", "temperature=0.5", "--param", 'stop=["###"]', "--param", "note=plain")
    model = ChatModel.objects.get(name="zephyr-7b-beta")
    assert (model.endpoint_url, model.template, model.weight) == ("http://tgi:80", "zephyr", 2.0)
    assert model.parameters == {"temperature": 0.5, "stop": ["###"], "note": "plain"}
    call_command("add_model", "zephyr-7b-beta", "http://other:80", "--template", "chatml")
    assert ChatModel.objects.get().endpoint_url == "http://other:80"
    call_command("add_model", "zephyr-7b-beta", "http://third:80", "--template", "chatml", "--keep-existing")
    assert ChatModel.objects.get().endpoint_url == "http://other:80"


@pytest.mark.parametrize(
    "args, message",
    [
        (["m", "not a url", "--template", "zephyr"], "endpoint_url"),
        (["m", "http://x", "--template", "zephyr", "--weight", "-1"], "weight"),
        (["m", "http://x", "--template", "zephyr", "--param", "oops"], "key=value"),
    ],
)
def test_add_model_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("add_model", *args)
    assert not ChatModel.objects.exists()


def test_add_model_rejects_an_unknown_template():
    with pytest.raises(CommandError):
        call_command("add_model", "m", "http://x", "--template", "gpt")


def test_the_probe_action_shows_model_id_limits_and_health(client):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    with serve_in_thread(DevServerConfig(model_id="HuggingFaceH4/zephyr-7b-beta", time_to_first_token=0)) as url:
        up = ChatModel.objects.create(name="up", endpoint_url=url, template="zephyr")
        down = ChatModel.objects.create(name="down", endpoint_url=f"http://127.0.0.1:{free_port()}", template="zephyr")
        response = client.post(
            "/admin/arena/chatmodel/",
            {"action": "probe", "_selected_action": [up.id, down.id]},
            follow=True,
        )
    text = response.content.decode().lower()  # the admin capitalises messages
    assert "up: healthy — model huggingfaceh4/zephyr-7b-beta" in text
    assert "max total tokens 4096" in text
    assert "down: unhealthy" in text
    up.refresh_from_db(), down.refresh_from_db()
    assert up.healthy and up.server_info["model_id"] == "HuggingFaceH4/zephyr-7b-beta"
    assert not down.healthy and down.last_error


def test_model_changes_apply_to_the_next_battle_without_restart(chat_models, alice):
    from arena import services

    ChatModel.objects.filter(name="zephyr-7b-beta").update(enabled=False)
    with pytest.raises(Exception, match="Not enough models"):
        services.battle_start(client=alice, text="hi")
    ChatModel.objects.filter(name="zephyr-7b-beta").update(enabled=True)
    assert services.battle_start(client=alice, text="hi").battle_id
