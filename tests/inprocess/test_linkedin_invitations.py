"""LinkedIn connection invitations and Sales Navigator through an in-process dmgate in
front of the fake LinkedIn: every channel a suite sends first messages through is judged.
Three copies of one pitch (template_reuse from the 2nd recipient) deliver one; a held one
released on approval reaches LinkedIn once, edited; an invitation without a note still
counts as a first contact (burst); ambiguous requests get 400 and reach nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from proxy.platforms.linkedin import INVITEE_PROFILE
from tests.fakes.linkedin_upstream import FakeLinkedIn
from tests.inprocess.conftest import Gate, ServedFake
from tests.integration.dm_helpers import pitch

LI_AT = "AQEDAT-invitations-session"
HEADERS = {
    "Cookie": f'li_at={LI_AT}; JSESSIONID="ajax:7"',
    "csrf-token": "ajax:7",
    "accept": "application/vnd.linkedin.normalized+json+2.1",
}
ME = "ACoAAAinviter"


def policy(action: str) -> str:
    return f"""
policies:
  template_reuse: {{action: {action}, min_recipients: 2, window: 24h}}
"""


@dataclass
class Channel:
    name: str
    path: str
    body: Callable[[str, str], dict[str, Any]]  # (recipient profile id, text) -> body
    reached: Callable[[FakeLinkedIn], list[tuple[str, str]]]  # (recipient, text) delivered
    held_status: int


def _invitations(api: str) -> Callable[[FakeLinkedIn], list[tuple[str, str]]]:
    return lambda li: [(i.invitee, i.note) for i in li.invitations if i.api == api]


def _sales_sent(li: FakeLinkedIn) -> list[tuple[str, str]]:
    return [(s.recipients[0], s.text) for s in li.sent if s.api == "sales"]


CHANNELS = [
    Channel(
        "voyager-dash",
        "/linkedin-web/voyager/api/voyagerRelationshipsDashMemberRelationships"
        "?action=verifyQuotaAndCreateV2&decorationId=com.linkedin.voyager.dash.deco."
        "relationships.InvitationCreationResultWithInvitee-2",
        lambda who, text: {
            "invitee": {"inviteeUnion": {"memberProfile": f"urn:li:fsd_profile:{who}"}},
            "customMessage": text,
        },
        _invitations("voyager-dash"),
        200,
    ),
    Channel(
        "voyager-norm",
        "/linkedin-web/voyager/api/growth/normInvitations",
        lambda who, text: {
            "emberEntityName": "growth/invitation/norm-invitation",
            "invitee": {INVITEE_PROFILE: {"profileId": who}},
            "trackingId": "yvzykVorToqcOuvtxjSFMg==",
            "invitations": [],
            "message": text,
        },
        _invitations("voyager-norm"),
        201,
    ),
    Channel(
        "sales-connect",
        "/linkedin-web/sales-api/salesApiConnection?action=connectV2",
        lambda who, text: {"member": who, "message": text, "isEmailRequired": False},
        _invitations("sales"),
        200,
    ),
    Channel(
        "sales-message",
        "/linkedin-web/sales-api/salesApiMessageActions?action=createMessage",
        lambda who, text: {
            "createMessageRequest": {
                "subject": "Quick question",
                "body": text,
                "recipients": [f"urn:li:fs_salesProfile:({who},NAME_SEARCH,ab12)"],
                "copyToCrm": False,
                "trackingId": "tracking",
            }
        },
        _sales_sent,
        200,
    ),
]
IDS = [c.name for c in CHANNELS]


@pytest.fixture
async def fake_li(fake_factory) -> ServedFake:
    li = FakeLinkedIn()
    li.add_member(ME, first="Sam", li_at=LI_AT)
    for i in range(6):
        li.add_member(f"ACoAAAperson{i}", first=f"Person{i}")
    return await fake_factory(li)


def routes(fake: ServedFake) -> str:
    return json.dumps({"linkedin-web": {"upstream": fake.url, "platform": "linkedin"}})


async def make_gate(gate_factory, fake: ServedFake, policy_yaml: str) -> Gate:
    return await gate_factory(env={"DMGATE_ROUTES": routes(fake)}, policy_yaml=policy_yaml)


async def send(gate: Gate, channel: Channel, i: int, text: str) -> httpx.Response:
    body = json.dumps(channel.body(f"ACoAAAperson{i}", text)).encode()
    return await gate.client.post(channel.path, content=body, headers=HEADERS)


def posts(fake: ServedFake) -> int:
    return sum(1 for r in fake.state.requests if r.method != "GET")


@pytest.mark.parametrize("channel", CHANNELS, ids=IDS)
async def test_three_copies_of_one_pitch_deliver_one(gate_factory, fake_li, channel):
    gate = await make_gate(gate_factory, fake_li, policy("block"))
    decisions = []
    for i in range(3):
        r = await send(gate, channel, i, pitch(i, f"Person{i}"))
        decisions.append(r.headers.get("DMGate-Decision"))
        if decisions[-1] == "block":
            assert r.status_code == 403, r.text
            assert "template_reuse" in r.json()["message"]
    assert decisions == ["allow", "block", "block"]
    reached = channel.reached(fake_li.state)
    assert [who for who, _ in reached] == ["ACoAAAperson0"]
    assert reached[0][1].endswith(pitch(0, "Person0"))  # Sales Navigator: after the subject


@pytest.mark.parametrize("channel", CHANNELS, ids=IDS)
async def test_a_held_invitation_is_released_once_with_the_edit(gate_factory, fake_li, channel):
    gate = await make_gate(gate_factory, fake_li, policy("hold"))
    assert (await send(gate, channel, 0, pitch(0))).headers["DMGate-Decision"] == "allow"
    r = await send(gate, channel, 1, pitch(1))
    assert r.headers["DMGate-Decision"] == "hold", r.text
    assert r.status_code == channel.held_status  # what the clients check
    hold_id = r.headers["DMGate-Hold-Id"]
    assert len(channel.reached(fake_li.state)) == 1
    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert hold["account"] == ME  # asked of /voyager/api/me with the session
    assert hold["recipients"] == ["ACoAAAperson1"]
    edited = "Hi Person1, enjoyed your post on onboarding, happy to connect."
    if channel.name == "sales-message":
        edited = "Quick question\n\n" + edited
    approvals = [
        gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": edited})
        for _ in range(3)
    ]
    answers = [await a for a in approvals]
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    reached = channel.reached(fake_li.state)
    assert reached[1:] == [("ACoAAAperson1", edited)]


async def test_invitations_without_a_note_count_as_first_contacts(gate_factory, fake_li):
    gate = await make_gate(
        gate_factory,
        fake_li,
        "policies:\n  burst: {action: block, max_first_contacts: 2, window: 1h}\n",
    )
    decisions = [
        (await send(gate, CHANNELS[0], i, "")).headers.get("DMGate-Decision") for i in range(3)
    ]
    assert decisions == ["allow", "allow", "block"]
    assert [note for _, note in CHANNELS[0].reached(fake_li.state)] == ["", ""]


@pytest.mark.parametrize(
    ("channel", "body"),
    [
        (
            CHANNELS[0],
            b'{"invitee": {"inviteeUnion": {"memberProfile": "urn:li:fsd_profile:ACoAAAperson1"}}'
            b', "customMessage": "hi", "customMessage": "buy now"}',
        ),
        (
            CHANNELS[0],
            json.dumps(
                {
                    "invitee": {"inviteeUnion": {"memberProfile": "ACoAAAperson1"}},
                    "inviteeProfileUrn": "urn:li:fsd_profile:ACoAAAperson2",
                }
            ).encode(),
        ),
        (
            CHANNELS[1],
            json.dumps(
                {**CHANNELS[1].body("ACoAAAperson1", "hi"), "customMessage": "buy now"}
            ).encode(),
        ),
        (
            CHANNELS[1],
            json.dumps(
                {**CHANNELS[1].body("ACoAAAperson1", "hi"), "invitations": [{"profileId": "x"}]}
            ).encode(),
        ),
        (CHANNELS[3], json.dumps({"createMessageRequest": {"body": "hi"}}).encode()),
    ],
)
async def test_ambiguous_invitations_get_400_and_reach_nothing(
    gate_factory, fake_li, channel, body
):
    gate = await make_gate(gate_factory, fake_li, policy("hold"))
    r = await gate.client.post(channel.path, content=body, headers=HEADERS)
    assert r.status_code == 400, r.text
    assert r.json()["source"] == "dmgate"
    assert posts(fake_li) == 0
