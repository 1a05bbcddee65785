"""Hostile and broken DM requests get a clear error from dmgate and are never forwarded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.inprocess.conftest import Gate
from tests.integration.dm_helpers import TEMPLATE_ONLY, bearer


@pytest.fixture
async def gate(gate_factory) -> Gate:
    return await gate_factory(policy_yaml=TEMPLATE_ONLY, env={"DMGATE_MAX_DM_BODY": "65536"})


DM_PATH = "/x/2/dm_conversations/with/201/messages"


@pytest.mark.parametrize(
    "body,ctype,status,words",
    [
        (b'{"text": "hi', "application/json", 400, "JSON"),
        (b"[1, 2]", "application/json", 400, ""),
        (b'{"nothing": true}', "application/json", 400, ""),
        (b"text=hello+there", "application/x-www-form-urlencoded", 415, ""),
        (b"\xff\xfe\x00garbage", "application/json", 400, ""),
    ],
)
async def test_unjudgeable_dm_is_refused_not_forwarded(gate, fake_x, body, ctype, status, words):
    before = len(fake_x.state.requests)
    r = await gate.client.post(DM_PATH, content=body, headers={**bearer(), "Content-Type": ctype})
    assert r.status_code == status, r.text
    err = r.json()
    assert err["source"] == "dmgate"
    assert words in err["detail"]
    assert len(fake_x.state.requests) == before


async def test_oversized_dm_body_gets_413_and_is_not_forwarded(gate, fake_x):
    big = b'{"text": "' + b"a" * 70000 + b'"}'
    r = await gate.client.post(
        DM_PATH, content=big, headers={**bearer(), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["source"] == "dmgate"

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            yield b"b" * 10000
        yield b'"}'

    r = await gate.client.post(
        DM_PATH, content=chunks(), headers={**bearer(), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert not fake_x.state.requests


async def test_non_numeric_participant_is_refused(gate, fake_x):
    r = await gate.client.post(
        "/x/2/dm_conversations/with/abc/messages", json={"text": "hello"}, headers=bearer()
    )
    assert r.status_code == 400
    assert not fake_x.state.requests
