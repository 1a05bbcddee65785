"""first_contact_pitch and burst through a real `dmgate serve` in front of the fake X."""

from __future__ import annotations

import pytest

from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, bearer, learn_identity, send_dm

POLICIES = """
mode: enforce
policies:
  first_contact_pitch:
    action: hold
    allowed_domains: [docs.example]
  burst:
    action: block
    max_first_contacts: 3
    window: 1h
"""
PITCH = "Hey! Join us at https://rocketly.example/launch, founders love it"
PERSONAL = "Hi Dana, saw your post on onboarding flows, would love to hear how you test them"


@pytest.fixture
def gate(dmgate_factory, fake_x):
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    gate = dmgate_factory(policy_yaml=POLICIES)
    learn_identity(gate.client)
    return gate


def decision(response) -> str:
    return response.headers["DMGate-Decision"]


def test_pitches_are_held_people_pass_and_bursts_are_blocked(gate, fake_x):
    # A pitch as the first message to someone who never wrote: held, with the reason.
    held = send_dm(gate.client, "500", PITCH)
    assert held.status_code == 201 and decision(held) == "hold"
    hold = gate.review().get(f"/api/v1/holds/{held.headers['DMGate-Hold-Id']}").json()
    assert hold["policies"] == [
        {
            "policy": "first_contact_pitch",
            "action": "hold",
            "mode": "enforce",
            "reason": "first_contact_pitch: first message to 500 carries a link "
            '(rocketly.example) and a call to action ("join us")',
        }
    ]

    # The tool takes the hold for a send and follows up: 500 still got nothing, so the
    # follow-up is a first message too.
    bump = send_dm(gate.client, "500", "Just bumping this - check out rocketly.example")
    assert decision(bump) == "hold"
    assert bump.headers["DMGate-Hold-Id"] != held.headers["DMGate-Hold-Id"]

    # A personal first message without a link: forwarded.
    personal = send_dm(gate.client, "501", PERSONAL)
    assert personal.status_code == 201 and decision(personal) == "allow"

    # A reply to someone who wrote first may carry anything.
    fake_x.state.add_dm("502", SENDER, "hi! do you have a link to your product?")
    lookup = gate.client.get(
        "/x/2/dm_conversations/with/502/dm_events",
        headers=bearer(),
        params={"dm_event.fields": "sender_id,created_at"},
    )
    assert lookup.status_code == 200
    assert decision(send_dm(gate.client, "502", PITCH)) == "allow"

    # A second message (the first reached 501) is no first contact; a link to an allowed
    # domain is no pitch.
    assert decision(send_dm(gate.client, "501", PITCH + " (as promised)")) == "allow"
    assert decision(send_dm(gate.client, "503", "The notes: https://docs.example/a")) == "allow"

    # 500, 501 and 503 were first contacts (the follow-up, the reply and the second
    # message do not count):
    # the 4th within the hour is blocked, in X's error shape, naming the policy.
    blocked = send_dm(gate.client, "504", PERSONAL)
    assert blocked.status_code == 403 and decision(blocked) == "block"
    assert "burst: more than 3 first contacts in 1h" in blocked.json()["detail"]
    reached = {p for m in fake_x.state.sent for p in m.participant_ids if p != SENDER}
    assert reached == {"501", "502", "503"}
