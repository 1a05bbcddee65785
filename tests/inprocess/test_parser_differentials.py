"""Requests the platform's framework could read differently from dmgate get 400 on the DM
endpoints of every adapter, naming the ambiguity, and reach nothing upstream: a key twice
(query, form, JSON object, multipart part), two `name=` in one part, `;` as a query
separator, a parameter in both the query and the body (proxy/platforms/ambiguity.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.fakes.bluesky_upstream import FakeBluesky
from tests.fakes.linkedin_upstream import FakeLinkedIn
from tests.fakes.meta_upstream import FakeMeta
from tests.inprocess.conftest import ServedFake
from tests.integration.dm_helpers import SENDER_TOKEN

JSON = "application/json"


@dataclass(frozen=True)
class Ambiguous:
    route: str
    path: str
    body: bytes
    content_type: str
    names: str  # what the 400 must name


X_SEND = "/x/2/dm_conversations/with/42/messages"
LI_SEND = "/linkedin/v2/messages"
BSKY_SEND = "/bluesky/xrpc/chat.bsky.convo.sendMessage"
META_SEND = "/meta/v21.0/me/messages"
LI_BODY = b'{"recipients":["urn:li:person:abc"],"body":"hi there"}'
BSKY_BODY = b'{"convoId":"c1","message":{"text":"hi there"}}'
META_FIELDS = '--B\r\nContent-Disposition: form-data; name="recipient"\r\n\r\n{"id":"42"}\r\n'

CASES = [
    Ambiguous("x", X_SEND, b'{"text":"hi","text":"buy now"}', JSON, "twice"),
    Ambiguous("x", X_SEND + "?a=1&a=2", b'{"text":"hi"}', JSON, "twice"),
    Ambiguous("x", X_SEND + "?a=1;text=buy", b'{"text":"hi"}', JSON, "';'"),
    Ambiguous("x", X_SEND + "?text=buy", b'{"text":"hi"}', JSON, "both"),
    Ambiguous("linkedin", LI_SEND + "?body=buy", LI_BODY, JSON, "both"),
    Ambiguous("linkedin", LI_SEND + "?x=1;body=buy", LI_BODY, JSON, "';'"),
    Ambiguous("linkedin", LI_SEND, LI_BODY[:-1] + b',"body":"buy now"}', JSON, "twice"),
    Ambiguous("bluesky", BSKY_SEND + "?convoId=c2", BSKY_BODY, JSON, "both"),
    Ambiguous("bluesky", BSKY_SEND + "?a=1&a=2", BSKY_BODY, JSON, "twice"),
    Ambiguous("bluesky", BSKY_SEND, BSKY_BODY[:-1] + b',"convoId":"c2"}', JSON, "twice"),
    Ambiguous(
        "meta",
        META_SEND,
        (
            META_FIELDS + '--B\r\nContent-Disposition: form-data; name="tag"; name="message"'
            '\r\n\r\n{"text":"buy now"}\r\n--B--\r\n'
        ).encode(),
        "multipart/form-data; boundary=B",
        "twice",
    ),
    Ambiguous("meta", META_SEND + "?a=1;b=2", b'{"recipient":{"id":"42"}}', JSON, "';'"),
]


@pytest.fixture
async def fakes(fake_factory, fake_x) -> dict[str, ServedFake]:
    return {
        "x": fake_x,
        "linkedin": await fake_factory(FakeLinkedIn()),
        "bluesky": await fake_factory(FakeBluesky()),
        "meta": await fake_factory(FakeMeta()),
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.route}-{c.names}-{c.path[-12:]}")
async def test_ambiguous_dm_requests_get_400_and_reach_nothing(gate_factory, fakes, case):
    routes = {name: {"upstream": fake.url, "platform": name} for name, fake in fakes.items()}
    gate = await gate_factory(env={"DMGATE_ROUTES": json.dumps(routes)})
    r = await gate.client.post(
        case.path,
        content=case.body,
        headers={"Content-Type": case.content_type, "Authorization": f"Bearer {SENDER_TOKEN}"},
    )
    assert r.status_code == 400, r.text
    assert case.names in r.json()["detail"], r.text
    assert all(not fake.state.requests for fake in fakes.values())
