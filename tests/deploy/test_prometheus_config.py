"""The Prometheus scrape config, alert rules and their unit tests, checked by promtool."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.tools import DEPLOY, RULES, executable, ok, output, run

PROM = DEPLOY / "prometheus"


def test_scrape_config_is_valid():
    proc = run([executable("promtool"), "check", "config", str(PROM / "prometheus.yml")])
    assert ok(proc), output(proc)


def test_scrape_config_with_the_rules_in_place_is_valid(tmp_path: Path):
    # In the container the rules are mounted at /etc/prometheus/rules; point the same config
    # at the repository's rules so `check config` checks them through the config too.
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(RULES.parent / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    proc = run([executable("promtool"), "check", "config", str(copy)])
    assert ok(proc), output(proc)
    assert "SUCCESS: 12 rules found" in proc.stdout, output(proc)


def test_scrape_job_is_named_dmgate_as_the_rules_and_dashboard_expect():
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["dmgate"]


def test_alert_rules_are_valid():
    proc = run([executable("promtool"), "check", "rules", str(RULES)])
    assert ok(proc), output(proc)


def test_alert_rule_unit_tests_pass():
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    proc = run([executable("promtool"), "test", "rules", *map(str, tests)])
    assert ok(proc), output(proc)


def _alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_every_alert_has_a_unit_test_that_expects_it_to_fire():
    fired: set[str] = set()
    for path in (PROM / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    assert set(_alerts()) - fired == set()


def test_every_alert_has_a_severity_summary_and_description():
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name


def test_the_alerts_the_operators_need_exist():
    assert {
        "DMGateDown",
        "DMGateHoldsPastReviewSLA",
        "DMGatePendingHoldsGrowing",
        "DMGateReviewNotificationsFailing",
        "DMGateUpstreamErrorRateHigh",
        "DMGatePolicyReloadFailed",
        "DMGateFailingClosed",
        "DMGateForwardModeTLSFailures",
        "DMGateForwardModeUnavailable",
    } <= set(_alerts())
