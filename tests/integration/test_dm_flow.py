"""DMs end to end where the process itself matters: a hold that survives kill -9, keys
and credentials on disk across restarts, the decision line in the process's log. Everything
that is request and response runs in process: tests/inprocess/test_dm_flow.py."""

from __future__ import annotations

import signal

import pytest

from tests.integration.conftest import sqlite_only
from tests.integration.dm_helpers import (
    SENDER,
    SENDER_TOKEN,
    TEMPLATE_ONLY,
    pitch,
    send_dm,
)


@pytest.fixture(autouse=True)
def x_users(fake_x):
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    for uid in ("201", "202", "203", "204", "205"):
        fake_x.state.add_user(uid)


@pytest.fixture
def gate(dmgate_factory):
    return dmgate_factory(policy_yaml=TEMPLATE_ONLY)


def _hold_one(gate) -> str:
    for i, rid in enumerate(("201", "202", "203")):
        r = send_dm(gate.client, rid, pitch(i))
    assert r.headers["DMGate-Decision"] == "hold", r.text
    return r.headers["DMGate-Hold-Id"]


def test_acknowledged_hold_survives_kill_9(dmgate_factory, fake_x):
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY)
    hold_id = _hold_one(gate)
    gate.kill()  # SIGKILL: no shutdown hooks run
    gate.restart()
    hold = gate.review().get(f"/api/v1/holds/{hold_id}").json()
    assert hold["status"] == "pending"
    r = gate.review().post(f"/api/v1/holds/{hold_id}/approve")
    assert r.json()["status"] == "sent"
    assert fake_x.state.requests[-1].header("Authorization") == f"Bearer {SENDER_TOKEN}"


@sqlite_only
def test_credentials_are_encrypted_at_rest(gate, fake_x):
    _hold_one(gate)
    gate.stop(signal.SIGTERM)
    raw = b"".join(p.read_bytes() for p in gate.tmp.glob("dmgate.db*"))
    assert SENDER_TOKEN.encode() not in raw
    assert b"Authorization" not in raw


def test_dm_decision_log_has_the_fixed_fields_and_no_text(gate, fake_x):
    _hold_one(gate)
    records = [r for r in gate.log_records() if r.get("event") == "dm_decision"]
    assert len(records) == 3
    last = records[-1]
    for key in (
        "decision_id",
        "route",
        "platform",
        "account",
        "recipients",
        "action",
        "mode",
        "policies",
        "evaluation_ms",
        "hold_id",
    ):
        assert key in last, key
    assert last["action"] == "hold"
    logs = gate.logs()
    assert "Rocketly" not in logs
    assert SENDER_TOKEN not in logs
    assert [p["policy"] for p in last["policies"]] == ["template_reuse"]


def test_generated_key_file_is_private_and_reused(dmgate_factory, fake_x):
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY, env={"DMGATE_SECRET_KEY": ""})
    key_file = gate.tmp / "dmgate.key"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_bytes()
    hold_id = _hold_one(gate)
    gate.restart()  # the same key opens the credentials sealed before the restart
    assert key_file.read_bytes() == key
    r = gate.review().post(f"/api/v1/holds/{hold_id}/approve")
    assert r.json()["status"] == "sent"
    assert fake_x.state.requests[-1].header("Authorization") == f"Bearer {SENDER_TOKEN}"
