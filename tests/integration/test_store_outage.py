"""When the store cannot be written, DMs fail closed (503, never forwarded unjudged) while
pass-through and signal traffic keeps flowing, and service resumes by itself. (The review
API and webhooks under the same lock: test_review_api_robustness.py.)"""

from __future__ import annotations

import sqlite3

from tests.integration.conftest import sqlite_only
from tests.integration.dm_helpers import TEMPLATE_ONLY, bearer, send_dm


@sqlite_only
def test_locked_store_fails_dms_closed_and_passthrough_flows(dmgate_factory, fake_x):
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY)
    fake_x.state.add_user("100", token="user-token-of-100")
    assert (
        send_dm(gate.client, "201", "a first message to prove the store works fine").status_code
        == 201
    )
    before = len(fake_x.state.requests)

    # Another process takes the database's write lock and keeps it (a stuck backup job,
    # a full disk): dmgate cannot record the decision, so it must not send the DM.
    lock = sqlite3.connect(gate.tmp / "dmgate.db", timeout=1)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        r = send_dm(gate.client, "202", "a second message while the store is unwritable")
        assert r.status_code == 503
        assert r.json()["error"] == "store_unavailable"
        assert r.json()["source"] == "dmgate"
        assert len(fake_x.state.requests) == before  # nothing forwarded
        passthrough = gate.client.get("/x/_test/echo/still-flowing")
        assert passthrough.status_code == 200
        # A signal is forwarded and answered; what it teaches is lost (best effort).
        assert gate.client.get("/x/2/users/me", headers=bearer()).status_code == 200
        assert gate.metric("dmgate_store_failures_total") == 1
    finally:
        lock.rollback()
        lock.close()
    r = send_dm(gate.client, "203", "a third message once the store is writable again")
    assert r.status_code == 201
    assert r.headers["DMGate-Decision"] == "allow"
