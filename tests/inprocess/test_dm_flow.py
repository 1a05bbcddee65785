"""DMs end to end: judged, forwarded, held, blocked, reviewed — through a dmgate served in
the test's event loop in front of the fake X upstream. (Restarts, kill -9, the log and the
files on disk: tests/integration/test_dm_flow.py.)"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from proxy.clock import ManualClock
from tests.inprocess.conftest import Gate, wait_until
from tests.inprocess.dm import learn_identity, send_dm
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, TEMPLATE_ONLY, bearer, pitch


@pytest.fixture(autouse=True)
def x_users(fake_x):
    for uid in ("201", "202", "203", "204", "205"):
        fake_x.state.add_user(uid)


@pytest.fixture
async def gate(gate_factory) -> Gate:
    return await gate_factory(policy_yaml=TEMPLATE_ONLY)


async def test_allowed_dm_is_forwarded_untouched_with_decision_header(gate, fake_x):
    r = await send_dm(
        gate.client, "201", "Hi Anna, great talk yesterday, can I ask about the slides?"
    )
    assert r.status_code == 201, r.text
    assert r.headers["DMGate-Decision"] == "allow"
    assert "dm_conversation_id" in r.json()["data"]
    assert len(fake_x.state.sent) == 1
    sent = fake_x.state.requests[-1]
    assert sent.path == "/2/dm_conversations/with/201/messages"
    assert sent.header("Authorization") == f"Bearer {SENDER_TOKEN}"


async def test_third_recipient_of_a_template_is_held_in_x_shape(gate, fake_x):
    await learn_identity(gate.client)
    for i, rid in enumerate(("201", "202")):
        r = await send_dm(gate.client, rid, pitch(i, "Anna" if i == 0 else "Ben"))
        assert r.headers["DMGate-Decision"] == "allow"
    r = await send_dm(gate.client, "203", pitch(3, "Cleo"))
    assert r.status_code == 201, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    hold_id = r.headers["DMGate-Hold-Id"]
    body = r.json()
    assert body["data"]["dm_conversation_id"] == f"{SENDER}-203"
    assert body["data"]["dm_event_id"].isdigit()
    assert body["dmgate"] == {"hold_id": hold_id, "status": "pending"}
    assert len(fake_x.state.sent) == 2  # the held one did not go out

    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert hold["status"] == "pending"
    assert hold["account"] == SENDER  # learnt from GET /2/users/me for this token
    assert hold["recipients"] == ["203"]
    assert hold["policies"][0]["policy"] == "template_reuse"
    assert "3 recipients" in hold["policies"][0]["reason"]
    assert (
        gate.metric("dmgate_dm_decisions_total", platform="x", action="hold", mode="enforce") == 1
    )
    assert gate.metric("dmgate_holds_pending") == 1


async def _hold_one(gate: Gate) -> str:
    for i, rid in enumerate(("201", "202", "203")):
        r = await send_dm(gate.client, rid, pitch(i))
    assert r.headers["DMGate-Decision"] == "hold", r.text
    return r.headers["DMGate-Hold-Id"]


async def test_retry_of_a_held_dm_returns_the_same_hold(gate, fake_x):
    hold_id = await _hold_one(gate)
    again = await send_dm(gate.client, "203", pitch(2))
    assert again.headers["DMGate-Hold-Id"] == hold_id
    assert again.status_code == 201
    pending = (await gate.review().get("/api/v1/holds", params={"status": "pending"})).json()
    assert [h["id"] for h in pending["items"]] == [hold_id]


async def test_approve_sends_exactly_once_however_many_race(gate, fake_x):
    hold_id = await _hold_one(gate)
    before = len(fake_x.state.sent)
    # Twelve approvals in flight at once, from two reviewers on their own connections.
    reviewers = [gate.review("alice" if i % 2 else "bob") for i in range(12)]
    answers = await asyncio.gather(
        *(review.post(f"/api/v1/holds/{hold_id}/approve") for review in reviewers)
    )
    results = [r.status_code for r in answers]
    assert sorted(results).count(200) == 1, results
    assert results.count(409) == 11
    assert len(fake_x.state.sent) == before + 1
    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert hold["status"] == "sent"
    assert hold["upstream_status"] == 201
    assert hold["decided_by"] in ("alice", "bob")
    assert hold["decided_at"]
    assert gate.metric("dmgate_holds_resolved_total", outcome="sent") == 1
    assert gate.metric("dmgate_hold_review_seconds_count") == 1
    # The released request carries the tool's own credentials (decrypted from the store).
    assert fake_x.state.requests[-1].header("Authorization") == f"Bearer {SENDER_TOKEN}"


async def test_approve_with_edited_text_sends_the_edit(gate, fake_x):
    hold_id = await _hold_one(gate)
    r = await gate.review().post(
        f"/api/v1/holds/{hold_id}/approve",
        json={"text": "Hi Cleo, thanks for following - no pitch, promise.", "note": "rewrote it"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["sent_text"] == "Hi Cleo, thanks for following - no pitch, promise."
    assert r.json()["note"] == "rewrote it"
    assert fake_x.state.sent[-1].text == "Hi Cleo, thanks for following - no pitch, promise."
    assert fake_x.state.requests[-1].json() == {
        "text": "Hi Cleo, thanks for following - no pitch, promise."
    }


async def test_reject_needs_a_reason_and_never_sends(gate, fake_x):
    hold_id = await _hold_one(gate)
    before = len(fake_x.state.sent)
    review = gate.review("bob")
    reject = f"/api/v1/holds/{hold_id}/reject"
    assert (await review.post(reject, json={})).status_code == 422
    assert (await review.post(reject, json={"reason": "  "})).status_code == 422
    r = await review.post(reject, json={"reason": "auto-DM pitch"})
    assert r.status_code == 200
    assert r.json()["status"] == "rejected"
    assert r.json()["decided_by"] == "bob"
    assert r.json()["reason"] == "auto-DM pitch"
    assert (await review.post(f"/api/v1/holds/{hold_id}/approve")).status_code == 409
    assert (await review.post(reject, json={"reason": "again"})).status_code == 409
    assert len(fake_x.state.sent) == before


async def test_release_with_dead_credentials_ends_send_failed_and_a_retry_passes_once(gate, fake_x):
    hold_id = await _hold_one(gate)
    fake_x.state.reject_tokens.add(SENDER_TOKEN)
    r = await gate.review().post(f"/api/v1/holds/{hold_id}/approve")
    assert r.status_code == 200
    assert r.json()["status"] == "send_failed"
    assert r.json()["upstream_status"] == 401
    assert "Unauthorized" in r.json()["upstream_body"]
    # The tool, with a fresh credential, sends the same DM again: it passes as approved.
    fake_x.state.reject_tokens.clear()
    before = len(fake_x.state.sent)
    r = await send_dm(gate.client, "203", pitch(2))
    assert r.headers["DMGate-Decision"] == "allow", r.text
    assert len(fake_x.state.sent) == before + 1
    # Only once: a further identical DM is judged again (and held as a template copy).
    r = await send_dm(gate.client, "203", pitch(2))
    assert r.headers["DMGate-Decision"] == "hold"


async def test_block_action_answers_403_in_x_problem_shape(gate_factory, fake_x):
    gate = await gate_factory(policy_yaml=TEMPLATE_ONLY.replace("action: hold", "action: block"))
    for i, rid in enumerate(("201", "202", "203")):
        r = await send_dm(gate.client, rid, pitch(i), headers={"DMGate-Account": SENDER})
    assert r.status_code == 403
    assert r.headers["DMGate-Decision"] == "block"
    body = r.json()
    assert body["title"] == "Forbidden"
    assert body["detail"].startswith("template_reuse: ")
    assert body["errors"][0]["message"] == body["detail"]
    assert len(fake_x.state.sent) == 2


async def test_shadow_mode_forwards_and_counts_what_would_have_happened(gate_factory, fake_x):
    gate = await gate_factory(policy_yaml=TEMPLATE_ONLY.replace("mode: enforce", "mode: shadow"))
    for i, rid in enumerate(("201", "202", "203")):
        r = await send_dm(gate.client, rid, pitch(i))
    assert r.status_code == 201
    assert r.headers["DMGate-Decision"] == "hold; shadow"
    assert "DMGate-Hold-Id" not in r.headers
    assert len(fake_x.state.sent) == 3
    assert gate.metric("dmgate_dm_decisions_total", platform="x", action="hold", mode="shadow") == 1
    assert (
        gate.metric(
            "dmgate_policy_matches_total", policy="template_reuse", action="hold", mode="shadow"
        )
        == 1
    )


async def test_hold_status_202_setting(gate_factory, fake_x):
    gate = await gate_factory(policy_yaml=TEMPLATE_ONLY, env={"DMGATE_HOLD_STATUS": "202"})
    for i, rid in enumerate(("201", "202", "203")):
        r = await send_dm(gate.client, rid, pitch(i))
    assert r.status_code == 202
    assert r.headers["DMGate-Decision"] == "hold"
    assert r.json()["dmgate"]["hold_id"] == r.headers["DMGate-Hold-Id"]


async def test_unreviewed_hold_expires_and_is_never_sent(gate_factory, fake_x):
    clock = ManualClock()
    gate = await gate_factory(
        policy_yaml=TEMPLATE_ONLY, env={"DMGATE_HOLD_TTL": "72h"}, clock=clock
    )
    hold_id = await _hold_one(gate)
    review = gate.review()

    async def status() -> str:
        return (await review.get(f"/api/v1/holds/{hold_id}")).json()["status"]

    clock.advance(timedelta(hours=71, minutes=59))
    assert await status() == "pending"
    clock.advance(timedelta(minutes=2))  # past the TTL: the sweep it wakes expires it

    async def expired() -> bool:
        return await status() == "expired"

    await wait_until(expired, seconds=15, what="hold expiry")
    assert (await review.post(f"/api/v1/holds/{hold_id}/approve")).status_code == 409
    assert len(fake_x.state.sent) == 2
    assert gate.metric("dmgate_holds_resolved_total", outcome="expired") == 1


async def test_v1_dm_is_judged_too(gate, fake_x):
    async def v1(rid: str, i: int) -> httpx.Response:
        body = {
            "event": {
                "type": "message_create",
                "message_create": {
                    "target": {"recipient_id": rid},
                    "message_data": {"text": pitch(i)},
                },
            }
        }
        return await gate.client.post(
            "/x/1.1/direct_messages/events/new.json", json=body, headers=bearer()
        )

    for i, rid in enumerate(("201", "202")):
        assert (await v1(rid, i)).headers["DMGate-Decision"] == "allow"
    r = await v1("203", 3)
    assert r.status_code == 200
    assert r.headers["DMGate-Decision"] == "hold"
    assert r.json()["event"]["message_create"]["target"]["recipient_id"] == "203"


async def test_group_dm_counts_every_participant(gate, fake_x):
    r = await gate.client.post(
        "/x/2/dm_conversations",
        json={
            "conversation_type": "Group",
            "participant_ids": ["201", "202", "203"],
            "message": {"text": pitch(1)},
        },
        headers=bearer(),
    )
    assert r.status_code == 201
    assert r.headers["DMGate-Decision"] == "hold"
    hold = (await gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}")).json()
    assert sorted(hold["recipients"]) == ["201", "202", "203"]


async def test_an_approved_hold_reaches_its_recipient(gate_factory, fake_x):
    """After a reviewer sends a held first message, the next one is no first contact."""
    policies = "mode: enforce\npolicies:\n  first_contact_pitch:\n    action: hold\n"
    gate = await gate_factory(policy_yaml=policies)
    link = "Hey! Join us at https://rocketly.example/launch, founders love it"
    held = await send_dm(gate.client, "204", link)
    assert held.headers["DMGate-Decision"] == "hold"
    hold_id = held.headers["DMGate-Hold-Id"]
    approved = await gate.review().post(f"/api/v1/holds/{hold_id}/approve")
    assert approved.json()["status"] == "sent"
    again = await send_dm(gate.client, "204", link + " (the recording is up too)")
    assert again.headers["DMGate-Decision"] == "allow"
