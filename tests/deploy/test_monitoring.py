"""The Grafana dashboard and Prometheus alert rules in deploy/: they parse, have the shape their
tools load, and every metric their PromQL names is one arena/metrics.py defines."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from arena import metrics
from tests.helpers import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "arena-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
# Names in PromQL (not label values in quotes, not the {{model}} of a legend or annotation).
NAME = re.compile(r"(?<![\w\"'{])arena_[a-z_]+\b")


def exported_names() -> set[str]:
    names = set()
    for metric in metrics.METRICS:
        for family in metric.describe():
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def alerts() -> dict:
    return yaml.safe_load(ALERTS.read_text())


def dashboard_exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]] + [
        v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]


def alert_rules(alerts: dict) -> list[dict]:
    return [rule for group in alerts["groups"] for rule in group["rules"]]


def test_every_metric_the_dashboard_and_alerts_name_exists(dashboard, alerts):
    exprs = dashboard_exprs(dashboard) + [rule["expr"] for rule in alert_rules(alerts)]
    named = {name for expr in exprs for name in NAME.findall(expr)}
    assert named, "no metric found: the pattern is wrong"
    assert named - exported_names() == set()


def test_the_check_catches_a_misspelt_metric():
    misspelt = "arena_reply_ttft_second_bucket"
    assert NAME.findall(f'rate({misspelt}{{model="arena_x"}}[5m])') == [misspelt]
    assert "arena_reply_ttft_second_bucket" not in exported_names()


def test_the_dashboard_shows_what_an_operator_looks_at(dashboard):
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    exprs = " ".join(dashboard_exprs(dashboard))
    for metric in (
        "arena_reply_ttft_seconds_bucket", "arena_reply_token_gap_seconds_bucket",
        "arena_reply_tokens_per_second_bucket", "arena_replies_total", "arena_reply_queue_wait_seconds_bucket",
        "arena_model_slot_wait_seconds_bucket",
        "arena_streams_active", "arena_websockets_open", "arena_votes_cast_total", "arena_votes_counted_total",
    ):
        assert metric in exprs, metric
    assert "0.5" in exprs and "0.95" in exprs  # TTFT p50 and p95
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]  # no installation's own uid
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}


def test_the_alert_file_is_prometheus_rule_groups(alerts):
    assert set(alerts) == {"groups"}
    for group in alerts["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert rule["alert"] and rule["expr"].strip() and re.fullmatch(r"\d+[smh]", rule["for"])
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]


def test_the_alerts_cover_a_failing_model_a_growing_queue_and_no_votes(alerts):
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules(alerts)}
    assert 'outcome="failed"' in exprs["ArenaModelFailing"] and "by (model)" in exprs["ArenaModelFailing"]
    assert "arena_reply_queue_wait_seconds_bucket" in exprs["ArenaQueueGrowing"]
    assert "arena_votes_counted_total" in exprs["ArenaNoVotesCounted"]
