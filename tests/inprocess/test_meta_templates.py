"""Messenger templates through an in-process dmgate in front of the fake Graph API: what a
bot builder sends (button and generic templates, quick replies) is judged on the text the
recipient reads, and a Graph batch naming `batch` twice reaches nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fakes.meta_upstream import FakeMeta
from tests.inprocess.conftest import Gate, ServedFake
from tests.integration.dm_helpers import pitch

PAGE, TOKEN = "5566778899", "EAAB-templates-page-token"


def button(text: str) -> dict[str, Any]:
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": text,
                "buttons": [{"type": "web_url", "url": "https://r.example", "title": "Buy now"}],
            },
        }
    }


def generic(text: str) -> dict[str, Any]:
    element = {
        "title": "Rocketly Pro",
        "subtitle": text,
        "buttons": [{"type": "postback", "title": "Tell me more", "payload": "M"}],
    }
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [element]},
        }
    }


def quick_replies(text: str) -> dict[str, Any]:
    # The pitch sits in the quick replies; the text is a bare greeting.
    words = text.split()
    replies = [" ".join(words[i : i + 4]) for i in range(0, len(words), 4)]
    return {
        "text": "Hi!",
        "quick_replies": [{"content_type": "text", "title": t, "payload": "P"} for t in replies],
    }


SHAPES: dict[str, Callable[[str], dict[str, Any]]] = {
    "button": button,
    "generic": generic,
    "quick_replies": quick_replies,
}


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


async def send(gate: Gate, i: int, message: dict[str, Any]):
    return await gate.client.post(
        f"/meta/v21.0/{PAGE}/messages",
        params={"access_token": TOKEN},
        json={"recipient": {"id": f"77{i}"}, "messaging_type": "RESPONSE", "message": message},
    )


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_three_copies_of_a_template_pitch_deliver_one(gate_factory, fake_meta, shape):
    gate = await make_gate(gate_factory, fake_meta, "block")
    decisions = [
        (await send(gate, i, SHAPES[shape](pitch(i, f"Person{i}")))).headers.get("DMGate-Decision")
        for i in range(3)
    ]
    assert decisions == ["allow", "block", "block"]
    assert [m.recipient["id"] for m in fake_meta.state.sent] == ["770"]


async def test_a_held_template_is_released_once_unedited(gate_factory, fake_meta):
    gate = await make_gate(gate_factory, fake_meta, "hold")
    await send(gate, 0, button(pitch(0)))
    r = await send(gate, 1, button(pitch(1)))
    assert r.status_code == 200 and r.headers["DMGate-Decision"] == "hold", r.text
    hold_id = r.headers["DMGate-Hold-Id"]
    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert hold["text"] == f"{pitch(1)}\nBuy now"  # what the reviewer reads
    # An edit cannot be written back into the template: refused, the hold stays pending.
    bad = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": "Hi!"})
    assert bad.status_code == 422, bad.text
    ok = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert ok.status_code == 200 and ok.json()["status"] == "sent", ok.text
    again = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert again.status_code == 409
    assert [m.recipient["id"] for m in fake_meta.state.sent] == ["770", "771"]
    assert fake_meta.state.sent[1].message == button(pitch(1))


async def test_a_batch_named_twice_reaches_nothing(gate_factory, fake_meta):
    gate = await make_gate(gate_factory, fake_meta, "hold")
    harmless = json.dumps([{"method": "GET", "relative_url": "me"}])
    send_item = json.dumps(
        [
            {
                "method": "POST",
                "relative_url": f"{PAGE}/messages",
                "body": urlencode({"recipient": '{"id": "771"}', "message": '{"text": "buy"}'}),
            }
        ]
    )
    r = await gate.client.post(
        "/meta/",
        content=urlencode([("access_token", TOKEN), ("batch", harmless), ("batch", send_item)]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400, r.text
    assert "batch is given twice" in r.text
    assert [rec for rec in fake_meta.state.requests if rec.method != "GET"] == []
