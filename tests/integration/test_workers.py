"""`dmgate serve --workers N` (DMGATE_WORKERS): one port, several processes, one view.

Each test starts two workers. What must hold: /metrics counts every worker's requests
whichever one answers the scrape; each hold is announced once and expires once; a policy
file change reaches every worker; a killed worker is replaced; SIGTERM stops them all.
And the access log (DMGATE_ACCESS_LOG), off by default: it costs every request."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.integration.dm_helpers import TEMPLATE_ONLY, pitch, send_dm
from tests.support import WebhookReceiver, wait_until

WORKERS = {"DMGATE_WORKERS": "2"}


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def events(gate, name: str) -> list[dict]:
    return [r for r in gate.log_records() if r.get("event") == name]


def requests_to(gate, prefix: str) -> list[dict]:
    return [r for r in events(gate, "http_request") if r["path"].startswith(prefix)]


@pytest.fixture
def x_users(fake_x):
    for uid in ("201", "202", "203", "204", "205"):
        fake_x.state.add_user(uid)


def test_metrics_sum_every_worker_and_store_gauges_are_not_summed(dmgate_factory, fake_x, x_users):
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY, env=WORKERS)
    assert len(workers_of(gate.proc.pid)) == 2
    for _ in range(40):  # a new connection each time: the kernel spreads them
        r = httpx.get(f"{gate.url}/plain/2/users/by", headers={"Connection": "close"})
        assert r.status_code in (200, 404)
    with httpx.Client(base_url=gate.url, headers={"Connection": "close"}) as client:
        for i, rid in enumerate(("201", "202", "203", "204")):
            send_dm(client, rid, pitch(i))  # the 3rd and 4th are held
    for _ in range(10):  # whichever worker answers the scrape
        assert gate.metric("dmgate_requests_total", route="plain", kind="passthrough") == 40
        assert gate.metric("dmgate_holds_pending") == 2  # the store's count, not 2 + 2
    started = [r for r in gate.log_records() if r.get("event") == "dmgate_started"]
    assert len(started) == 2
    # One stream, three processes: every line is one JSON object (the migrations' too) or
    # dmgate's own announcement.
    for line in gate.logs().splitlines():
        assert line.startswith("dmgate: ") or isinstance(json.loads(line), dict), line
    assert any(r.get("event") == "migration" for r in gate.log_records())


def test_each_hold_is_announced_once_and_expires_once(dmgate_factory, fake_x, x_users):
    receiver = WebhookReceiver(fail_first=1)
    try:
        gate = dmgate_factory(
            policy_yaml=TEMPLATE_ONLY,
            env={**WORKERS, "DMGATE_REVIEW_WEBHOOK_URL": receiver.url, "DMGATE_HOLD_TTL": "3s"},
        )
        held = []
        with httpx.Client(base_url=gate.url, headers={"Connection": "close"}) as client:
            for i, rid in enumerate(("201", "202", "203", "204", "205")):
                r = send_dm(client, rid, pitch(i))
                if r.headers["DMGate-Decision"] == "hold":
                    held.append(r.headers["DMGate-Hold-Id"])
        assert len(held) == 3
        wait_until(lambda: len(receiver.received) >= 3, timeout=30, what="announcements")
        ids = [json.loads(h.body)["hold"]["id"] for h in receiver.received]
        assert sorted(ids) == sorted(held)  # each once, by whichever worker
        assert receiver.attempts == 4  # one failure, three deliveries

        def expired() -> float:
            return gate.metric("dmgate_holds_resolved_total", outcome="expired")

        wait_until(lambda: expired() == 3, timeout=30, what="expiry")
        assert len(events(gate, "hold_expired")) == 3
    finally:
        receiver.stop()


def test_a_policy_change_reaches_every_worker(dmgate_factory, fake_x, x_users):
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY, env=WORKERS)
    policy = Path(gate.env["DMGATE_POLICY_FILE"])

    def reloads(reason: str) -> list[dict]:
        return [e for e in events(gate, "policy_reloaded") if e["reason"] == reason]

    # Both workers up, so that both read the old file before it changes.
    wait_until(lambda: "(2 workers)" in gate.logs(), what="both workers ready")
    policy.write_text(TEMPLATE_ONLY.replace("min_recipients: 3", "min_recipients: 2"))
    # One per worker: a worker that sees the write twice (truncated, then written) reloads
    # the same version once.
    wait_until(lambda: len(reloads("file changed")) == 2, timeout=20, what="reloads")
    os.kill(gate.proc.pid, signal.SIGHUP)  # to the supervisor: passed to both workers
    wait_until(lambda: len(reloads("SIGHUP")) == 2, timeout=20, what="SIGHUP")
    assert len(reloads("file changed")) == 2
    assert {e["version"] for e in events(gate, "policy_reloaded")} == {
        reloads("SIGHUP")[0]["version"]
    }


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(dmgate_factory, fake_x):
    gate = dmgate_factory(env=WORKERS)
    # Both workers up (one answering /healthz is not both: a worker dying while starting
    # stops dmgate, as a failed start should).
    wait_until(lambda: "(2 workers)" in gate.logs(), what="both workers ready")
    first, _ = workers_of(gate.proc.pid)
    os.kill(first, signal.SIGKILL)
    wait_until(
        lambda: len(workers_of(gate.proc.pid)) == 2 and first not in workers_of(gate.proc.pid),
        timeout=20,
        what="a replacement worker",
    )
    assert events(gate, "worker_exited")[0]["pid"] == first
    for _ in range(10):
        r = httpx.get(f"{gate.url}/healthz", headers={"Connection": "close"})
        assert r.status_code == 200
    now = workers_of(gate.proc.pid)
    gate.stop(signal.SIGTERM)
    assert gate.proc.returncode == 0
    for pid in now:
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return "Z"


def test_access_log_is_off_by_default_and_never_carries_the_query(dmgate_factory, fake_x):
    quiet = dmgate_factory()
    logged = dmgate_factory(env={"DMGATE_ACCESS_LOG": "true"})
    for gate in (quiet, logged):
        r = httpx.get(f"{gate.url}/plain/2/users/me?token=hunter2-secret")
        assert r.status_code in (200, 401)
    assert events(quiet, "http_request") == []
    # The line is written once the answer is sent: wait for it (the start-up's /healthz
    # polls have lines of their own already).
    wait_until(lambda: requests_to(logged, "/plain/"), what="the request's access log line")
    (line,) = requests_to(logged, "/plain/")
    assert line["path"] == "/plain/2/users/me" and line["status"] == r.status_code
    assert "hunter2-secret" not in logged.logs()
