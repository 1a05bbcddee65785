"""deploy/docker-compose.yml, validated by the real Compose v2 binary (`config -q`), and
wired to the files it mounts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from proxy.settings import Settings
from tests.deploy.tools import DEPLOY, compose_binary, ok, output, run

COMPOSE = DEPLOY / "docker-compose.yml"
FORWARD_MODE = ("DMGATE_TUNNEL_HOSTS", "DMGATE_PROXY_AUTH", "DMGATE_CA_PASSPHRASE")
SECRETS = {
    "POSTGRES_PASSWORD": "pg-password",
    "DMGATE_REVIEW_TOKENS": "alice:tok-alice-0123456789abcdef",
    "DMGATE_SECRET_KEY": "0123456789abcdef0123456789abcdef",
    "GRAFANA_ADMIN_PASSWORD": "grafana-password",
}


def _compose(*args: str, env: dict[str, str]):
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k not in FORWARD_MODE}
    return run(
        [compose_binary(), "--project-directory", str(DEPLOY), "-f", str(COMPOSE), *args],
        env={**clean, **env},
    )


def test_compose_file_is_valid():
    proc = _compose("config", "-q", env=SECRETS)
    assert ok(proc), output(proc)


def test_secrets_are_required_not_defaulted():
    for name in SECRETS:
        proc = _compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != name})
        assert not ok(proc), f"{name} should be required\n{output(proc)}"
        assert name in proc.stderr, output(proc)


def _resolved(**env: str) -> dict:
    proc = _compose("config", "--format", "json", env={**SECRETS, **env})
    assert ok(proc), output(proc)
    return json.loads(proc.stdout)


def test_services_and_their_wiring():
    config = _resolved()
    services = config["services"]
    assert set(services) == {"dmgate", "postgres", "prometheus", "grafana"}
    dmgate = services["dmgate"]
    assert Path(dmgate["build"]["context"]) == DEPLOY.parent
    assert dmgate["build"]["dockerfile"] == "Dockerfile"
    env = dmgate["environment"]
    assert env["DMGATE_DATABASE_URL"] == "postgresql://dmgate:pg-password@postgres:5432/dmgate"
    assert dmgate["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Published on loopback only.
    for service in services.values():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", port


def test_mounted_files_exist_where_prometheus_and_grafana_look_for_them():
    services = _resolved()["services"]
    mounts = {
        (name, m["target"]): Path(m["source"])
        for name, s in services.items()
        for m in s.get("volumes", [])
        if m["type"] == "bind"
    }
    for (_, _), source in mounts.items():
        assert source.exists(), source
    prom = yaml.safe_load(mounts[("prometheus", "/etc/prometheus/prometheus.yml")].read_text())
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert list(mounts[("prometheus", "/etc/prometheus/rules")].glob("*.yml"))
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["dmgate:8080"]
    provisioning = mounts[("grafana", "/etc/grafana/provisioning")]
    provider = yaml.safe_load((provisioning / "dashboards" / "dmgate.yml").read_text())
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert (mounts[("grafana", dashboards_dir)] / "dmgate.json").exists()
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    policy = services["dmgate"]["environment"]["DMGATE_POLICY_FILE"]
    policy_dir = mounts[("dmgate", "/etc/dmgate/policies")]
    assert (policy_dir / Path(policy).name).exists()


def test_forward_mode_settings_are_optional_and_passed_through(monkeypatch):
    unset = _resolved()["services"]["dmgate"]["environment"]
    assert {name: unset[name] for name in FORWARD_MODE} == dict.fromkeys(FORWARD_MODE, "")
    # dmgate reads the empty values as "not set".
    for name in [n for n in os.environ if n.startswith("DMGATE_")]:
        monkeypatch.delenv(name)
    for name in FORWARD_MODE:
        monkeypatch.setenv(name, unset[name])
    settings = Settings(_env_file=None)
    assert (settings.tunnel_hosts, settings.proxy_auth, settings.ca_passphrase) == ([], [], None)
    given = {
        "DMGATE_TUNNEL_HOSTS": "github.com,*.example.com:8443",
        "DMGATE_PROXY_AUTH": "bot:proxy-pw",
        "DMGATE_CA_PASSPHRASE": "ca-passphrase",
    }
    env = _resolved(**given)["services"]["dmgate"]["environment"]
    assert {name: env[name] for name in FORWARD_MODE} == given


def test_the_forward_mode_ca_outlives_the_container_in_a_named_data_volume():
    config = _resolved()
    (data,) = [m for m in config["services"]["dmgate"]["volumes"] if m["target"] == "/data"]
    assert data["type"] == "volume" and data["source"] in config["volumes"]
    assert not data.get("read_only")  # dmgate creates the CA there on first start
