"""Three dmgate replicas on one PostgreSQL: every guarantee holds across them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest

from tests import pg
from tests.integration.dm_helpers import (
    SENDER,
    SENDER_TOKEN,
    TEMPLATE_ONLY,
    bearer,
    learn_identity,
    pitch,
    send_dm,
)
from tests.support import DMGate, WebhookReceiver, wait_until

FOLLOW_AND_TEMPLATE = """
policies:
  follow_timing: {action: hold, window: 1h}
  template_reuse: {action: hold, min_recipients: 3, window: 24h}
"""


@pytest.fixture
def shared_pg() -> Iterator[str]:
    yield from pg.fresh_database()


@pytest.fixture
def replicas(
    dmgate_factory: Callable[..., DMGate], shared_pg: str, fake_x
) -> Callable[..., list[DMGate]]:
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)

    def start(n: int = 3, env: dict[str, str] | None = None, policy: str = TEMPLATE_ONLY):
        return [
            dmgate_factory(
                env={"DMGATE_DATABASE_URL": shared_pg, **(env or {})}, policy_yaml=policy
            )
            for _ in range(n)
        ]

    return start


def test_template_copies_are_counted_across_replicas(replicas, fake_x):
    a, b, c = replicas()
    assert send_dm(a.client, "201", pitch(1)).headers["DMGate-Decision"] == "allow"
    assert send_dm(b.client, "202", pitch(2)).headers["DMGate-Decision"] == "allow"
    third = send_dm(c.client, "203", pitch(3))
    assert third.headers["DMGate-Decision"] == "hold"
    # The hold made on c is visible to reviewers on a.
    assert a.review().get(f"/api/v1/holds/{third.headers['DMGate-Hold-Id']}").status_code == 200


def test_copies_arriving_at_the_same_instant_on_different_replicas(replicas, fake_x):
    gates = replicas()
    decisions: list[str] = []
    barrier = threading.Barrier(9)

    def send(i: int) -> None:
        barrier.wait()
        r = send_dm(gates[i % 3].client, str(300 + i), pitch(i))
        decisions.append(r.headers["DMGate-Decision"])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Whatever the interleaving: recipients 1 and 2 pass, the 3rd to 9th are held.
    assert sorted(decisions) == ["allow"] * 2 + ["hold"] * 7
    assert len(fake_x.state.sent) == 2


def test_racing_approvals_on_every_replica_send_once(replicas, fake_x):
    gates = replicas()
    for i, rid in enumerate(("201", "202", "203")):
        r = send_dm(gates[i].client, rid, pitch(i))
    hold_id = r.headers["DMGate-Hold-Id"]
    before = len(fake_x.state.sent)
    results: list[int] = []
    barrier = threading.Barrier(20)

    def approve(i: int) -> None:
        review = gates[i % 3].review("alice" if i % 2 else "bob")
        barrier.wait()
        results.append(review.post(f"/api/v1/holds/{hold_id}/approve").status_code)

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 19
    assert len(fake_x.state.sent) == before + 1
    assert gates[2].review().get(f"/api/v1/holds/{hold_id}").json()["status"] == "sent"


def test_notifications_and_expiry_run_everywhere_without_double_work(replicas, fake_x):
    receiver = WebhookReceiver(fail_first=4)  # every replica sees the retries come due
    try:
        gates = replicas(env={"DMGATE_REVIEW_WEBHOOK_URL": receiver.url, "DMGATE_HOLD_TTL": "4s"})
        held = []
        for i in range(6):
            r = send_dm(gates[i % 3].client, str(400 + i), pitch(i))
            if r.headers["DMGate-Decision"] == "hold":
                held.append(r.headers["DMGate-Hold-Id"])
        assert len(held) == 4
        wait_until(lambda: len(receiver.received) >= 4, timeout=30, what="deliveries")
        keys = [h.headers["Idempotency-Key"] for h in receiver.received]
        assert len(keys) == len(set(keys)) == 4  # each hold announced once
        assert sorted(json.loads(h.body)["hold"]["id"] for h in receiver.received) == sorted(held)
        assert receiver.attempts == 8  # 4 failures + 4 deliveries: no replica doubled one

        def expired() -> float:
            return sum(g.metric("dmgate_holds_resolved_total", outcome="expired") for g in gates)

        wait_until(lambda: expired() == 4, timeout=30, what="expiry")
        assert expired() == 4  # each hold expired by exactly one replica
    finally:
        receiver.stop()


def test_facts_learnt_on_one_replica_are_used_by_the_others(replicas, fake_x):
    a, b, c = replicas(policy=FOLLOW_AND_TEMPLATE)
    learn_identity(a.client)  # a learns whose token this is
    r = b.review().post(
        "/api/v1/follow-events", json={"platform": "x", "account": SENDER, "follower": "501"}
    )
    assert r.status_code == 201
    held = send_dm(c.client, "501", "Hi, great to e-meet you, thanks for following me!")
    assert held.headers["DMGate-Decision"] == "hold"
    hold = a.review().get(f"/api/v1/holds/{held.headers['DMGate-Hold-Id']}").json()
    assert hold["account"] == SENDER
    assert hold["policies"][0]["policy"] == "follow_timing"
    assert bearer()["Authorization"] not in c.logs()
