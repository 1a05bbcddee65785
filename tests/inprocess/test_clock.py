"""Time-driven behaviour under a manual clock: what would take hours (retention) or
seconds of backoff (notification retries) happens when the test moves the clock."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from proxy.clock import ManualClock
from tests.inprocess.conftest import wait_until
from tests.inprocess.dm import send_dm
from tests.integration.dm_helpers import TEMPLATE_ONLY, pitch
from tests.support import WebhookReceiver


@pytest.fixture(autouse=True)
def x_users(fake_x):
    for uid in ("201", "202", "203"):
        fake_x.state.add_user(uid)


async def test_notification_retries_wait_for_the_clock(gate_factory):
    receiver = WebhookReceiver(fail_first=2)
    clock = ManualClock()
    try:
        gate = await gate_factory(
            policy_yaml=TEMPLATE_ONLY,
            env={"DMGATE_REVIEW_WEBHOOK_URL": receiver.url},
            clock=clock,
        )
        for i, rid in enumerate(("201", "202", "203")):
            r = await send_dm(gate.client, rid, pitch(i))
        hold_id = r.headers["DMGate-Hold-Id"]

        async def attempts(n: int) -> bool:
            return receiver.attempts >= n

        await wait_until(lambda: attempts(1), what="first attempt")  # announced at once
        clock.advance(1)  # the first backoff
        await wait_until(lambda: attempts(2), what="second attempt")
        assert receiver.received == []
        clock.advance(2)  # the second, doubled
        await wait_until(lambda: attempts(3), what="delivery")
        assert [json.loads(h.body)["hold"]["id"] for h in receiver.received] == [hold_id]
        assert gate.metric("dmgate_review_notifications_total", result="failed") == 2
    finally:
        receiver.stop()


async def test_retention_prunes_facts_once_no_window_can_see_them(gate_factory):
    clock = ManualClock()
    gate = await gate_factory(policy_yaml=TEMPLATE_ONLY, clock=clock)
    for i, rid in enumerate(("201", "202")):
        await send_dm(gate.client, rid, pitch(i))  # two copies in the template index

    async def pruned() -> float:
        return gate.metric("dmgate_retention_pruned_total", kind="decisions")

    # Past the longest window (24 h) plus the margin (24 h), and one retention interval
    # on: a pass runs and the two decision records go.
    clock.advance(timedelta(hours=48, minutes=10))
    assert await wait_until(pruned, what="retention pass") == 2
