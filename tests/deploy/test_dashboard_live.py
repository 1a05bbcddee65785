"""The dashboard against a real Prometheus scraping a real dmgate: after allow, hold, block,
approve, reject, shadow-mode and policy-reload traffic, every dashboard query and variable
returns data, and the alert rules load and evaluate cleanly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.prometheus_server import Prometheus, finite
from tests.deploy.tools import (
    DASHBOARD,
    RULES,
    concrete,
    dashboard_targets,
    executable,
)
from tests.integration.conftest import routes_to
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, bearer, learn_identity, send_dm
from tests.support import DMGate, WebhookReceiver, free_port, wait_until

ENFORCE = """
mode: {mode}
policies:
  follow_timing: {{action: block, window: 1h}}
  template_reuse: {{action: hold, min_recipients: 3, window: 24h}}
"""
BROKEN = "mode: enforce\npolicies:\n  follow_timing: {action: explode}\n"
TEMPLATE = "Hey {name}, thanks for the follow! We built Rocketly for founders: try it {n}"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(fail_first=1)  # one failed notification, then deliveries
    yield r
    r.stop()


@pytest.fixture
def gate(dmgate_factory, fake_x, receiver) -> DMGate:
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    for uid in range(300, 340):
        fake_x.state.add_user(str(uid))
    routes = json.loads(routes_to(fake_x.url))
    routes["dead"] = {"upstream": f"http://127.0.0.1:{free_port()}", "platform": "none"}
    return dmgate_factory(
        policy_yaml=ENFORCE.format(mode="enforce"),
        env={"DMGATE_ROUTES": json.dumps(routes), "DMGATE_REVIEW_WEBHOOK_URL": receiver.url},
    )


@pytest.fixture
def prometheus(gate, tmp_path: Path) -> Iterator[Prometheus]:
    executable("prometheus")
    home = tmp_path / "prometheus"
    home.mkdir()
    prom = Prometheus(home, [f"127.0.0.1:{gate.port}"], [RULES])
    try:
        yield prom.start()
    finally:
        prom.stop()


class Traffic:
    """Drives every kind of traffic the dashboard shows through one dmgate."""

    def __init__(self, gate: DMGate) -> None:
        self.gate = gate
        self.next_user = 300
        self.holds: list[str] = []

    def user(self) -> str:
        self.next_user += 1
        return str(self.next_user)

    def set_policy(self, text: str, result: str) -> None:
        before = self.gate.metric("dmgate_policy_reloads_total", result=result)
        (self.gate.tmp / "policies.yaml").write_text(text)
        wait_until(
            lambda: self.gate.metric("dmgate_policy_reloads_total", result=result) > before,
            timeout=30,
            what=f"policy reload {result}",
        )

    def follow_then_dm(self, text: str) -> Any:
        follower = self.user()
        r = self.gate.review().post(
            "/api/v1/follow-events",
            json={"platform": "x", "account": SENDER, "follower": follower},
        )
        assert r.status_code == 201, r.text
        return send_dm(self.gate.client, follower, text)

    def template_dms(self, n: int) -> list[Any]:
        return [
            send_dm(self.gate.client, self.user(), TEMPLATE.format(name=f"n{i}", n=i))
            for i in range(n)
        ]

    def round(self, i: int) -> None:
        c = self.gate.client
        learn_identity(c)  # signal
        assert c.get("/plain/_test/echo/x", headers=bearer()).status_code == 200
        assert c.get("/dead/anything").status_code == 502  # upstream unreachable
        r = send_dm(c, self.user(), f"Hi, loved your talk on Rust async in round {i}!")
        assert r.headers["DMGate-Decision"] == "allow", r.text
        held = [r for r in self.template_dms(4) if r.headers["DMGate-Decision"] == "hold"]
        assert len(held) >= 2, "the 3rd and later recipients of a template are held"
        self.holds += [r.headers["DMGate-Hold-Id"] for r in held]
        r = self.follow_then_dm(f"Welcome aboard, here is my course link number {i}")
        assert r.headers["DMGate-Decision"] == "block", r.text
        review = self.gate.review()
        assert review.post(f"/api/v1/holds/{self.holds.pop(0)}/approve").status_code == 200
        assert (
            review.post(
                f"/api/v1/holds/{self.holds.pop(0)}/reject", json={"reason": "pitch"}
            ).status_code
            == 200
        )
        # Shadow mode: forwarded, counted as what would have happened.
        self.set_policy(ENFORCE.format(mode="shadow"), "success")
        r = self.follow_then_dm(f"Thanks for following, grab my ebook {i}")
        assert r.headers["DMGate-Decision"] == "block; shadow", r.text
        r = self.template_dms(1)[0]
        assert r.headers["DMGate-Decision"] == "hold; shadow", r.text
        self.set_policy(BROKEN, "failure")
        self.set_policy(ENFORCE.format(mode="enforce"), "success")
        # One more hold stays pending: the pending count and oldest age have data.
        held = [r for r in self.template_dms(2) if r.headers["DMGate-Decision"] == "hold"]
        self.holds += [r.headers["DMGate-Hold-Id"] for r in held]


def _scraped_everything(prom: Prometheus, gate: DMGate) -> None:
    """Wait until Prometheus has scraped what dmgate counts now."""
    want = sum(
        gate.metric("dmgate_requests_total", route=route, kind=kind)
        for route in ("x", "plain", "dead")
        for kind in ("dm", "signal", "passthrough")
    )
    wait_until(
        lambda: (prom.value("sum(dmgate_requests_total)") or 0) >= want,
        timeout=60,
        what=f"Prometheus to scrape {want} requests",
    )


def test_every_dashboard_query_returns_data_from_a_real_prometheus(gate, prometheus):
    traffic = Traffic(gate)
    # Two rounds with a scrape between them: counters created in round 1 increase in
    # round 2, so rates and quantiles have real values, not zeros.
    traffic.round(1)
    _scraped_everything(prometheus, gate)
    traffic.round(2)
    _scraped_everything(prometheus, gate)
    wait_until(lambda: gate.metric("dmgate_review_notifications_total", result="delivered"))
    # The hold gauges come from the expiry sweep (every 1s here): wait until Prometheus has
    # scraped them with the holds left pending.
    gauges = ["dmgate_holds_pending", "dmgate_oldest_pending_hold_age_seconds"]
    for gauge in gauges:
        wait_until(lambda g=gauge: (prometheus.value(f"max({g})") or 0) > 0, what=gauge)

    dashboard = json.loads(DASHBOARD.read_text())
    failures = []
    targets = dashboard_targets(dashboard)
    for title, expr in targets:
        query = concrete(expr)
        result = prometheus.query(query)
        if not finite(result):
            failures.append(f"{title}\n    {query}\n    -> {result}")
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        metric, label = v["query"]["query"][len("label_values(") : -1].split(", ")
        if not prometheus.query(f"count by ({label}) ({metric})"):
            failures.append(f"variable {v['name']}: {v['query']['query']} has no values")
    assert not failures, "dashboard queries without data:\n" + "\n".join(failures)
    assert len(targets) >= 20


def test_alert_rules_load_and_evaluate_in_a_real_prometheus(gate, prometheus):
    Traffic(gate).set_policy(BROKEN, "failure")
    groups = prometheus.api("/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 12
    wait_until(
        lambda: all(r.get("lastEvaluation", "").startswith("2") for r in _rules(prometheus)),
        timeout=30,
        what="every rule evaluated",
    )
    bad = [(r["name"], r.get("lastError")) for r in _rules(prometheus) if r["health"] != "ok"]
    assert bad == []
    # The refused policy file fires DMGatePolicyReloadFailed (no `for:` delay).
    wait_until(
        lambda: any(
            a["labels"]["alertname"] == "DMGatePolicyReloadFailed" and a["state"] == "firing"
            for a in prometheus.api("/api/v1/alerts")["alerts"]
        ),
        timeout=60,
        what="DMGatePolicyReloadFailed firing",
    )


def _rules(prom: Prometheus) -> list[dict[str, Any]]:
    return [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
