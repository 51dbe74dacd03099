"""A model's API key is read where a request is made and shown nowhere.

A model served over the OpenAI protocol names its key by reference (`api_key_env`); the worker and
web processes hold a sentinel key in that variable, and a dev server accepts only that key. Battles
run through the real web process (pages, websocket) and a real worker; afterwards the sentinel must
be in no page (the arena's, the admin's), websocket frame, API answer, export, log file (both
processes log at DEBUG), database row, Redis value or failure message, including the messages of a
server that refuses the key. A model whose variable is unset says so to the admin and stays out of
battles.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import redis
import requests
import websockets
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User

from arena import services
from arena.models import Battle, ChatModel, Reply
from devserver import DevServerConfig, serve_in_thread
from tests.helpers import ROOT, process_group_stop, stack_env, web_start
from tests.reliability.helpers import dedicated_worker
from tests.websockets import finished_sides, state_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "reliability-secrets"
SENTINEL_VAR = "ARENA_TEST_SENTINEL_API_KEY"
SENTINEL = "sk-sentinel-XYZ-7f3a9c1e5b2d8046a1f9e3c7b5d20864"
# Fragments a masked or truncated copy would still show ("sk-...0864", a prefix of the secret part).
SENTINEL_FRAGMENTS = (SENTINEL, SENTINEL[-12:], SENTINEL[12:28])
OTHER_KEY = "sk-the-server-wants-another-key-0000"
UNSET_VAR = "ARENA_TEST_UNSET_API_KEY"
PROMPT = "Tell me about rivers and lakes"
REFUSED = "The model server refused this model's API key (HTTP 401); an admin must fix its key."
ADMIN = ("root", "s3cret-admin-pass")


@pytest.fixture(scope="module")
def secret_stack(django_db_setup, live_logs):
    """A worker and a web process of their own, both holding the sentinel key, both logging at DEBUG."""
    env = {SENTINEL_VAR: SENTINEL, "LOG_LEVEL": "DEBUG"}
    with dedicated_worker(live_logs, "secrets-worker", QUEUE, "debug", **env):
        web, base_url = web_start(live_logs, name="secrets-web", extra_env={"CELERY_QUEUE": QUEUE, **env})
        try:
            yield SimpleNamespace(
                base_url=base_url, ws_url=base_url.replace("http://", "ws://") + "/ws/arena/",
                logs=[live_logs / "secrets-worker.log", live_logs / "secrets-web.log"],
            )
        finally:
            process_group_stop(web)


@pytest.fixture(scope="module")
def servers():
    pace = {"time_to_first_token": 0.05, "tokens_per_second": 150}
    with (
        serve_in_thread(DevServerConfig(model_id="healthy-model", **pace)) as healthy,
        serve_in_thread(DevServerConfig(model_id="keyed-model", api_key=SENTINEL, **pace)) as accepting,
        serve_in_thread(DevServerConfig(model_id="keyed-model", api_key=OTHER_KEY, **pace)) as refusing,
    ):
        yield SimpleNamespace(healthy=healthy, accepting=accepting, refusing=refusing)


@pytest.fixture
def sentinel_env(monkeypatch):
    """The test process is a process of the arena too (it probes): it holds the key as they do."""
    monkeypatch.setenv(SENTINEL_VAR, SENTINEL)
    monkeypatch.delenv(UNSET_VAR, raising=False)


def healthy_model(servers) -> ChatModel:
    return ChatModel.objects.create(
        name="healthy-model", endpoint_url=servers.healthy, template="zephyr", timeout_seconds=20
    )


def keyed_model(url: str, name: str = "keyed-model", env: str = SENTINEL_VAR, **fields) -> ChatModel:
    return ChatModel.objects.create(
        name=name, protocol="openai", endpoint_url=f"{url}/v1", served_model="keyed-model", api_key_env=env,
        timeout_seconds=20, **fields,
    )


# --- the browser's side: pages and the websocket of the real web process ----------------------

def visitor(stack) -> requests.Session:
    """A browser that has loaded the arena page (and so has a session)."""
    session = requests.Session()
    assert session.get(stack.base_url + "/", timeout=10).status_code == 200
    return session


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


async def battle_run(stack, session: requests.Session, *, vote: bool) -> tuple[list[str], list[dict]]:
    """A battle as the page runs it: prompt, both replies to their end, a vote if `vote`, then a
    `join` (what a reload shows). Returns every frame, raw and parsed."""
    raw: list[str] = []
    frames: list[dict] = []

    async def receive() -> dict:
        raw.append(await asyncio.wait_for(ws.recv(), 30))
        frames.append(json.loads(raw[-1]))
        assert frames[-1]["type"] != "error", frames[-1]
        return frames[-1]

    headers = {"Cookie": cookie_header(session), "Origin": stack.base_url}
    async with websockets.connect(stack.ws_url, additional_headers=headers, open_timeout=5) as ws:
        await ws.send(json.dumps({"action": "prompt", "battle": None, "text": PROMPT}))
        while finished_sides(frames) < {"a", "b"}:
            await receive()
        battle_id = state_of(frames)["battle"]
        if vote:
            await ws.send(json.dumps({"action": "vote", "battle": battle_id, "outcome": "tie"}))
            while (await receive())["type"] != "revealed":
                pass
        await ws.send(json.dumps({"action": "join", "battle": battle_id}))
        while (await receive())["type"] != "state":
            pass
    return raw, frames


def side_of(frames: list[dict], model: ChatModel) -> str:
    battle = Battle.objects.get(id=state_of(frames)["battle"])
    return "a" if battle.model_a_id == model.id else "b"


def admin_login(stack) -> requests.Session:
    if not User.objects.filter(username=ADMIN[0]).exists():
        User.objects.create_superuser(ADMIN[0], "root@example.com", ADMIN[1])
    session = requests.Session()
    token = csrf_token(session.get(stack.base_url + "/admin/login/", timeout=10).text)
    answer = session.post(
        stack.base_url + "/admin/login/?next=/admin/",
        data={"username": ADMIN[0], "password": ADMIN[1], "csrfmiddlewaretoken": token, "next": "/admin/"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.url.endswith("/admin/"), answer.url
    return session


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def admin_probe(stack, admin: requests.Session, models: list[ChatModel]) -> str:
    """The admin's Probe action on `models`, run by the web process; the page it lands on."""
    changelist = stack.base_url + "/admin/arena/chatmodel/"
    token = csrf_token(admin.get(changelist, timeout=10).text)
    answer = admin.post(changelist, data={
        "action": "probe", "_selected_action": [m.id for m in models], "index": "0", "csrfmiddlewaretoken": token,
    }, timeout=30)
    assert answer.status_code == 200
    return answer.text


# --- everywhere a key could leak to ------------------------------------------------------------

def pages(stack, admin: requests.Session) -> dict[str, str]:
    """Every public page and API answer, and every admin page of the arena's records."""
    public = requests.Session()
    texts = {
        path: public.get(stack.base_url + path, timeout=10).text
        for path in ("/", "/leaderboard/", "/api/leaderboard/", "/api/models/status", "/healthz")
    }
    admin_paths = ["/admin/", *(f"/admin/arena/{model}/" for model in ("chatmodel", "battle", "turn", "vote"))]
    admin_paths += [f"/admin/arena/chatmodel/{pk}/change/" for pk in ChatModel.objects.values_list("id", flat=True)]
    admin_paths += [f"/admin/arena/battle/{pk}/change/" for pk in Battle.objects.values_list("id", flat=True)]
    admin_paths += [f"/admin/arena/turn/{pk}/change/" for pk in Reply.objects.values_list("turn_id", flat=True)]
    for path in admin_paths:
        answer = admin.get(stack.base_url + path, timeout=10)
        assert answer.status_code == 200, (path, answer.status_code)
        texts[f"admin {path}"] = answer.text
    return texts


def database_rows() -> dict[str, str]:
    """Every row of every table Django knows (models, replies, sessions, the admin's log...)."""
    return {
        model._meta.db_table: "\n".join(repr(row) for row in model._default_manager.values())
        for model in apps.get_models()
    }


def redis_values() -> str:
    """Every value in the Redis database the arena uses (live text, caches, the broker's queues)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    dump = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value = {
            "string": lambda k: client.get(k), "list": lambda k: client.lrange(k, 0, -1),
            "hash": lambda k: client.hgetall(k), "set": lambda k: client.smembers(k),
            "zset": lambda k: client.zrange(k, 0, -1),
        }.get(kind, lambda k: b"")(key)
        dump.append(f"{key!r} {value!r}")
    return "\n".join(dump)


def export(tmp_path) -> str:
    """`manage.py export_battles` as an operator runs it: its file and what it prints."""
    path = tmp_path / "battles.jsonl"
    run = subprocess.run(
        [sys.executable, "manage.py", "export_battles", str(path)], cwd=ROOT, env=stack_env(),
        capture_output=True, text=True, timeout=120, check=True,
    )
    return run.stdout + run.stderr + path.read_text()


def assert_nowhere(surfaces: dict[str, str]) -> None:
    leaks = [name for name, text in surfaces.items() if any(fragment in text for fragment in SENTINEL_FRAGMENTS)]
    assert not leaks, f"the API key shows in: {leaks}"


# --- the tests ---------------------------------------------------------------------------------

def test_the_api_key_is_in_no_page_frame_answer_export_log_or_row(secret_stack, servers, sentinel_env, tmp_path):
    healthy = healthy_model(servers)
    keyed = keyed_model(servers.accepting)
    browser = visitor(secret_stack)

    # A battle with the key the server wants: both sides answer, the vote reveals them.
    raw_ok, frames = asyncio.run(battle_run(secret_stack, browser, vote=True))
    keyed_side = side_of(frames, keyed)
    done = {f["side"]: f for f in frames if f["type"] == "done"}
    assert set(done) == {"a", "b"} and done[keyed_side]["text"], "the server took the key"
    assert any(f["type"] == "revealed" for f in frames)
    probed_ok = services.models_probe_now([healthy, keyed])
    assert [verdict.healthy for _, _, verdict in probed_ok] == [True, True]
    admin = admin_login(secret_stack)
    probe_page_ok = admin_probe(secret_stack, admin, [healthy, keyed])
    assert "“keyed-model” is healthy — serves keyed-model over the OpenAI protocol" in probe_page_ok

    # The same key, to a server that wants another: the 401 path and its messages.
    ChatModel.objects.filter(id=keyed.id).update(endpoint_url=f"{servers.refusing}/v1")
    raw_refused, frames = asyncio.run(battle_run(secret_stack, browser, vote=False))
    keyed_side = side_of(frames, keyed)
    failed = [f for f in frames if f["type"] == "failed"]
    assert [(f["side"], f["reason"], f["retryable"]) for f in failed] == [(keyed_side, REFUSED, False)]
    keyed.refresh_from_db()
    assert keyed.healthy is False and keyed.last_error == REFUSED
    probed_refused = services.models_probe_now([keyed])
    refused_probe = f"{servers.refusing}/v1/models answered HTTP 401: the API key was refused"
    assert probed_refused[0][2].error == refused_probe
    probe_page_refused = admin_probe(secret_stack, admin, [keyed])
    assert f"“keyed-model” is unhealthy — {refused_probe}" in probe_page_refused

    surfaces = {
        **pages(secret_stack, admin),
        "admin probe action (accepted)": probe_page_ok,
        "admin probe action (refused)": probe_page_refused,
        "websocket frames (accepted)": "\n".join(raw_ok),
        "websocket frames (refused)": "\n".join(raw_refused),
        "probe results": repr([(result, verdict) for _, result, verdict in probed_ok + probed_refused]),
        "export_battles": export(tmp_path),
        **{f"database {table}": rows for table, rows in database_rows().items()},
        "redis": redis_values(),
        **{f"log {path.name}": path.read_text() for path in secret_stack.logs},
    }
    assert_nowhere(surfaces)
    # Looked in the right places: the pages and rows name the variable, the failures are in them.
    assert SENTINEL_VAR in surfaces[f"admin /admin/arena/chatmodel/{keyed.id}/change/"]
    assert REFUSED in surfaces["websocket frames (refused)"] and REFUSED in surfaces["database arena_reply"]
    assert refused_probe in surfaces["database arena_chatmodel"]
    assert '"model_a": ' in surfaces["export_battles"] and "Exported 1 battles" in surfaces["export_battles"]
    worker_log = surfaces["log secrets-worker.log"]
    # Looked at the right logs, at their most talkative: the requests' own debug lines are in them.
    assert "Encountered an HTTP status error: 401" in worker_log
    assert "DEBUG openai._base_client: Building HTTP request" in worker_log
    assert "DEBUG openai._base_client: Building HTTP request" in surfaces["log secrets-web.log"]  # the admin's probe


def test_a_model_whose_key_variable_is_unset_says_so_and_is_kept_out(secret_stack, servers, sentinel_env):
    healthy = healthy_model(servers)
    keyed = keyed_model(servers.accepting, enabled=False)
    unset = keyed_model(servers.accepting, name="unset-key-model", env=UNSET_VAR)
    missing = f"Its API key is missing: environment variable {UNSET_VAR} is not set"
    browser = visitor(secret_stack)

    # Drawn before anyone noticed: its reply fails at once, without asking the server, and the
    # model leaves the draw with the reason for the admin.
    _, frames = asyncio.run(battle_run(secret_stack, browser, vote=False))
    unset_side = side_of(frames, unset)
    failed = [f for f in frames if f["type"] == "failed"]
    assert [(f["side"], f["retryable"]) for f in failed] == [(unset_side, False)], failed
    assert failed[0]["reason"].startswith("This model is not set up correctly; an admin has been told.")
    assert UNSET_VAR not in failed[0]["reason"], "the user is not told the server's configuration"
    unset.refresh_from_db()
    assert unset.healthy is False and unset.last_error == missing

    # The probe says the same, without asking the server either.
    ChatModel.objects.filter(id=keyed.id).update(enabled=True)
    ChatModel.objects.filter(id=unset.id).update(healthy=True, last_error="")
    probed = {model.name: verdict for model, _, verdict in services.models_probe_now(list(ChatModel.objects.all()))}
    assert probed["unset-key-model"].healthy is False and probed["unset-key-model"].error == missing
    assert probed["keyed-model"].healthy and probed["healthy-model"].healthy
    unset.refresh_from_db()
    assert unset.healthy is False and unset.last_error == missing
    admin = admin_login(secret_stack)
    change_page = admin.get(f"{secret_stack.base_url}/admin/arena/chatmodel/{unset.id}/change/", timeout=10).text
    assert missing in change_page
    assert f"environment variable {UNSET_VAR} is not set" in admin.get(
        f"{secret_stack.base_url}/admin/arena/chatmodel/", timeout=10).text

    # New battles draw the other two only.
    before = set(Battle.objects.values_list("id", flat=True))
    for _ in range(3):
        _, frames = asyncio.run(battle_run(secret_stack, browser, vote=False))
        assert {f["side"] for f in frames if f["type"] == "done"} == {"a", "b"}
    drawn = Battle.objects.exclude(id__in=before).values_list("model_a_id", "model_b_id")
    assert len(drawn) == 3 and all({a, b} == {healthy.id, keyed.id} for a, b in drawn), list(drawn)
