"""/metrics: Prometheus's text format for the token's bearer, or for the allowed networks, and
nothing for anyone else."""

import ipaddress
import os
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from arena import metrics
from tests.helpers import ROOT

pytestmark = pytest.mark.django_db

TOKEN = "a-long-random-metrics-token"
OUTSIDE = "203.0.113.9"


def networks(*cidrs: str):
    return [ipaddress.ip_network(c) for c in cidrs]


def scrape(**extra):
    return Client().get("/metrics", **extra)


def test_it_answers_loopback_by_default_with_the_arenas_metrics():
    metrics.REPLY_TTFT.labels(model="view-test-model").observe(0.3)
    answer = scrape()
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=")
    body = answer.content.decode()
    assert 'arena_reply_ttft_seconds_count{model="view-test-model"}' in body


def test_it_refuses_a_request_from_outside_the_allowed_networks():
    answer = scrape(REMOTE_ADDR=OUTSIDE)
    assert answer.status_code == 403
    assert b"arena_" not in answer.content


@override_settings(TRUSTED_PROXIES=[])
def test_it_believes_no_forwarded_address_from_an_untrusted_peer():
    assert scrape(REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_the_forwarded_client_is_the_one_checked():
    assert scrape(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR=OUTSIDE).status_code == 403
    assert scrape(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


@override_settings(ARENA_METRICS_ALLOWED_NETWORKS=networks("192.0.2.0/24"))
def test_the_allowed_networks_come_from_settings():
    assert scrape(REMOTE_ADDR="192.0.2.77").status_code == 200
    assert scrape(REMOTE_ADDR=OUTSIDE).status_code == 403
    assert scrape().status_code == 403  # loopback is no longer in


@override_settings(ARENA_METRICS_TOKEN=TOKEN)
def test_with_a_token_it_answers_its_bearer_from_anywhere():
    answer = scrape(REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200 and b"arena_" in answer.content


@override_settings(ARENA_METRICS_TOKEN=TOKEN)
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "])
def test_with_a_token_a_missing_or_wrong_one_is_refused_even_from_loopback(header):
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    answer = scrape(**extra)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")
    assert b"arena_" not in answer.content and TOKEN.encode() not in answer.content


def test_only_get_and_head():
    assert Client().post("/metrics").status_code == 405


def test_every_hosts_processes_are_merged_and_a_finished_process_leaves_no_live_gauge(tmp_path):
    # Processes of two hosts (containers sharing the volume), each writing files of its own.
    code = (
        "import os, socket, django; socket.gethostname = lambda: os.environ['FAKE_HOST']; "
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup(); "
        "from arena import metrics; metrics.VOTES_COUNTED.inc(2); metrics.WEBSOCKETS_OPEN.labels(page='arena').inc()"
    )
    for host in ("web-1", "worker-1"):
        env = {**os.environ, "ARENA_METRICS_DIR": str(tmp_path), "FAKE_HOST": host}
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web-1", "worker-1"]
    families = {f.name: f for f in metrics.AllHostsCollector(tmp_path).collect()}
    assert [s.value for s in families["arena_votes_counted"].samples] == [4.0]
    assert not list(tmp_path.glob("*/gauge_live*.db"))  # the open sockets ended with their process


@override_settings(ARENA_METRICS_TOKEN=TOKEN, ALLOWED_HOSTS=["*"])
def test_the_sidecar_server_answers_metrics_as_the_web_does_and_nothing_else():
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.client import RequestFactory

    from arena.management.commands.metrics_serve import metrics_only

    metrics.REPLY_TTFT.labels(model="sidecar-test-model").observe(0.2)
    app = metrics_only(WSGIHandler())

    def get(path: str, **headers) -> tuple[str, bytes]:
        status: list[str] = []
        environ = RequestFactory().get(path, **headers).environ
        body = b"".join(app(environ, lambda s, h, *rest: status.append(s)))
        return status[0], body

    status, body = get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert status.startswith("200") and b'arena_reply_ttft_seconds_count{model="sidecar-test-model"}' in body
    assert get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")[0].startswith("401")
    for path in ("/", "/admin/", "/api/leaderboard/", "/metrics/"):
        status, body = get(path)
        assert status.startswith("404") and b"arena" not in body.lower().replace(b"/metrics", b"")
