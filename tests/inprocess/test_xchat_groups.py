"""XChat groups are first contacts, judged like DMs (a red-team finding: they were
forwarded unjudged): creating a group with members, whose name and description are plain
text (`createChatConversation`), and adding members to one (`addChatGroupMembers`, its
title encrypted: judged without text). A held one is approved unedited or rejected."""

from __future__ import annotations

import pytest

from tests.inprocess.conftest import Gate
from tests.inprocess.dm import learn_identity
from tests.integration.dm_helpers import bearer, pitch


async def make_gate(gate_factory, policy_yaml: str) -> Gate:
    gate = await gate_factory(policy_yaml=policy_yaml)
    await learn_identity(gate.client)
    return gate


def group(members: list[str], name: str, description: str = "") -> dict:
    return {
        "conversation_id": "c1",
        "conversation_key_version": "1",
        "conversation_participant_keys": [],
        "group_members": members,
        "group_name": name,
        "group_description": description,
    }


async def create(gate: Gate, body: dict):
    return await gate.client.post("/x/2/chat/conversations/group", json=body, headers=bearer())


async def test_a_group_named_with_a_pitch_is_judged_on_its_name(gate_factory, fake_x):
    gate = await make_gate(
        gate_factory, "policies:\n  template_reuse: {action: block, min_recipients: 2}\n"
    )
    first = await create(gate, group(["42"], "Founders club", pitch(0)))
    assert first.headers["DMGate-Decision"] == "allow", first.text
    second = await create(gate, group(["43"], "Founders club", pitch(1)))
    assert second.status_code == 403 and second.headers["DMGate-Decision"] == "block"
    posts = [r for r in fake_x.state.requests if r.path.endswith("/conversations/group")]
    assert len(posts) == 1


async def test_adding_members_counts_as_first_contacts(gate_factory, fake_x):
    gate = await make_gate(
        gate_factory, "policies:\n  burst: {action: block, max_first_contacts: 2, window: 1h}\n"
    )
    decisions = []
    for members in (["42"], ["43"], ["44"]):
        r = await gate.client.post(
            "/x/2/chat/conversations/g123/members", json={"user_ids": members}, headers=bearer()
        )
        decisions.append(r.headers.get("DMGate-Decision"))
    assert decisions == ["allow", "allow", "block"]


async def test_a_held_group_is_approved_unedited_or_rejected(gate_factory, fake_x):
    gate = await make_gate(
        gate_factory, "policies:\n  template_reuse: {action: hold, min_recipients: 2}\n"
    )
    await create(gate, group(["42"], pitch(0)))
    r = await create(gate, group(["43"], pitch(1)))
    assert r.status_code == 201 and r.headers["DMGate-Decision"] == "hold", r.text
    assert r.json()["data"]["conversation_id"].startswith("g")
    hold_id = r.headers["DMGate-Hold-Id"]
    edit = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": "hi"})
    assert edit.status_code == 422, edit.text


@pytest.mark.parametrize("body", [{"group_members": []}, {"group_members": ["x1"]}])
async def test_a_group_without_readable_members_gets_400(gate_factory, fake_x, body):
    gate = await make_gate(gate_factory, "policies:\n  burst: {action: block}\n")
    r = await create(gate, body)
    assert r.status_code == 400, r.text
    assert not [q for q in fake_x.state.requests if q.path.endswith("/conversations/group")]
