"""Each new hold is announced to the review endpoint: signed, with an idempotency key, from a
durable outbox, retried until delivered."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.integration.dm_helpers import TEMPLATE_ONLY, pitch, send_dm
from tests.support import WebhookReceiver, free_port, wait_until

SECRET = "review-webhook-secret-xyz"


@pytest.fixture
def receiver():
    r = WebhookReceiver(fail_first=2)
    yield r
    r.stop()


def test_hold_is_announced_signed_and_retried_until_delivered(dmgate_factory, receiver):
    gate = dmgate_factory(
        policy_yaml=TEMPLATE_ONLY,
        env={
            "DMGATE_REVIEW_WEBHOOK_URL": receiver.url,
            "DMGATE_REVIEW_WEBHOOK_SECRET": SECRET,
        },
    )
    for i, rid in enumerate(("201", "202", "203")):
        r = send_dm(gate.client, rid, pitch(i))
    hold_id = r.headers["DMGate-Hold-Id"]
    wait_until(lambda: receiver.received, timeout=20, what="notification delivery")
    hook = receiver.received[0]
    assert receiver.attempts == 3  # two failures, then delivered
    expected = "sha256=" + hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["DMGate-Signature"] == expected
    assert hook.headers["Idempotency-Key"]
    payload = json.loads(hook.body)
    assert payload["event"] == "hold.created"
    assert payload["hold"]["id"] == hold_id
    assert payload["hold"]["recipients"] == ["203"]
    wait_until(lambda: gate.metric("dmgate_review_notifications_total", result="delivered") == 1)
    assert gate.metric("dmgate_review_notifications_total", result="failed") == 2
    assert SECRET not in gate.logs()


def test_notification_outbox_survives_a_restart(dmgate_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"  # nothing listens there yet
    gate = dmgate_factory(policy_yaml=TEMPLATE_ONLY, env={"DMGATE_REVIEW_WEBHOOK_URL": url})
    for i, rid in enumerate(("201", "202", "203")):
        r = send_dm(gate.client, rid, pitch(i))
    hold_id = r.headers["DMGate-Hold-Id"]
    wait_until(lambda: gate.metric("dmgate_review_notifications_total", result="failed") >= 1)
    gate.kill()
    receiver = WebhookReceiver(port=port)
    try:
        gate.restart()
        wait_until(lambda: receiver.received, timeout=20, what="delivery after restart")
        assert json.loads(receiver.received[0].body)["hold"]["id"] == hold_id
        assert "DMGate-Signature" not in receiver.received[0].headers  # no secret configured
    finally:
        receiver.stop()
