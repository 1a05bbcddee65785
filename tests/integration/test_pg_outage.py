"""PostgreSQL stopped under a running dmgate: DMs fail closed with 503, pass-through keeps
flowing, the review API answers 503, /readyz says not ready — and everything recovers by
itself when the database is back. Stops and starts the machine's real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, TEMPLATE_ONLY, send_dm
from tests.support import wait_until


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


def test_database_outage_fails_dms_closed_and_recovers(dmgate_factory, fake_x, outage):
    cluster, url = outage
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    gate = dmgate_factory(env={"DMGATE_DATABASE_URL": url}, policy_yaml=TEMPLATE_ONLY)
    assert send_dm(gate.client, "201", "hello there, how was the conference?").status_code == 201

    subprocess.run([*cluster, "stop", "-m", "fast"], check=True, capture_output=True)
    before = len(fake_x.state.requests)
    r = send_dm(gate.client, "202", "a message while the database is down")
    assert r.status_code == 503
    assert r.json()["error"] == "store_unavailable"
    assert len(fake_x.state.requests) == before  # not forwarded unjudged
    assert gate.client.get("/x/_test/echo/flowing").status_code == 200  # pass-through
    ready = gate.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert gate.client.get("/healthz").status_code == 200  # alive: no restart needed
    # The review API too: 503, never a 500 (reads and writes alike).
    review = gate.review()
    for r in (
        review.get("/api/v1/holds"),
        review.post(
            "/api/v1/follow-events", json={"platform": "x", "account": "1", "follower": "2"}
        ),
    ):
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "store_unavailable"

    subprocess.run([*cluster, "start"], check=True, capture_output=True)
    wait_until(
        lambda: httpx.get(gate.url + "/readyz").status_code == 200,
        timeout=60,
        what="dmgate ready again",
    )
    r = send_dm(gate.client, "203", "and one more once the database is back up")
    assert r.status_code == 201
    assert r.headers["DMGate-Decision"] == "allow"
