"""Mastodon status edits through an in-process dmgate: an edit of a direct status is a new
DM to its mentions; dmgate learns which statuses are direct from the answers to their
creates (forwarded or released), asks the instance about those it never saw, and refuses
the edit when the instance cannot say. Edits of public statuses pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from tests.fakes.mastodon_upstream import FakeMastodon, Posted
from tests.inprocess.conftest import Gate, ServedFake
from tests.integration.dm_helpers import pitch

TOKEN = "mastodon-edits-token-0123456789"
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


async def create(gate: Gate, text: str, visibility: str = "direct"):
    pairs = [("status", text), ("visibility", visibility)]
    return await gate.client.post(
        "/mastodon/api/v1/statuses", content=urlencode(pairs), headers=FORM
    )


async def edit(gate: Gate, status_id: str, text: str, method: str = "PUT"):
    return await gate.client.request(
        method,
        f"/mastodon/api/v1/statuses/{status_id}",
        content=urlencode([("status", text)]),
        headers=FORM,
    )


def edits_reaching(fake: ServedFake) -> list[str]:
    return [r.method for r in fake.state.requests if r.method in ("PUT", "PATCH")]


async def test_three_direct_statuses_edited_into_one_pitch_deliver_one_edit(
    gate_factory, fake_masto
):
    gate = await make_gate(gate_factory, fake_masto, "block")
    ids = []
    for i in range(3):
        r = await create(gate, f"@person{i} hi")
        assert r.status_code == 200 and r.headers["DMGate-Decision"] == "allow", r.text
        ids.append(r.json()["id"])
    decisions = []
    for i, status_id in enumerate(ids):
        r = await edit(
            gate, status_id, f"@person{i} {pitch(i, f'Person{i}')}", "PUT PATCH".split()[i % 2]
        )
        decisions.append((r.status_code, r.headers.get("DMGate-Decision")))
    assert decisions == [(200, "allow"), (403, "block"), (403, "block")]
    assert [e.text for e in fake_masto.state.edits] == [f"@person0 {pitch(0, 'Person0')}"]
    # Every create was seen passing: the instance was never asked about a status.
    assert not [
        r for r in fake_masto.state.requests if r.method == "GET" and "/statuses/" in r.path
    ]


async def test_a_held_edit_is_released_once(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "hold")
    ids = [(await create(gate, f"@person{i} hi")).json()["id"] for i in range(2)]
    for i, status_id in enumerate(ids):
        r = await edit(gate, status_id, f"@person{i} {pitch(i)}")
    assert r.status_code == 200 and r.headers["DMGate-Decision"] == "hold", r.text
    # The platform's own answer to an edit: the edited status, with `edited_at`.
    assert r.json()["id"] == ids[1] and r.json()["edited_at"]
    hold_id = r.headers["DMGate-Hold-Id"]
    hold = (await gate.review().get(f"/api/v1/holds/{hold_id}")).json()
    assert hold["recipients"] == ["person1"]
    ok = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert ok.status_code == 200 and ok.json()["status"] == "sent", ok.text
    again = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert again.status_code == 409
    assert edits_reaching(fake_masto) == ["PUT", "PUT"]
    assert fake_masto.state.edits[-1].id == ids[1]


async def test_a_released_create_teaches_its_id(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "hold")
    for i in range(2):
        r = await create(gate, f"@person{i} {pitch(i)}")
    hold_id = r.headers["DMGate-Hold-Id"]
    ok = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert ok.json()["status"] == "sent", ok.text
    released = fake_masto.state.statuses[-1]
    r = await edit(gate, released.id, f"@person1 {pitch(7)}")
    assert r.headers["DMGate-Decision"] == "hold", r.text
    assert not [
        r for r in fake_masto.state.requests if r.method == "GET" and "/statuses/" in r.path
    ]


def _posted_on_the_instance(fake: ServedFake, visibility: str, mention: str) -> str:
    """A status the tool posted without dmgate (before it was put in front)."""
    status = Posted(
        fake.state.new_id(), "1", f"@{mention} hi", visibility, (mention,), datetime.now(UTC)
    )
    fake.state.statuses.append(status)
    return status.id


async def test_an_unknown_status_is_asked_about_and_judged_if_direct(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "block")
    first = (await create(gate, "@person0 hi")).json()["id"]
    assert (await edit(gate, first, f"@person0 {pitch(0)}")).status_code == 200
    unknown = _posted_on_the_instance(fake_masto, "direct", "person1")
    r = await edit(gate, unknown, f"@person1 {pitch(1)}")
    assert r.status_code == 403 and r.headers["DMGate-Decision"] == "block", r.text
    asked = [r for r in fake_masto.state.requests if r.method == "GET" and "/statuses/" in r.path]
    assert [a.path for a in asked] == [f"/api/v1/statuses/{unknown}"]
    assert asked[0].header("Authorization") == f"Bearer {TOKEN}"
    assert len(fake_masto.state.edits) == 1


async def test_edits_of_public_statuses_pass(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "block")
    seen = (await create(gate, "@person0 hello world", "public")).json()["id"]
    unseen = _posted_on_the_instance(fake_masto, "public", "person1")
    for i, status_id in enumerate((seen, unseen)):
        r = await edit(gate, status_id, f"@person{i} {pitch(i)}")
        assert r.status_code == 200 and "DMGate-Decision" not in r.headers, r.text
    assert len(fake_masto.state.edits) == 2


async def test_an_edit_the_instance_cannot_describe_is_refused(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "block")
    r = await edit(gate, "123456789", f"@person0 {pitch(0)}")
    assert r.status_code == 502 and r.json()["error"] == "edit_not_judged", r.text
    assert edits_reaching(fake_masto) == []


MULTIPART = "multipart/form-data; boundary=XyZ"


def _two_names() -> bytes:
    return (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="visibility"; name="status"\r\n\r\n'
        b"@person0 hi\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="status"\r\n\r\n'
        + f"@person1 {pitch(0)}".encode()
        + b"\r\n--XyZ\r\n"
        b'Content-Disposition: form-data; name="visibility"\r\n\r\n'
        b"direct\r\n--XyZ--\r\n"
    )


@pytest.mark.parametrize(
    "path,body,content_type",
    [
        ("/api/v1/statuses", _two_names(), MULTIPART),
        ("/api/v1/statuses?visibility=direct;status=x", b"status=%40person0+hi", None),
        ("/api/v1/statuses", b"status=%40person0+hi&visibility=direct&status=buy", None),
        ("/api/v1/statuses?visibility=public", b"status=%40person0+hi&visibility=direct", None),
        (
            "/api/v1/statuses",
            b'{"status":"@person0 hi","visibility":"direct","status":"x"}',
            "application/json",
        ),
        ("/api/v1/statuses?access_token=a;b", b"status=%40person0+hi&visibility=direct", None),
    ],
)
async def test_ambiguous_status_posts_are_refused_and_reach_nothing(
    gate_factory, fake_masto, path, body, content_type
):
    gate = await make_gate(gate_factory, fake_masto, "block")
    headers = {**FORM, "Content-Type": content_type or FORM["Content-Type"]}
    r = await gate.client.post(f"/mastodon{path}", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert not [q for q in fake_masto.state.requests if "/statuses" in q.path]


async def test_ambiguous_edits_are_refused_and_reach_nothing(gate_factory, fake_masto):
    gate = await make_gate(gate_factory, fake_masto, "block")
    status_id = (await create(gate, "@person0 hi")).json()["id"]
    r = await gate.client.put(
        f"/mastodon/api/v1/statuses/{status_id}",
        content=b"status=%40person0+hi&status=%40person0+buy+now",
        headers=FORM,
    )
    assert r.status_code == 400, r.text
    assert edits_reaching(fake_masto) == []
