"""More LinkedIn channels a suite can carry a first message through, found red-teaming:
the partner API's invitations (`POST /v2/invitations`) are judged like the others, a note
in the key another invitation endpoint uses is judged too, and editing a sent message
(a Rest.li partial update) is refused: it could turn a judged message into a pitch."""

from __future__ import annotations

import json

import pytest

from tests.fakes.linkedin_upstream import FakeLinkedIn
from tests.inprocess.conftest import Gate, ServedFake
from tests.integration.dm_helpers import pitch

TOKEN, LI_AT = "li-partner-token-0123456789", "AQEDAT-more-channels-session"
SESSION = {"Cookie": f'li_at={LI_AT}; JSESSIONID="ajax:7"', "csrf-token": "ajax:7"}
ME = "ACoAAAsender"


@pytest.fixture
async def fake_li(fake_factory) -> ServedFake:
    li = FakeLinkedIn()
    li.add_member(ME, first="Sam", token=TOKEN, li_at=LI_AT)
    for i in range(4):
        li.add_member(f"ACoAAAperson{i}", first=f"Person{i}")
    return await fake_factory(li)


async def make_gate(gate_factory, fake: ServedFake, action: str) -> Gate:
    routes = {"linkedin": {"upstream": fake.url, "platform": "linkedin"}}
    return await gate_factory(
        env={"DMGATE_ROUTES": json.dumps(routes)},
        policy_yaml=f"policies:\n  template_reuse: {{action: {action}, min_recipients: 2}}\n",
    )


def invitation(i: int, note: str) -> dict:
    body = {"com.linkedin.invitations.InvitationMessage": {"body": note}}
    return {"invitee": f"urn:li:person:p{i}", "message": body}


async def invite(gate: Gate, i: int, note: str):
    return await gate.client.post(
        "/linkedin/v2/invitations",
        json=invitation(i, note),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def test_partner_api_invitations_are_judged_held_and_released_edited(gate_factory, fake_li):
    gate = await make_gate(gate_factory, fake_li, "hold")
    assert (await invite(gate, 0, pitch(0))).headers["DMGate-Decision"] == "allow"
    r = await invite(gate, 1, pitch(1))
    assert r.status_code == 201 and r.headers["DMGate-Decision"] == "hold", r.text
    assert [(i.invitee, i.note) for i in fake_li.state.invitations] == [("p0", pitch(0))]
    hold_id = r.headers["DMGate-Hold-Id"]
    assert (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()["recipients"] == ["p1"]
    edited = "Hi, enjoyed your talk on onboarding: happy to connect."
    ok = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": edited})
    assert ok.status_code == 200, ok.text
    assert [(i.invitee, i.note) for i in fake_li.state.invitations][1:] == [("p1", edited)]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/linkedin/voyager/api/voyagerRelationshipsDashMemberRelationships"
            "?action=verifyQuotaAndCreateV2",
            lambda who, text: {
                "invitee": {"inviteeUnion": {"memberProfile": f"urn:li:fsd_profile:{who}"}},
                "message": text,
            },
        ),
        (
            "/linkedin/sales-api/salesApiConnection?action=connectV2",
            lambda who, text: {"member": who, "customMessage": text},
        ),
    ],
    ids=["dash-invite-message", "sales-connect-customMessage"],
)
async def test_a_note_in_another_endpoints_key_is_judged(gate_factory, fake_li, path, body):
    gate = await make_gate(gate_factory, fake_li, "block")
    decisions = []
    for i in range(2):
        r = await gate.client.post(
            path, json=body(f"ACoAAAperson{i}", pitch(i, f"Person{i}")), headers=SESSION
        )
        decisions.append(r.headers.get("DMGate-Decision"))
    assert decisions == ["allow", "block"]


async def test_editing_a_sent_message_is_refused(gate_factory, fake_li):
    gate = await make_gate(gate_factory, fake_li, "block")
    urn = "urn%3Ali%3Amsg_message%3A%28urn%3Ali%3Afsd_profile%3AACoAAAsender%2C2-MTIz%29"
    r = await gate.client.post(
        f"/linkedin/voyager/api/voyagerMessagingDashMessengerMessages/{urn}",
        json={"patch": {"$set": {"body": {"text": pitch(0), "attributes": []}}}},
        headers=SESSION,
    )
    assert r.status_code == 400 and "edit" in r.json()["detail"], r.text
    assert not [q for q in fake_li.state.requests if q.method == "POST"]
