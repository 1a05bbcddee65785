"""The Helm chart: `helm lint --strict` (Helm v4 as a library), rendered manifests valid for
Kubernetes 1.33 (kubernetes-validate --strict), and rendering what dmgate needs."""

from __future__ import annotations

import importlib.util
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


def _with(**changes: Any) -> dict[str, Any]:
    values = yaml.safe_load(yaml.safe_dump(CI_VALUES))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = values
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return values


@pytest.mark.parametrize("values", [None, CI_VALUES], ids=["defaults", "ci-values"])
def test_helm_lint_strict_is_clean(helm, values):
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_rendered_manifests_are_valid_for_kubernetes_1_33(helm, tmp_path: Path):
    manifests = render(helm, CI_VALUES)
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
