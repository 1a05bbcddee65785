"""Every trick a tool could use to get a DM past the gate unjudged, tried against a dmgate
served in the test's event loop on every platform where it applies. Each DM is judged or
refused, and the fake upstreams' records prove that nothing unjudged arrived. (Raw-socket
timeouts and what reaches the log: tests/integration/test_adversarial.py.)

The policy holds a DM to someone who followed within the hour: the recipients below have
just followed the sender, so any DM that reaches a fake without being held was not judged.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import zlib
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.mastodon_upstream import FakeMastodon
from tests.fakes.meta_upstream import FakeMeta
from tests.inprocess.conftest import Gate, ServedFake, sqlite_only
from tests.integration.dm_helpers import SENDER_TOKEN, bearer

POLICY = """
policies:
  follow_timing: {action: hold, window: 1h}
"""
FOLLOWER = "42"
PAGE, PAGE_TOKEN = "5566778899", "EAAB-adversarial-page-token"
M_TOKEN = "mastodon-adversarial-token-0123"
OVERRIDES = [
    ("X-HTTP-Method-Override", "PUT"),
    ("X-HTTP-Method", "PATCH"),
    ("X-Method-Override", "DELETE"),
]


@pytest.fixture
async def fakes(fake_x: ServedFake, fake_factory) -> dict[str, ServedFake]:
    meta, masto = FakeMeta(), FakeMastodon()
    meta.add_page(PAGE, token=PAGE_TOKEN)
    masto.add_account("1", "sam", token=M_TOKEN)
    masto.add_account(FOLLOWER, "person")
    return {"x": fake_x, "meta": await fake_factory(meta), "mastodon": await fake_factory(masto)}


def _routes(fakes: dict[str, ServedFake]) -> str:
    return json.dumps(
        {
            "x": {"upstream": fakes["x"].url, "platform": "x"},
            "meta": {"upstream": fakes["meta"].url, "platform": "meta"},
            "mastodon": {"upstream": fakes["mastodon"].url, "platform": "mastodon"},
        }
    )


@pytest.fixture
async def gate(gate_factory, fakes) -> Gate:
    gate = await gate_factory(
        env={
            "DMGATE_ROUTES": _routes(fakes),
            "DMGATE_CLIENT_BODY_TIMEOUT": "1s",
            "DMGATE_CLIENT_HANDSHAKE_TIMEOUT": "1s",
        },
        policy_yaml=POLICY,
    )
    await followed(gate, "x", "100", FOLLOWER)
    await followed(gate, "meta", PAGE, FOLLOWER)
    await followed(gate, "mastodon", "1", "person")  # Mastodon keys people by their acct
    return gate


async def followed(gate: Gate, platform: str, account: str, follower: str) -> None:
    r = await gate.review().post(
        "/api/v1/follow-events",
        json={"platform": platform, "account": account, "follower": follower},
    )
    assert r.status_code in (200, 201, 204), r.text


def sends(fakes: dict[str, ServedFake]) -> int:
    """Every request but a GET the fakes received: anything unjudged would show up here
    (dmgate itself asks the platforms who a new credential belongs to, with a GET)."""
    return sum(1 for f in fakes.values() for rec in f.state.requests if rec.method != "GET")


def x_dm(recipient: str = FOLLOWER, text: str = "Thanks for the follow! Join us") -> bytes:
    return json.dumps({"text": text}).encode()


X_DM_PATH = f"/x/2/dm_conversations/with/{FOLLOWER}/messages"
MASTODON_DM = urlencode({"status": "@person thanks for the follow!", "visibility": "direct"})
DM_PATHS = {
    "x": (X_DM_PATH, bearer(), "application/json", x_dm()),
    "meta": (
        f"/meta/v21.0/{PAGE}/messages?access_token={PAGE_TOKEN}",
        {},
        "application/json",
        json.dumps({"recipient": {"id": FOLLOWER}, "message": {"text": "hi there"}}).encode(),
    ),
    "mastodon": (
        "/mastodon/api/v1/statuses",
        {"Authorization": f"Bearer {M_TOKEN}"},
        "application/x-www-form-urlencoded",
        MASTODON_DM.encode(),
    ),
}


async def post_dm(
    gate: Gate, platform: str, extra: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    path, headers, ctype, body = DM_PATHS[platform]
    return await gate.client.post(
        kw.pop("path", path),
        content=kw.pop("content", body),
        headers={**headers, "Content-Type": ctype, **(extra or {})},
        **kw,
    )


def refused(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["source"] == "dmgate", doc
    assert "DMGate-Decision" not in r.headers
    return doc


# --- the baseline: the gate judges these DMs at all ---------------------------------------


@pytest.mark.parametrize("platform", sorted(DM_PATHS))
async def test_a_dm_to_a_new_follower_is_held_on_every_platform(gate, fakes, platform):
    before = {name: len(f.state.requests) for name, f in fakes.items()}
    r = await post_dm(gate, platform)
    assert r.headers["DMGate-Decision"] == "hold", r.text
    # Mastodon is asked who the sender is (once): that GET is the only request.
    after = [rec for name, f in fakes.items() for rec in f.state.requests[before[name] :]]
    assert all(rec.method == "GET" for rec in after), [(rec.method, rec.path) for rec in after]


# --- method overrides and other methods ---------------------------------------------------


@pytest.mark.parametrize("header", OVERRIDES, ids=[h for h, _ in OVERRIDES])
@pytest.mark.parametrize("platform", sorted(DM_PATHS))
async def test_method_override_headers_are_refused_on_dm_paths(gate, fakes, platform, header):
    before = sends(fakes)
    doc = refused(await post_dm(gate, platform, {header[0]: header[1]}), 400)
    assert doc["error"] == "method_override_refused"
    assert sends(fakes) == before


@pytest.mark.parametrize("target", ["/x/2/tweets", "/meta/v21.0/me", "/mastodon/api/v1/timelines"])
async def test_method_override_is_refused_on_every_route(gate, fakes, target):
    before = sends(fakes)
    refused(await gate.client.get(target, headers={"X-HTTP-Method-Override": "POST"}), 400)
    refused(await gate.client.post(target + "?_method=PUT"), 400)
    refused(await gate.client.post(target + "?a=1;%5Fmethod=PUT"), 400)
    assert sends(fakes) == before


async def test_a_method_override_form_field_never_reaches_the_upstream_whole(gate, fakes):
    masto = fakes["mastodon"].state
    before = len(masto.requests)
    headers = {"Authorization": f"Bearer {M_TOKEN}"}
    # A DM (judged) with `_method` in its form body: refused before anything is sent.
    r = await post_dm(gate, "mastodon", content=(MASTODON_DM + "&_method=put").encode())
    refused(r, 400)
    # An edit spelled as POST: `/api/v1/statuses/:id` is an edit path (PUT/PATCH, judged),
    # so any other method there is refused before a byte is sent.
    r = await gate.client.post("/mastodon/api/v1/statuses/77", content=b"status=pitch")
    refused(r, 405)
    # A pass-through POST turned into a PUT by `_method`, the field behind padding that
    # spans many chunks: the upstream's request is cut off before it is complete.
    padding = "x" * (600 * 1024)
    r = await gate.client.post(
        "/mastodon/api/v1/statuses/77/reblog",
        content=urlencode({"pad": padding, "status": "pitch", "_method": "PUT"}).encode(),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    refused(r, 400)
    multipart = (
        b'--b\r\nContent-Disposition: form-data; name="status"\r\n\r\npitch\r\n'
        b'--b\r\nContent-Disposition: form-data; name="pad"\r\n\r\n'
        + b"y" * (600 * 1024)
        + b"\r\n--b\r\nContent-Disposition: form-data; name=_method\r\n\r\nPUT\r\n--b--\r\n"
    )
    r = await gate.client.post(
        "/mastodon/api/v1/statuses/77/reblog",
        content=multipart,
        headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    refused(r, 400)
    # What reached the fake (if anything) never arrived whole: no complete request logged.
    assert [rec.path for rec in masto.requests[before:]] == []


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("platform", sorted(DM_PATHS))
async def test_other_methods_on_dm_send_paths_are_refused(gate, fakes, platform, method):
    path, headers, ctype, body = DM_PATHS[platform]
    before = sends(fakes)
    r = await gate.client.request(
        method, path, content=body, headers={**headers, "Content-Type": ctype}
    )
    refused(r, 405)
    assert sends(fakes) == before


# --- path and id spellings ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/x/2/DM_Conversations/with/{FOLLOWER}/Messages",
        f"/x/2/dm_conversations/with/{FOLLOWER}/messages/",
        f"/x/2/dm_conversations/with/{FOLLOWER}/messages.json",
        "/x/2/dm_conversations/with/%34%32/m%65ssages",
        f"/x/2/dm_conversations/with/{FOLLOWER}/messages;v=1",
        f"/x/2//dm_conversations/./with/{FOLLOWER}/messages",
        f"/x/2/dm_conversations/with/0{FOLLOWER}/messages",
        f"/x/2/dm_conversations/with/00{FOLLOWER}/messages",
    ],
)
async def test_every_spelling_of_an_x_dm_send_is_judged(gate, fakes, path):
    before = sends(fakes)
    r = await gate.client.post(
        path, content=x_dm(), headers={**bearer(), "Content-Type": "application/json"}
    )
    # Held: judged, and as a DM to the follower (leading zeros are the same user).
    assert r.headers.get("DMGate-Decision") == "hold", (r.status_code, r.text)
    assert sends(fakes) == before


async def test_mastodon_format_suffix_and_handle_case_are_judged(gate, fakes):
    before = sends(fakes)
    r = await post_dm(gate, "mastodon", path="/mastodon/api/v1/statuses.json")
    assert r.headers.get("DMGate-Decision") == "hold", r.text
    body = urlencode({"status": "@PERSON thanks for the follow!", "visibility": "direct"})
    r = await post_dm(gate, "mastodon", content=body.encode())
    assert r.headers.get("DMGate-Decision") == "hold", r.text
    assert [rec.method for rec in fakes["mastodon"].state.requests[before:]] in ([], ["GET"])


async def test_v1_dm_with_a_numeric_or_zero_padded_recipient_is_the_same_person(gate, fakes):
    before = sends(fakes)
    for recipient in (int(FOLLOWER), "00" + FOLLOWER):
        event = {
            "event": {
                "type": "message_create",
                "message_create": {
                    "target": {"recipient_id": recipient},
                    "message_data": {"text": "Thanks for the follow!"},
                },
            }
        }
        r = await gate.client.post(
            "/x/1.1/direct_messages/events/new.json", json=event, headers=bearer()
        )
        assert r.headers.get("DMGate-Decision") == "hold", r.text
    assert sends(fakes) == before


# --- who is sending -----------------------------------------------------------------------


async def test_a_new_credential_is_identified_once_by_asking_the_platform(gate, fakes):
    x = fakes["x"].state
    x.add_user("500", token="fresh-token-of-500")
    await followed(gate, "x", "500", "43")
    me_calls = lambda: sum(1 for rec in x.requests if rec.path == "/2/users/me")  # noqa: E731
    for _ in range(2):
        r = await gate.client.post(
            "/x/2/dm_conversations/with/43/messages",
            json={"text": "Thanks for the follow!"},
            headers=bearer("fresh-token-of-500"),
        )
        assert r.headers["DMGate-Decision"] == "hold", r.text
    assert me_calls() == 1
    assert gate.metric("dmgate_sender_identity_total", platform="x", source="lookup") == 1
    assert gate.metric("dmgate_sender_identity_total", platform="x", source="learnt") == 1


async def test_a_sender_nobody_can_identify_is_held_not_judged_as_a_stranger(gate, fakes):
    before = len(fakes["x"].state.sent)
    # The fake answers /2/users/me for this token with 403 (app-only token).
    r = await gate.client.post(
        "/x/2/dm_conversations/with/777/messages",
        json={"text": "A perfectly nice message."},
        headers={**bearer("app-only-token"), "DMGate-Account": "12345"},
    )
    assert r.headers["DMGate-Decision"] == "hold", r.text
    hold = (await gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}")).json()
    assert [p["policy"] for p in hold["policies"]] == ["sender_identity"]
    assert len(fakes["x"].state.sent) == before
    assert gate.metric("dmgate_sender_identity_total", platform="x", source="unverified") == 1


# --- XChat --------------------------------------------------------------------------------


async def test_xchat_sends_are_judged_held_and_released_once(gate, fakes):
    x = fakes["x"].state
    body = {"message_id": "m-1", "encoded_message_create_event": "AAEC"}
    r = await gate.client.post(
        f"/x/2/chat/conversations/{FOLLOWER}/messages", json=body, headers=bearer()
    )
    assert r.status_code == 201, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    chat = lambda: [rec for rec in x.requests if rec.path.startswith("/2/chat/")]  # noqa: E731
    assert chat() == []
    hold_id = r.headers["DMGate-Hold-Id"]
    done = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={})
    assert done.json()["status"] == "sent", done.text
    assert len(chat()) == 1 and chat()[0].json() == body
    # A reviewer cannot edit encrypted text.
    r = await gate.client.post(
        f"/x/2/chat/conversations/{FOLLOWER}/messages",
        json={**body, "message_id": "m-2"},
        headers=bearer(),
    )
    edit = await gate.review().post(
        f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}/approve", json={"text": "nicer"}
    )
    assert edit.status_code == 422, edit.text


# --- a reviewer's decision binds ----------------------------------------------------------


async def test_an_edited_approval_whose_send_failed_never_lets_the_original_through(gate, fakes):
    x = fakes["x"].state
    original = "Thanks for the follow! Join us at rocketly.example"
    r = await post_dm(gate, "x", content=x_dm(text=original))
    hold_id = r.headers["DMGate-Hold-Id"]
    x.reject_tokens.add(SENDER_TOKEN)  # the release fails
    edited = "Hi! Loved your thread on onboarding, may I ask a question?"
    done = await gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": edited})
    assert done.json()["status"] == "send_failed", done.text
    x.reject_tokens.clear()
    sent_before = len(x.sent)
    again = await post_dm(gate, "x", content=x_dm(text=original))
    assert again.status_code == 403 and again.headers["DMGate-Decision"] == "block", again.text
    assert "edited" in again.text
    assert len(x.sent) == sent_before
    # Exactly the approved text, once.
    ok = await post_dm(gate, "x", content=x_dm(text=edited))
    assert ok.status_code == 201 and ok.headers["DMGate-Decision"] == "allow", ok.text
    assert [m.text for m in x.sent[sent_before:]] == [edited]


async def test_a_rejected_dm_stays_rejected_when_the_tool_retries(gate, fakes):
    r = await post_dm(gate, "x")
    hold_id = r.headers["DMGate-Hold-Id"]
    await gate.review().post(f"/api/v1/holds/{hold_id}/reject", json={"reason": "auto-DM"})
    for _ in range(2):
        again = await post_dm(gate, "x")
        assert again.status_code == 403, again.text
        assert "rejected" in again.text and "auto-DM" in again.text
    assert fakes["x"].state.sent == []


# --- bodies -------------------------------------------------------------------------------


async def test_a_gzip_dm_is_judged_on_its_text_and_forwarded_as_sent(gate, fakes):
    x = fakes["x"].state
    raw = json.dumps({"text": "Hello, how was the conference?"}).encode()
    packed = gzip.compress(raw)
    r = await gate.client.post(
        "/x/2/dm_conversations/with/901/messages",
        content=packed,
        headers={**bearer(), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.headers["DMGate-Decision"] == "allow", r.text
    got = x.requests[-1]
    assert got.header("Content-Encoding") == "gzip"
    assert got.header("Content-Length") == str(len(packed))  # the tool's bytes
    assert got.body == raw  # (the fake decompressed them)
    # Held: the text inside the gzip body is what was judged.
    r = await gate.client.post(
        X_DM_PATH,
        content=gzip.compress(x_dm()),
        headers={**bearer(), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert r.headers["DMGate-Decision"] == "hold"


@pytest.mark.parametrize(
    "body,encoding,status",
    [
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(b'{"text": "hi"}')[:-6], "gzip", 400),
        (gzip.compress(b"[" * 20 + b"0" * (3 * 1024 * 1024)), "gzip", 413),
        (zlib.compress(b'{"text": "hi"}'), "br", 415),
    ],
    ids=["garbage", "truncated", "bomb", "unknown-coding"],
)
async def test_dm_bodies_that_cannot_be_decoded_are_refused(gate, fakes, body, encoding, status):
    before = sends(fakes)
    r = await gate.client.post(
        X_DM_PATH,
        content=body,
        headers={**bearer(), "Content-Type": "application/json", "Content-Encoding": encoding},
    )
    refused(r, status)
    assert sends(fakes) == before


async def test_a_gzip_passthrough_body_arrives_unaltered(gate, fakes):
    packed = gzip.compress(os.urandom(10_000))
    r = await gate.client.post(
        "/x/_test/echo", content=packed, headers={"Content-Encoding": "gzip"}
    )
    assert r.status_code == 200, r.text
    got = fakes["x"].state.requests[-1]
    assert got.header("Content-Encoding") == "gzip"
    assert got.header("Content-Length") == str(len(packed))


@pytest.mark.parametrize("listed", ["Content-Type", "content-length", "Authorization, close"])
async def test_connection_naming_a_judged_header_is_refused(gate, fakes, listed):
    before = sends(fakes)
    refused(await post_dm(gate, "x", {"Connection": listed}), 400)
    assert sends(fakes) == before


async def test_absurdly_deep_json_is_a_400_never_a_500(gate, fakes):
    before = sends(fakes)
    deep = b'{"text": "hi", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    refused(await post_dm(gate, "x", content=deep), 400)
    assert sends(fakes) == before


# --- nothing leaks ------------------------------------------------------------------------


@sqlite_only
async def test_the_sqlite_database_and_its_wal_files_are_private(gate):
    await post_dm(gate, "x")  # a hold: writes go through the WAL
    db = gate.tmp / "dmgate.db"
    files = [p for p in db.parent.iterdir() if p.name.startswith("dmgate.db")]
    assert {p.name for p in files} >= {"dmgate.db", "dmgate.db-wal"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
