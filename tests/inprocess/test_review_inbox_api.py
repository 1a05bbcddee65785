"""The review API's additions for the inbox: recipient profiles learnt from traffic, a
hold's history, campaigns (`template_id`, `?template=`, bulk reject) and the decisions
export."""

from __future__ import annotations

import json

import pytest

from tests.inprocess.conftest import Gate
from tests.inprocess.dm import learn_identity, send_dm
from tests.integration.dm_helpers import SENDER, TEMPLATE_ONLY, bearer, pitch

NAMES = {"201": "Anna", "202": "Ben", "203": "Cleo", "204": "Dev", "205": "Eve", "206": "Fay"}


@pytest.fixture(autouse=True)
def x_users(fake_x):
    for uid, name in NAMES.items():
        user = fake_x.state.add_user(uid, username=name.lower(), name=f"{name} Example")
        user["description"] = f"{name} builds <b>things</b>"
        user["location"] = "Lisbon"
    fake_x.state.followers[SENDER] = list(NAMES)


@pytest.fixture
async def gate(gate_factory) -> Gate:
    return await gate_factory(policy_yaml=TEMPLATE_ONLY)


async def _campaign(gate: Gate, recipients: list[str]) -> list[str]:
    """Send the pitch to each recipient; the ids of the holds (the 3rd copy on)."""
    await learn_identity(gate.client)
    r = await gate.client.get(f"/x/2/users/{SENDER}/followers", headers=bearer())
    assert r.status_code == 200, r.text
    held = []
    for i, rid in enumerate(recipients):
        r = await send_dm(gate.client, rid, pitch(i, NAMES[rid]))
        if r.headers["DMGate-Decision"] == "hold":
            held.append(r.headers["DMGate-Hold-Id"])
    return held


async def test_hold_names_its_recipient_as_seen_in_traffic(gate):
    [hold_id, *_] = await _campaign(gate, ["201", "202", "203"])
    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    [profile] = hold["recipient_profiles"]
    assert profile["id"] == "203"
    assert profile["username"] == "cleo"
    assert profile["name"] == "Cleo Example"
    assert profile["description"] == "Cleo builds <b>things</b>"
    assert profile["location"] == "Lisbon"
    assert profile["wrote_first"] is False
    assert hold["template_id"]
    assert [s["action"] for s in hold["history"]] == ["held"]
    assert "template_reuse" not in hold["history"][0]["by"]


async def test_campaign_lists_and_rejects_every_pending_copy(gate):
    held = await _campaign(gate, ["201", "202", "203", "204", "205", "206"])
    assert len(held) == 4
    review = gate.review("bob")
    template = (await review.get(f"/api/v1/holds/{held[0]}")).json()["template_id"]
    page = (await review.get("/api/v1/holds", params={"template": template})).json()
    assert sorted(h["id"] for h in page["items"]) == sorted(held)
    # One decided by someone else first: the campaign reject skips it.
    r = await gate.review().post(f"/api/v1/holds/{held[0]}/approve", json={})
    assert r.status_code == 200, r.text
    r = await review.post(f"/api/v1/templates/{template}/reject", json={"reason": "spam"})
    assert r.json() == {"rejected": 3}
    statuses = [(await review.get(f"/api/v1/holds/{h}")).json()["status"] for h in held]
    assert statuses == ["sent", "rejected", "rejected", "rejected"]
    r = await review.post(f"/api/v1/templates/{template}/reject", json={})
    assert r.status_code == 422


async def test_history_and_export_record_who_changed_what(gate):
    a, b = await _campaign(gate, ["201", "202", "203", "204"])
    r = await gate.review("alice").post(
        f"/api/v1/holds/{a}/approve", json={"text": "Hi Cleo, loved your post on tea.", "note": "n"}
    )
    assert r.status_code == 200, r.text
    history = r.json()["history"]
    assert [s["action"] for s in history] == ["held", "edited_and_approved", "sent"]
    assert history[1]["by"] == "alice"
    assert history[1]["text_before"] == pitch(2, "Cleo")
    assert history[1]["text_after"] == "Hi Cleo, loved your post on tea."
    await gate.review("bob").post(f"/api/v1/holds/{b}/reject", json={"reason": "too salesy"})

    r = await gate.review().get("/api/v1/decisions")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert [(x["hold_id"], x["by"], x["action"]) for x in lines] == [
        (a, "alice", "edited_and_approved"),
        (b, "bob", "rejected"),
    ]
    assert lines[1]["reason"] == "too salesy"
    since = lines[1]["at"]
    later = (await gate.review().get("/api/v1/decisions", params={"since": since})).text
    assert [json.loads(x)["hold_id"] for x in later.splitlines()] == [b]
    bad = await gate.review().get("/api/v1/decisions", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert (await gate.client.get("/api/v1/decisions")).status_code == 401
