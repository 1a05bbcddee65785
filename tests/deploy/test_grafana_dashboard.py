"""The Grafana dashboard: valid against Grafana's own types, coherent, and reading only
metrics dmgate exports (checked against a real dmgate's /metrics)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.deploy.tools import (
    DASHBOARD,
    DEPLOY,
    RULES,
    dashboard_targets,
    exported_names,
    metric_names,
)

SCHEMA = DEPLOY / "grafana" / "schema" / "dashboard.schema.json"
# Series Prometheus itself adds to every scrape, not dmgate's to export.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in validator.iter_errors(doc)]


def test_dashboard_is_valid_against_grafanas_schema(dashboard, validator):
    assert _errors(validator, dashboard) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["panels"][1].update(fieldconfig={}),  # misspelt key
        lambda d: d["panels"][1]["gridPos"].pop("h"),  # required field missing
        lambda d: d.update(schemaVersion="42"),  # wrong type
        lambda d: d["templating"]["list"][0].update(type="dropdown"),  # unknown enum value
    ],
    ids=["unknown-key", "missing-required", "wrong-type", "bad-enum"],
)
def test_schema_catches_broken_dashboards(dashboard, validator, mutate):
    broken = copy.deepcopy(dashboard)
    mutate(broken)
    assert _errors(validator, broken)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def test_panels_have_unique_ids_and_do_not_overlap(dashboard):
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{p['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = p["title"]


def test_every_panel_has_a_description_a_unit_and_the_datasource_variable(dashboard):
    for p in _panels(dashboard):
        if p["type"] == "row":
            continue
        assert p.get("description"), p["title"]
        defaults = p["fieldConfig"]["defaults"]
        assert defaults.get("unit"), p["title"]
        assert defaults["thresholds"]["steps"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            assert t["expr"].strip(), p["title"]


def test_variables_for_datasource_route_and_platform(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("route", "platform"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"] and variables[name]["multi"]
        assert f'{name}=~"${name}"' in json.dumps(dashboard).replace('\\"', '"')
    used = set(re.findall(r"\$\{?(\w+)", json.dumps(dashboard)))
    builtin = {"__rate_interval", "__interval", "__range", "__all"}
    assert used - builtin <= set(variables)


def test_the_panels_an_operator_needs_exist(dashboard):
    exprs = " ".join(e for _, e in dashboard_targets(dashboard))
    for needed in (
        'dmgate_dm_decisions_total{mode="enforce"',
        'dmgate_dm_decisions_total{mode="shadow"',
        "dmgate_policy_matches_total",
        "dmgate_holds_pending",
        "dmgate_oldest_pending_hold_age_seconds",
        "histogram_quantile(0.95, sum by (le) (rate(dmgate_hold_review_seconds_bucket",
        "dmgate_holds_resolved_total",
        "dmgate_review_notifications_total",
        "dmgate_policy_reloads_total",
        "sum by (route, kind) (rate(dmgate_requests_total",
        "histogram_quantile(0.99, sum by (le, route) "
        "(rate(dmgate_upstream_request_duration_seconds_bucket",
        "dmgate_upstream_errors_total",
        "dmgate_store_failures_total",
        "sum by (outcome) (rate(dmgate_proxy_connects_total",
    ):
        assert needed in exprs, needed


def test_metric_name_extraction():
    assert metric_names(
        'histogram_quantile(0.5, sum by (le, route) (rate(a_bucket{route=~".*"}[5m])))'
        " / on (route) group_left sum without (x) (b_total offset 1h) > 1e3 and up"
    ) == {"a_bucket", "b_total", "up"}


def _rule_exprs() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(r.get("alert") or r["record"], r["expr"]) for g in groups for r in g["rules"]]


def test_dashboard_and_alerts_name_only_metrics_dmgate_exports(dmgate):
    exported = exported_names(httpx.get(dmgate.url + "/metrics").text) | PROMETHEUS_SERIES
    unknown: dict[str, list[str]] = {}
    for where, expr in dashboard_targets(json.loads(DASHBOARD.read_text())) + _rule_exprs():
        for name in metric_names(expr) - exported:
            unknown.setdefault(name, []).append(where)
    assert unknown == {}
