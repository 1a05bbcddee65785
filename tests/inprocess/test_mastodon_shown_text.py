"""Mastodon direct statuses through an in-process dmgate: a pitch in the content warning
or a poll's options is judged like one in the status."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.fakes.mastodon_upstream import FakeMastodon
from tests.inprocess.conftest import Gate, ServedFake
from tests.integration.dm_helpers import pitch

TOKEN = "mastodon-shown-text-token-0123"
FORM = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def fake_masto(fake_factory) -> ServedFake:
    masto = FakeMastodon()
    masto.add_account("1", "sam", token=TOKEN)
    for i in range(3):
        masto.add_account(str(10 + i), f"person{i}")
    return await fake_factory(masto)


async def make_gate(gate_factory, fake: ServedFake, action: str) -> Gate:
    routes = {"mastodon": {"upstream": fake.url, "platform": "mastodon"}}
    return await gate_factory(
        env={"DMGATE_ROUTES": json.dumps(routes)},
        policy_yaml="policies:\n  template_reuse: "
        f"{{action: {action}, min_recipients: 2, window: 24h}}\n",
    )


async def post(gate: Gate, pairs: list[tuple[str, str]]):
    return await gate.client.post(
        "/mastodon/api/v1/statuses", content=urlencode(pairs), headers=FORM
    )


async def test_a_pitch_in_the_content_warning_is_caught(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "block")
    decisions = []
    for i in range(3):
        pairs = [("status", f"@person{i} hi!"), ("visibility", "direct")]
        r = await post(gate, [*pairs, ("spoiler_text", pitch(i, f"Person{i}"))])
        decisions.append(r.headers.get("DMGate-Decision"))
    assert decisions == ["allow", "block", "block"]
    assert [s.mentions for s in fake_masto.state.statuses] == [("person0",)]


async def test_a_held_poll_is_released_once_with_the_edited_status(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "hold")
    options = [("poll[options][]", w) for w in pitch(0).split(".")[:2]]
    for i in range(2):
        r = await post(
            gate,
            [
                ("status", f"@person{i} quick poll"),
                ("visibility", "direct"),
                *options,
                ("poll[expires_in]", "3600"),
            ],
        )
    assert r.headers["DMGate-Decision"] == "hold", r.text
    hold_id = r.headers["DMGate-Hold-Id"]
    text = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()["text"]
    edited = text.replace("@person1 quick poll", "@person1 no pitch, promise")
    ok = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": edited})
    assert ok.status_code == 200 and ok.json()["status"] == "sent", ok.text
    again = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert again.status_code == 409
    assert [s.text for s in fake_masto.state.statuses] == [
        "@person0 quick poll",
        "@person1 no pitch, promise",
    ]
