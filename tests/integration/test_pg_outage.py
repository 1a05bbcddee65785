"""PostgreSQL stopped under a running dmgate: DMs fail closed with 503, pass-through and
signal requests keep flowing, every review API endpoint and the webhooks answer 503, /readyz
says not ready — and everything recovers by itself when the database is back. Stops and
starts the machine's real PostgreSQL server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.integration.dm_helpers import (
    SENDER,
    SENDER_TOKEN,
    TEMPLATE_ONLY,
    bearer,
    pitch,
    send_dm,
)
from tests.support import wait_until

WEBHOOK_SECRET = "consumer-secret-for-webhooks"


def _cluster() -> list[str]:
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*"))
        if Path("/etc/postgresql").is_dir()
        else []
    )
    if not versions or shutil.which("pg_ctlcluster") is None or not pg.available():
        reason = "needs a local PostgreSQL cluster managed by pg_ctlcluster"
        if os.environ.get("CI"):  # as for every other tool: required under CI
            pytest.fail(f"{reason} (CI is set: required)", pytrace=False)
        pytest.skip(reason)
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


@pytest.fixture
def outage() -> Iterator[tuple[list[str], str]]:
    cluster = _cluster()
    url = pg.create_database()
    yield cluster, url
    subprocess.run([*cluster, "start"], check=False, capture_output=True)  # always restore
    wait_until(pg.available, timeout=60, what="PostgreSQL back")
    pg.drop_database(url)


def _signed_follow_webhook(follower: str) -> tuple[bytes, dict[str, str]]:
    event = {
        "type": "follow",
        "created_timestamp": str(int(time.time() * 1000)),
        "target": {"id": SENDER},
        "source": {"id": follower},
    }
    body = json.dumps({"for_user_id": SENDER, "follow_events": [event]}).encode()
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).digest()
    return body, {"x-twitter-webhooks-signature": "sha256=" + base64.b64encode(digest).decode()}


def test_database_outage_fails_dms_closed_and_recovers(dmgate_factory, fake_x, outage):
    cluster, url = outage
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    gate = dmgate_factory(
        env={
            "DMGATE_DATABASE_URL": url,
            "DMGATE_WEBHOOK_SECRETS": json.dumps({"x": WEBHOOK_SECRET}),
        },
        policy_yaml=TEMPLATE_ONLY,
    )
    assert send_dm(gate.client, "201", "hello there, how was the conference?").status_code == 201
    # Two holds (the 3rd and 4th copies of a template) for the reviewers to decide.
    answers = [send_dm(gate.client, str(300 + i), pitch(i)) for i in range(4)]
    approve_id, reject_id = (r.headers["DMGate-Hold-Id"] for r in answers[2:])

    subprocess.run([*cluster, "stop", "-m", "fast"], check=True, capture_output=True)
    before = len(fake_x.state.requests)
    r = send_dm(gate.client, "202", "a message while the database is down")
    assert r.status_code == 503
    assert r.json()["error"] == "store_unavailable"
    assert len(fake_x.state.requests) == before  # not forwarded unjudged
    assert gate.client.get("/x/_test/echo/flowing").status_code == 200  # pass-through
    # Signals: forwarded and answered; what they teach is lost, best effort.
    assert gate.client.get("/x/2/users/me", headers=bearer()).status_code == 200
    ready = gate.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert gate.client.get("/healthz").status_code == 200  # alive: no restart needed
    # Every review API endpoint and the webhooks too: 503, never a 500 (reads and writes).
    review = gate.review()
    hook, signature = _signed_follow_webhook("901")
    for name, r in {
        "list": review.get("/api/v1/holds"),
        "get": review.get(f"/api/v1/holds/{approve_id}"),
        "approve": review.post(f"/api/v1/holds/{approve_id}/approve", json={}),
        "reject": review.post(f"/api/v1/holds/{reject_id}/reject", json={"reason": "spam"}),
        "follow-events": review.post(
            "/api/v1/follow-events", json={"platform": "x", "account": "1", "follower": "2"}
        ),
        "webhook": gate.client.post("/webhooks/x", content=hook, headers=signature),
    }.items():
        assert r.status_code == 503, (name, r.text)
        assert r.json()["error"] == "store_unavailable", name
    assert gate.metric("dmgate_store_failures_total") == 7  # the DM and the six above
    assert "internal_error" not in gate.logs()

    subprocess.run([*cluster, "start"], check=True, capture_output=True)
    wait_until(
        lambda: httpx.get(gate.url + "/readyz").status_code == 200,
        timeout=60,
        what="dmgate ready again",
    )
    r = send_dm(gate.client, "203", "and one more once the database is back up")
    assert r.status_code == 201
    assert r.headers["DMGate-Decision"] == "allow"
    assert review.post(f"/api/v1/holds/{approve_id}/approve", json={}).json()["status"] == "sent"
    r = review.post(f"/api/v1/holds/{reject_id}/reject", json={"reason": "spam"})
    assert r.json()["status"] == "rejected"
    hook, signature = _signed_follow_webhook("902")
    assert gate.client.post("/webhooks/x", content=hook, headers=signature).status_code == 200
