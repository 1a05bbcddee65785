"""DM sends spelled so that dmgate would read them differently from a parser the platform
might run, or not as sends at all, are refused or judged, never forwarded unjudged: a form
declared in another charset, multipart parts whose names or values only some parsers
decode, Graph versions spelled loosely, and X's DM-send paths dmgate does not judge."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from tests.fakes.mastodon_upstream import FakeMastodon
from tests.fakes.meta_upstream import FakeMeta
from tests.inprocess.conftest import ServedFake
from tests.integration.dm_helpers import SENDER_TOKEN

MASTO_TOKEN = "mastodon-unread-spellings-token"
PAGE, PAGE_TOKEN = "5566778899", "EAAB-unread-spellings-token"


@pytest.fixture
async def fakes(fake_factory, fake_x) -> dict[str, ServedFake]:
    masto = FakeMastodon()
    masto.add_account("1", "sam", token=MASTO_TOKEN)
    masto.add_account("10", "person")
    meta = FakeMeta()
    meta.add_page(PAGE, token=PAGE_TOKEN)
    return {"x": fake_x, "mastodon": await fake_factory(masto), "meta": await fake_factory(meta)}


@pytest.fixture
async def gate(gate_factory, fakes):
    routes = {name: {"upstream": fake.url, "platform": name} for name, fake in fakes.items()}
    return await gate_factory(env={"DMGATE_ROUTES": json.dumps(routes)})


def _part(headers: str, value: str) -> str:
    return f"--B\r\n{headers}\r\n\r\n{value}\r\n"


STATUS = _part('Content-Disposition: form-data; name="status"', "@person hi there")
# The `visibility=direct` part, spelled so that only a decoding parser reads it.
HIDDEN_DIRECT = {
    "base64": 'Content-Disposition: form-data; name="visibility"\r\n'
    "Content-Transfer-Encoding: base64",
    "quoted-printable": 'Content-Disposition: form-data; name="visibility"\r\n'
    "Content-Transfer-Encoding: quoted-printable",
    "RFC 2231 name": "Content-Disposition: form-data; name*=utf-8''visibility",
    "RFC 2231 continuation": 'Content-Disposition: form-data; name*0="visi"; name*1="bility"',
    "folded header": 'Content-Disposition: form-data;\r\n name="visibility"',
    "encoded word": 'Content-Disposition: form-data; name="=?utf-8?q?visibility?="',
}
VALUES = {"base64": base64.b64encode(b"direct").decode(), "quoted-printable": "=64irect"}


@pytest.mark.parametrize("how", HIDDEN_DIRECT)
async def test_multipart_parts_only_some_parsers_decode_get_400(gate, fakes, how):
    body = STATUS + _part(HIDDEN_DIRECT[how], VALUES.get(how, "direct")) + "--B--\r\n"
    r = await gate.client.post(
        "/mastodon/api/v1/statuses",
        content=body.encode(),
        headers={
            "Content-Type": "multipart/form-data; boundary=B",
            "Authorization": f"Bearer {MASTO_TOKEN}",
        },
    )
    assert r.status_code == 400, r.text
    assert "DMGate-Decision" not in r.headers
    assert not fakes["mastodon"].state.requests


@pytest.mark.parametrize(
    ("charset", "body"),
    [
        ("utf-16-le", "status=@person hi there&visibility=direct".encode("utf-16-le")),
        ("utf-7", b"status=@person hi there&visibility=+AGQ-irect"),
        ("iso-8859-1", b"status=@person caf\xe9&visibility=direct"),
    ],
    ids=["utf-16-le", "utf-7", "iso-8859-1"],
)
async def test_a_form_in_another_charset_than_utf8_gets_415(gate, fakes, charset, body):
    r = await gate.client.post(
        "/mastodon/api/v1/statuses",
        content=body,
        headers={
            "Content-Type": f"application/x-www-form-urlencoded; charset={charset}",
            "Authorization": f"Bearer {MASTO_TOKEN}",
        },
    )
    assert r.status_code == 415, r.text
    assert charset in r.json()["detail"]
    assert not fakes["mastodon"].state.requests


async def test_a_form_declared_utf8_is_judged(gate, fakes):
    r = await gate.client.post(
        "/mastodon/api/v1/statuses",
        content=urlencode({"status": "@person hi there", "visibility": "direct"}),
        headers={
            "Content-Type": 'application/x-www-form-urlencoded; charset="UTF-8"',
            "Authorization": f"Bearer {MASTO_TOKEN}",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "allow"
    assert [s.mentions for s in fakes["mastodon"].state.statuses] == [("person",)]


@pytest.mark.parametrize("version", ["v21.0.0", "V21.", "v.", "vfoo"])
async def test_graph_versions_spelled_loosely_are_judged(gate, fakes, version):
    send = {"recipient": {"id": "42"}, "message": {"text": "hi there"}}
    r = await gate.client.post(
        f"/meta/{version}/{PAGE}/messages?access_token={PAGE_TOKEN}", json=send
    )
    assert r.headers.get("DMGate-Decision") == "allow", r.text
    batch = {"method": "POST", "relative_url": f"{version}/{PAGE}/messages"}
    batch["body"] = urlencode({k: json.dumps(v) for k, v in send.items()})
    form = urlencode([("access_token", PAGE_TOKEN), ("batch", json.dumps([batch]))])
    r = await gate.client.post(
        f"/meta/{version}",
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.headers.get("DMGate-Decision") == "allow", r.text


@pytest.mark.parametrize(
    "path",
    [
        "/x/1.1/direct_messages/new.json?user_id=42&text=hi",
        "/x/1.1/dm/new2.json",
        "/x/i/api/1.1/dm/new2.json",
        "/x/1.1/DM/new.json",
    ],
)
async def test_x_dm_sends_dmgate_does_not_judge_are_refused(gate, fakes, path):
    r = await gate.client.post(
        path,
        json={"conversation_id": "1-42", "text": "hi there"},
        headers={"Authorization": f"Bearer {SENDER_TOKEN}"},
    )
    assert r.status_code == 400, r.text
    assert "does not judge" in r.json()["detail"]
    assert not fakes["x"].state.requests


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/meta/v2.12/123_456/private_replies", {"message": "see my offer"}),
        (f"/meta/v21.0/{PAGE}/message_creatives", {"messages": [{"text": "see my offer"}]}),
        (f"/meta/v21.0/{PAGE}/broadcast_messages", {"message_creative_id": "777"}),
        (f"/meta/{PAGE}/marketing_messages", {"to": "15550100", "text": {"body": "offer"}}),
    ],
    ids=["private_replies", "message_creatives", "broadcast_messages", "marketing_messages"],
)
async def test_graph_channels_dmgate_does_not_judge_are_refused(gate, fakes, path, body):
    r = await gate.client.post(f"{path}?access_token={PAGE_TOKEN}", json=body)
    assert r.status_code == 400 and "does not judge" in r.json()["detail"], r.text
    item = {"method": "POST", "relative_url": path.removeprefix("/meta/"), "body": "message=x"}
    form = urlencode([("access_token", PAGE_TOKEN), ("batch", json.dumps([item]))])
    r = await gate.client.post(
        "/meta/", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400 and "does not judge" in r.json()["detail"], r.text
    assert not fakes["meta"].state.requests
