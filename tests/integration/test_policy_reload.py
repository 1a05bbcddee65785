"""Hot reload: SIGHUP and file changes swap the policies; a bad file is refused and the
previous policies stay in force. `dmgate check-policies` validates offline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.integration.dm_helpers import TEMPLATE_ONLY, pitch, send_dm
from tests.support import REPO, wait_until


def _reloads(gate, result: str) -> float:
    return gate.metric("dmgate_policy_reloads_total", result=result)


def test_file_change_and_sighup_reload_and_bad_file_keeps_old_policies(dmgate_factory, fake_x):
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY)
    policy = gate.tmp / "policies.yaml"
    for i, rid in enumerate(("201", "202", "203")):
        r = send_dm(gate.client, rid, pitch(i))
    assert r.headers["DMGate-Decision"] == "hold"

    # A broken edit: refused, counted, and holds still happen.
    policy.write_text(TEMPLATE_ONLY.replace("action: hold", "action: maybe"))
    wait_until(lambda: _reloads(gate, "failure") >= 1, what="refused reload")
    assert "policy_reload_refused" in gate.logs()
    assert send_dm(gate.client, "204", pitch(4)).headers["DMGate-Decision"] == "hold"

    # A valid edit, picked up on change: block instead of hold.
    policy.write_text(TEMPLATE_ONLY.replace("action: hold", "action: block"))
    wait_until(lambda: _reloads(gate, "success") >= 1, what="reload on change")
    assert send_dm(gate.client, "205", pitch(5)).status_code == 403

    # SIGHUP reloads too (same content: still a successful reload).
    policy.write_text(TEMPLATE_ONLY.replace("action: hold", "action: off"))
    gate.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: _reloads(gate, "success") >= 2, what="reload on SIGHUP")
    assert send_dm(gate.client, "206", pitch(6)).headers["DMGate-Decision"] == "allow"


def test_check_policies_command(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(TEMPLATE_ONLY)
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEMPLATE_ONLY.replace("window: 24h", "window: soon"))
    env = {**os.environ}
    ok = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "check-policies", str(good)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    ko = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "check-policies", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert ko.returncode != 0
    assert "policies.template_reuse.window" in ko.stderr
    default = REPO / "policies" / "default.yaml"
    assert (
        subprocess.run(
            [sys.executable, "-m", "proxy.cli", "check-policies", str(default)],
            capture_output=True,
            env=env,
            cwd=REPO,
        ).returncode
        == 0
    )


def test_bad_policy_file_at_start_is_a_clear_startup_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: enforce\npolicies:\n  follow_timing:\n    action: hold\n    windw: 1h\n")
    env = {
        **os.environ,
        "DMGATE_POLICY_FILE": str(bad),
        "DMGATE_PORT": "0",
        "DMGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "windw" in proc.stderr


def test_bad_settings_are_a_clear_startup_error(tmp_path):
    env = {**os.environ, "DMGATE_ROUTES": '{"x": "ftp://nope"}', "DMGATE_PORT": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "DMGATE_ROUTES" in proc.stderr
    assert "http(s)" in proc.stderr


def test_console_script_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0
    assert "serve" in out.stdout and "check-policies" in out.stdout
