"""Graph batch requests through an in-process dmgate in front of the fake Graph API: each
message send inside a batch is judged with its own recipient and text (`batch[1]`); a batch
with any held or blocked item is held or blocked as a whole, the error naming the item;
what dmgate cannot judge as sent (a recipient from another item's result, sends mixed with
other calls) gets 400 and reaches nothing."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.fakes.meta_upstream import FakeMeta
from tests.inprocess.conftest import Gate, ServedFake
from tests.integration.dm_helpers import pitch

PAGE, TOKEN = "5566778899", "EAAB-batches-page-token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def fake_meta(fake_factory) -> ServedFake:
    meta = FakeMeta()
    meta.add_page(PAGE, token=TOKEN)
    return await fake_factory(meta)


async def make_gate(gate_factory, fake: ServedFake, action: str) -> Gate:
    return await gate_factory(
        env={"DMGATE_ROUTES": json.dumps({"meta": {"upstream": fake.url, "platform": "meta"}})},
        policy_yaml="policies:\n  template_reuse: "
        f"{{action: {action}, min_recipients: 2, window: 24h}}\n",
    )


def item(recipient: str, text: str) -> dict:
    body = {"recipient": json.dumps({"id": recipient}), "message": json.dumps({"text": text})}
    return {"method": "POST", "relative_url": f"v21.0/{PAGE}/messages", "body": urlencode(body)}


async def post_batch(gate: Gate, items: list[dict]):
    form = urlencode([("access_token", TOKEN), ("batch", json.dumps(items))])
    return await gate.client.post("/meta/v21.0", content=form, headers=FORM)


async def test_three_batches_carrying_one_pitch_deliver_one(gate_factory, fake_meta):
    gate = await make_gate(gate_factory, fake_meta, "block")
    answers = []
    for i in range(3):
        r = await post_batch(gate, [item(f"90{i}", "see you soon"), item(f"77{i}", pitch(i))])
        answers.append((r.status_code, r.headers.get("DMGate-Decision")))
    assert answers == [(200, "allow"), (403, "block"), (403, "block")]
    assert [m.recipient["id"] for m in fake_meta.state.sent] == ["900", "770"]
    # Graph's error shape, naming the item.
    assert r.json()["error"]["message"].startswith("(#10) batch[1]: template_reuse:"), r.text


async def test_a_held_batch_is_released_once(gate_factory, fake_meta):
    gate = await make_gate(gate_factory, fake_meta, "hold")
    assert (await post_batch(gate, [item("770", pitch(0))])).headers["DMGate-Decision"] == "allow"
    r = await post_batch(gate, [item("901", "thanks!"), item("771", pitch(1))])
    assert r.status_code == 200 and r.headers["DMGate-Decision"] == "hold", r.text
    # Graph's batch answer: one {code, headers, body} per item, body a JSON string.
    answers = r.json()
    assert [a["code"] for a in answers] == [200, 200]
    assert [json.loads(a["body"])["recipient_id"] for a in answers] == ["901", "771"]
    hold_id = r.headers["DMGate-Hold-Id"]
    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert hold["recipients"] == ["901", "771"]
    assert [p["reason"].split(":")[0] for p in hold["policies"]] == ["batch[1]"]
    edit = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": "x"})
    assert edit.status_code == 422  # no single text to edit
    ok = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert ok.status_code == 200 and ok.json()["status"] == "sent", ok.text
    again = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert again.status_code == 409
    assert [m.recipient["id"] for m in fake_meta.state.sent] == ["770", "901", "771"]


@pytest.mark.parametrize(
    "items",
    [
        # the recipient comes from another item's result: unknown until Graph runs it
        [
            {"method": "GET", "relative_url": "me/conversations", "name": "c"},
            {**item("1", pitch(0)), "body": "recipient={result=c:$.data.0.id}&message=x"},
        ],
        # a send mixed with another call
        [{"method": "GET", "relative_url": "me"}, item("770", pitch(0))],
        # an item's parameter twice, or in both its URL and its body
        [{**item("770", "hi"), "body": item("770", "hi")["body"] + "&message=buy"}],
        [{**item("770", "hi"), "relative_url": f"{PAGE}/messages?message=buy"}],
        # sends as two pages
        [item("770", "hi"), {**item("771", "hi"), "relative_url": "123/messages"}],
    ],
)
async def test_batches_dmgate_cannot_judge_get_400_and_reach_nothing(
    gate_factory, fake_meta, items
):
    gate = await make_gate(gate_factory, fake_meta, "block")
    r = await post_batch(gate, items)
    assert r.status_code == 400, r.text
    assert [rec for rec in fake_meta.state.requests if rec.method != "GET"] == []
