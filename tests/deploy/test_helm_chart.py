"""The Helm chart: `helm lint --strict` (Helm v4 as a library), rendered manifests valid for
Kubernetes 1.33 (kubernetes-validate --strict), and rendering what dmgate needs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.settings import Settings
from tests.deploy.tools import DEPLOY, executable, missing_tool, ok, output, run

CHART = DEPLOY / "helm" / "dmgate"
CI_VALUES = yaml.safe_load((CHART / "ci" / "test-values.yaml").read_text())
KUBE = "1.33.0"
FORWARD_MODE = {
    "caSecret": "dmgate-ca",
    "caPassphrase": "ca-passphrase",
    "tunnelHosts": ["github.com", "*.example.com:8443"],
    "proxyAuth": "bot:proxy-pw,ci:proxy-pw2",
}


@pytest.fixture(scope="module")
def helm() -> Any:
    if importlib.util.find_spec("helm_python") is None:
        missing_tool("helm_python")
    import helm_python

    helm_python.disable_logging()  # `required` misses are asserted, not logged to stderr
    return helm_python


def render(helm: Any, values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """kind → manifest (every kind appears once in this chart)."""
    chart = helm.Chart.load(CHART)
    out = chart.render(values, name="dmgate", namespace="apps")
    docs = [yaml.safe_load(text) for path, text in out.items() if path.endswith(".yaml")]
    return {d["kind"]: d for d in docs if d}


def notes(helm: Any, values: dict[str, Any] | None = None) -> str:
    out = helm.Chart.load(CHART).render(values, name="dmgate", namespace="apps")
    return next(text for path, text in out.items() if path.endswith("NOTES.txt"))


def _with(**changes: Any) -> dict[str, Any]:
    values = yaml.safe_load(yaml.safe_dump(CI_VALUES))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = values
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return values


@pytest.mark.parametrize(
    "values",
    [None, CI_VALUES, _with(forwardMode=FORWARD_MODE)],
    ids=["defaults", "ci-values", "forward-mode"],
)
def test_helm_lint_strict_is_clean(helm, values):
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    "values", [CI_VALUES, _with(forwardMode=FORWARD_MODE)], ids=["ci-values", "forward-mode"]
)
def test_rendered_manifests_are_valid_for_kubernetes_1_33(helm, tmp_path: Path, values):
    manifests = render(helm, values)
    assert set(manifests) == {
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    }
    files = []
    for kind, doc in manifests.items():
        if kind == "ServiceMonitor":
            continue  # a CRD: kubernetes-validate has no schema for it (checked below)
        files.append(tmp_path / f"{kind}.yaml")
        files[-1].write_text(yaml.safe_dump(doc))
    proc = run([executable("kubernetes-validate"), "--strict", "-k", KUBE, *map(str, files)])
    assert ok(proc), output(proc)
    assert proc.stdout.count(" passed ") == len(files), output(proc)


def test_kubernetes_validate_strict_rejects_unknown_fields(helm, tmp_path: Path):
    deployment = render(helm, CI_VALUES)["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    proc = run([executable("kubernetes-validate"), "--strict", "-k", KUBE, str(bad)])
    assert not ok(proc), output(proc)


def _container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return manifests["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_deployment_has_replicas_probes_resources_and_runs_as_the_image_user(helm):
    manifests = render(helm, _with(replicaCount=3))
    deployment = manifests["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    c = _container(manifests)
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    pdb = manifests["PodDisruptionBudget"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    service = manifests["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_every_env_var_is_a_dmgate_setting(helm):
    manifests = render(helm, _with(routes={"x": "https://api.x.com"}))
    settings = {f"DMGATE_{name.upper()}" for name in Settings.model_fields}
    env = {e["name"] for e in _container(manifests)["env"]}
    secret = set(manifests["Secret"]["stringData"])
    assert env | secret <= settings, (env | secret) - settings
    assert secret == {
        "DMGATE_DATABASE_URL",
        "DMGATE_REVIEW_TOKENS",
        "DMGATE_SECRET_KEY",
        "DMGATE_REVIEW_WEBHOOK_SECRET",
    }
    assert _container(manifests)["envFrom"] == [{"secretRef": {"name": "dmgate"}}]


def test_secrets_are_required_unless_an_existing_secret_is_named(helm):
    with pytest.raises(helm.HelmRenderError, match=r"secrets\.databaseUrl"):
        render(helm, None)
    manifests = render(helm, {"existingSecret": "dmgate-prod"})
    assert "Secret" not in manifests
    assert _container(manifests)["envFrom"] == [{"secretRef": {"name": "dmgate-prod"}}]


def _checksums(manifests: dict[str, dict[str, Any]]) -> dict[str, str]:
    annotations = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_a_policy_change_rolls_the_pods_through_the_checksum_annotation(helm):
    before = _checksums(render(helm, CI_VALUES))
    assert before == _checksums(render(helm, _with(replicaCount=5)))
    changed = _checksums(render(helm, _with(policies="mode: shadow\npolicies: {}\n")))
    assert changed["checksum/policies"] != before["checksum/policies"]
    assert changed["checksum/secret"] == before["checksum/secret"]
    rotated = _checksums(render(helm, _with(secrets__secretKey="another-key-0123456789")))
    assert rotated["checksum/secret"] != before["checksum/secret"]


def test_the_policy_configmap_is_mounted_as_a_directory_and_is_a_valid_policy_file(
    helm, tmp_path: Path
):
    manifests = render(helm, CI_VALUES)
    c = _container(manifests)
    policy_file = next(e["value"] for e in c["env"] if e["name"] == "DMGATE_POLICY_FILE")
    mount = next(m for m in c["volumeMounts"] if m["name"] == "policies")
    assert "subPath" not in mount  # subPath mounts never see ConfigMap updates
    assert str(Path(policy_file).parent) == mount["mountPath"]
    text = manifests["ConfigMap"]["data"][Path(policy_file).name]
    (tmp_path / "policies.yaml").write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "check-policies", str(tmp_path / "policies.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_service_monitor_is_optional_and_labels_the_job_dmgate(helm):
    assert "ServiceMonitor" not in render(helm, _with(serviceMonitor={"enabled": False}))
    sm = render(helm, CI_VALUES)["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "dmgate"} in endpoint[
        "relabelings"
    ]


# --- forward mode ----------------------------------------------------------------------


def _env(manifests: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(manifests)["env"] if "value" in e}


def _pod(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return manifests["Deployment"]["spec"]["template"]["spec"]


def test_forward_mode_ca_secret_is_mounted_read_only_and_named_by_dmgate_ca_dir(helm):
    manifests = render(helm, _with(forwardMode__caSecret="dmgate-ca"))
    (volume,) = [v for v in _pod(manifests)["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "dmgate-ca"
    assert {(i["key"], i["path"]) for i in volume["secret"]["items"]} == {
        ("ca.pem", "ca.pem"),
        ("ca-key.pem", "ca-key.pem"),
    }
    # Secret files belong to root:fsGroup; the pod runs as 10001 with fsGroup 10001.
    assert _pod(manifests)["securityContext"]["fsGroup"] == 10001
    assert volume["secret"]["defaultMode"] == 0o440
    (mount,) = [m for m in _container(manifests)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": "/etc/dmgate/ca", "readOnly": True}
    assert "subPath" not in mount
    assert _env(manifests)["DMGATE_CA_DIR"] == mount["mountPath"]


def test_forward_mode_ca_secret_without_fs_group_is_world_readable(helm):
    # null removes the chart's default fsGroup; the files then belong to root:root.
    values = _with(forwardMode__caSecret="dmgate-ca", podSecurityContext__fsGroup=None)
    pod = _pod(render(helm, values))
    assert "fsGroup" not in pod["securityContext"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["defaultMode"] == 0o444


def test_without_a_ca_secret_each_pod_keeps_its_ca_in_the_writable_data_volume(helm):
    manifests = render(helm, CI_VALUES)
    assert "DMGATE_CA_DIR" not in _env(manifests)  # default: /data/dmgate-ca (WORKDIR /data)
    assert not [v for v in _pod(manifests)["volumes"] if "secret" in v]
    data = next(m for m in _container(manifests)["volumeMounts"] if m["name"] == "data")
    assert data["mountPath"] == "/data" and not data.get("readOnly")


def test_notes_warn_when_replicas_would_not_share_a_ca(helm):
    assert "WARNING: forwardMode.caSecret is not set" in notes(helm, _with(replicaCount=2))
    assert "WARNING" not in notes(helm, _with(replicaCount=1))
    shared = notes(helm, _with(replicaCount=3, forwardMode__caSecret="dmgate-ca"))
    assert "WARNING" not in shared
    assert "get secret dmgate-ca" in shared


def test_forward_mode_secrets_go_into_the_secret_not_the_plain_env(helm):
    manifests = render(helm, _with(forwardMode=FORWARD_MODE))
    secret = manifests["Secret"]["stringData"]
    assert secret["DMGATE_PROXY_AUTH"] == "bot:proxy-pw,ci:proxy-pw2"
    assert secret["DMGATE_CA_PASSPHRASE"] == "ca-passphrase"
    c = _container(manifests)
    assert not {"DMGATE_PROXY_AUTH", "DMGATE_CA_PASSPHRASE"} & {e["name"] for e in c["env"]}
    assert "proxy-pw" not in yaml.safe_dump(manifests["Deployment"])
    assert c["envFrom"] == [{"secretRef": {"name": "dmgate"}}]
    # Optional: absent unless set.
    assert not {"DMGATE_PROXY_AUTH", "DMGATE_CA_PASSPHRASE"} & set(
        render(helm, CI_VALUES)["Secret"]["stringData"]
    )


def test_a_proxy_auth_change_rolls_the_pods(helm):
    before = _checksums(render(helm, _with(forwardMode__proxyAuth="bot:one")))
    after = _checksums(render(helm, _with(forwardMode__proxyAuth="bot:two")))
    assert after["checksum/secret"] != before["checksum/secret"]


def test_forward_mode_secrets_are_refused_with_an_existing_secret(helm):
    # The chart renders no Secret then: silently dropping proxyAuth would leave the
    # forward proxy open.
    for key in ("proxyAuth", "caPassphrase"):
        with pytest.raises(helm.HelmRenderError, match=r"DMGATE_PROXY_AUTH.*dmgate-prod"):
            render(helm, {"existingSecret": "dmgate-prod", "forwardMode": {key: "x:y"}})
    manifests = render(
        helm, {"existingSecret": "dmgate-prod", "forwardMode": {"caSecret": "dmgate-ca"}}
    )
    assert "Secret" not in manifests
    assert _env(manifests)["DMGATE_CA_DIR"] == "/etc/dmgate/ca"


def test_tunnel_hosts_are_joined_with_commas(helm):
    env = _env(render(helm, _with(forwardMode__tunnelHosts=["github.com", "*.example.com:8443"])))
    assert env["DMGATE_TUNNEL_HOSTS"] == "github.com,*.example.com:8443"
    assert "DMGATE_TUNNEL_HOSTS" not in _env(render(helm, CI_VALUES))


def test_dmgate_reads_the_rendered_forward_mode_settings(helm, monkeypatch):
    manifests = render(helm, _with(forwardMode=FORWARD_MODE))
    for name in [n for n in os.environ if n.startswith("DMGATE_")]:
        monkeypatch.delenv(name)
    for name, value in {**_env(manifests), **manifests["Secret"]["stringData"]}.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.ca_dir == Path("/etc/dmgate/ca")
    assert settings.ca_passphrase and settings.ca_passphrase.get_secret_value() == "ca-passphrase"
    assert settings.tunnel_hosts == [("github.com", 443), ("*.example.com", 8443)]
    assert [(u, p.get_secret_value()) for u, p in settings.proxy_auth] == [
        ("bot", "proxy-pw"),
        ("ci", "proxy-pw2"),
    ]
