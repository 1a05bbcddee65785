"""Bluesky `sendMessageBatch` through an in-process dmgate: each item is judged with its
conversation's members (their DIDs, learnt from `getConvoForMembers`), never with the
conversation id; a batch with any held or blocked item is held or blocked as a whole, and
the XRPC error names the item."""

from __future__ import annotations

import json

import pytest

from tests.fakes.bluesky_upstream import CHAT_PROXY, FakeBluesky, make_jwt
from tests.inprocess.conftest import Gate, ServedFake
from tests.integration.dm_helpers import pitch

ME, ANN, BEN, CAT = (f"did:plc:{n}" for n in ("me", "ann", "ben", "cat"))
HEADERS = {"Authorization": f"Bearer {make_jwt(ME)}", "atproto-proxy": CHAT_PROXY}
BATCH = "/bluesky/xrpc/chat.bsky.convo.sendMessageBatch"


@pytest.fixture
async def fake_bsky(fake_factory) -> ServedFake:
    bsky = FakeBluesky()
    for did in (ME, ANN, BEN, CAT):
        bsky.add_user(did, did.rsplit(":", 1)[1] + ".test")
    return await fake_factory(bsky)


async def make_gate(gate_factory, fake: ServedFake, policies: str) -> tuple[Gate, dict[str, str]]:
    routes = {"bluesky": {"upstream": fake.url, "platform": "bluesky"}}
    gate = await gate_factory(
        env={"DMGATE_ROUTES": json.dumps(routes)}, policy_yaml=f"policies:\n{policies}"
    )
    convos = {}
    for did in (ANN, BEN, CAT):  # as clients do before sending: dmgate learns the members
        r = await gate.client.get(
            "/bluesky/xrpc/chat.bsky.convo.getConvoForMembers",
            params=[("members", ME), ("members", did)],
            headers=HEADERS,
        )
        assert r.status_code == 200, r.text
        convos[did] = r.json()["convo"]["id"]
    return gate, convos


def batch(*items: tuple[str, str]) -> dict:
    return {"items": [{"convoId": c, "message": {"text": t}} for c, t in items]}


TEMPLATE = "  template_reuse: {action: block, min_recipients: 2, window: 24h}\n"
FOLLOW = "  follow_timing: {action: hold, window: 1h}\n"


async def test_three_batches_carrying_one_pitch_deliver_one(gate_factory, fake_bsky):
    gate, convos = await make_gate(gate_factory, fake_bsky, TEMPLATE)
    answers = []
    people = [ANN, BEN, CAT]
    for i, did in enumerate(people):
        other = people[(i + 1) % 3]
        body = batch((convos[other], "ok"), (convos[did], pitch(i, "friend")))
        r = await gate.client.post(BATCH, json=body, headers=HEADERS)
        answers.append((r.status_code, r.headers.get("DMGate-Decision")))
    assert answers == [(200, "allow"), (403, "block"), (403, "block")]
    assert [m.text for m in fake_bsky.state.sent] == ["ok", pitch(0, "friend")]
    # The platform's error shape, naming the item that was blocked.
    assert r.json()["error"] == "Forbidden"
    assert r.json()["message"].startswith("items[1]: template_reuse:"), r.text


async def test_items_are_judged_with_the_members_dids(gate_factory, fake_bsky):
    gate, convos = await make_gate(gate_factory, fake_bsky, FOLLOW)
    follow = {"platform": "bluesky", "account": ME, "follower": BEN}
    assert (await gate.review().post("/api/v1/follow-events", json=follow)).status_code < 300
    body = batch((convos[ANN], "hello again"), (convos[BEN], "thanks for the follow!"))
    r = await gate.client.post(BATCH, json=body, headers=HEADERS)
    assert r.status_code == 200 and r.headers["DMGate-Decision"] == "hold", r.text
    # The lexicon's answer: one messageView per item.
    assert [i["text"] for i in r.json()["items"]] == ["hello again", "thanks for the follow!"]
    hold_id = r.headers["DMGate-Hold-Id"]
    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert hold["recipients"] == [ANN, BEN]
    assert [p["reason"].split(":")[0] for p in hold["policies"]] == ["items[1]"]
    assert fake_bsky.state.sent == []
    ok = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert ok.status_code == 200 and ok.json()["status"] == "sent", ok.text
    again = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert again.status_code == 409
    assert [m.convo_id for m in fake_bsky.state.sent] == [convos[ANN], convos[BEN]]
    # A held batch to several conversations has no single text to edit.
    r = await gate.client.post(
        BATCH, json=batch((convos[CAT], "x"), (convos[BEN], "thanks!")), headers=HEADERS
    )
    edit = await gate.review().post(
        f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}/approve", json={"text": "edited"}
    )
    assert edit.status_code == 422
