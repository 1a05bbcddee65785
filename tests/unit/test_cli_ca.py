"""`dmgate ca init | export`, run as the operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from tests.support import REPO


def dmgate(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DMGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        timeout=60,
    )


def test_init_refuses_to_replace_a_ca_unless_forced(tmp_path):
    first = dmgate(tmp_path, "ca", "init")
    assert first.returncode == 0, first.stderr
    assert b"api.x.com" in first.stdout and b"fingerprint" in first.stdout
    cert = tmp_path / "dmgate-ca" / "ca.pem"
    original = cert.read_bytes()

    again = dmgate(tmp_path, "ca", "init")
    assert again.returncode == 1 and b"--force" in again.stderr
    assert cert.read_bytes() == original

    forced = dmgate(tmp_path, "ca", "init", "--force")
    assert forced.returncode == 0 and cert.read_bytes() != original


def test_export_prints_the_certificate_and_the_bundle(tmp_path):
    routes = '{"social": {"upstream": "https://mastodon.example", "platform": "mastodon"}}'
    exported = dmgate(tmp_path, "ca", "export", DMGATE_ROUTES=routes)  # creates it first
    assert exported.returncode == 0, exported.stderr
    cert = x509.load_pem_x509_certificate(exported.stdout)
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    assert [n.value for n in constraints.permitted_subtrees] == ["mastodon.example"]
    assert b"PRIVATE" not in exported.stdout

    bundle = dmgate(tmp_path, "ca", "export", "--bundle", DMGATE_ROUTES=routes)
    assert bundle.returncode == 0
    assert bundle.stdout.count(b"BEGIN CERTIFICATE") > 10
    assert bundle.stdout.rstrip().endswith(exported.stdout.rstrip())


def test_ca_dir_and_passphrase_settings(tmp_path):
    env = {"DMGATE_CA_DIR": str(tmp_path / "elsewhere"), "DMGATE_CA_PASSPHRASE": "correct horse"}
    assert dmgate(tmp_path, "ca", "init", **env).returncode == 0
    key = tmp_path / "elsewhere" / "ca-key.pem"
    assert b"ENCRYPTED" in key.read_bytes()
    wrong = dmgate(tmp_path, "ca", "export", **{**env, "DMGATE_CA_PASSPHRASE": "wrong"})
    assert wrong.returncode == 1 and b"correct horse" not in wrong.stderr
    assert dmgate(tmp_path, "ca", "export", **env).returncode == 0
