"""LinkedIn (official API and Voyager) and Meta (Messenger / Instagram Graph API) DMs end to
end: a real `dmgate serve` in front of the fake upstreams, judged, forwarded, held in the
platform's own success shape, released exactly once, and blocked in its error shape."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.linkedin_upstream import FakeLinkedInThread
from tests.fakes.meta_upstream import FakeMetaThread
from tests.integration.dm_helpers import TEMPLATE_ONLY, pitch

BLOCK_TEMPLATES = TEMPLATE_ONLY.replace("action: hold", "action: block")

ME = "ACoAAAsender"
LI_AT = "AQEDAT-session-cookie-of-sender"
JSESSIONID = "ajax:1234567890"
TOKEN = "li-bearer-token-of-sender"
PERSON = "pSender01"
PAGE = "1122334455"
PAGE_TOKEN = "EAAB-page-token"
MESSAGE_CREATE = "com.linkedin.voyager.messaging.create.MessageCreate"


@pytest.fixture
def linkedin() -> Iterator[FakeLinkedInThread]:
    with FakeLinkedInThread() as fake:
        fake.state.add_member(ME, person_id=PERSON, first="Sam", token=TOKEN, li_at=LI_AT)
        for pid, first in (("ACoAAAanna", "Anna"), ("ACoAAAben", "Ben"), ("ACoAAAcleo", "Cleo")):
            fake.state.add_member(pid, first=first)
        yield fake


@pytest.fixture
def meta() -> Iterator[FakeMetaThread]:
    with FakeMetaThread() as fake:
        fake.state.add_page(PAGE, token=PAGE_TOKEN)
        yield fake


@pytest.fixture
def start(dmgate_factory, linkedin, meta):
    routes = json.dumps(
        {
            "linkedin": {"upstream": linkedin.url, "platform": "linkedin"},
            "linkedin-web": {"upstream": linkedin.url, "platform": "linkedin"},
            "meta": {"upstream": meta.url, "platform": "meta"},
            "instagram": {"upstream": meta.url, "platform": "meta"},
        }
    )

    def start_gate(policy: str = TEMPLATE_ONLY):
        return dmgate_factory(env={"DMGATE_ROUTES": routes}, policy_yaml=policy)

    return start_gate


# --- Voyager -----------------------------------------------------------------------------

VOYAGER_HEADERS = {
    "Cookie": f'li_at={LI_AT}; JSESSIONID="{JSESSIONID}"',
    "csrf-token": JSESSIONID,
}


def voyager_body(text: str, recipients: list[str] | None = None) -> bytes:
    """Exactly what tomquirk/linkedin-api's `send_message` posts (`data=json.dumps(...)`,
    so no Content-Type)."""
    event: dict[str, Any] = {
        "eventCreate": {
            "originToken": "5d5b3b46-0000-4000-8000-000000000000",
            "value": {
                MESSAGE_CREATE: {
                    "attributedBody": {"text": text, "attributes": []},
                    "attachments": [],
                }
            },
            "trackingId": "abcdefghijklmnop",
        },
        "dedupeByClientGeneratedToken": False,
    }
    if recipients is None:
        return json.dumps(event).encode()
    event["recipients"] = recipients
    event["subtype"] = "MEMBER_TO_MEMBER"
    return json.dumps({"keyVersion": "LEGACY_INBOX", "conversationCreate": event}).encode()


def voyager_send(client: httpx.Client, recipient: str, text: str) -> httpx.Response:
    return client.post(
        "/linkedin-web/voyager/api/messaging/conversations?action=create",
        content=voyager_body(text, [recipient]),
        headers=VOYAGER_HEADERS,
    )


def learn_voyager_identity(client: httpx.Client) -> None:
    r = client.get("/linkedin-web/voyager/api/me", headers=VOYAGER_HEADERS)
    assert r.status_code == 200, r.text


def test_voyager_dm_without_content_type_is_judged_and_forwarded_untouched(start, linkedin):
    gate = start()
    body = voyager_body(
        "Hi Anna, great talk yesterday, could I ask about the slides?", ["ACoAAAanna"]
    )
    r = gate.client.post(
        "/linkedin-web/voyager/api/messaging/conversations?action=create",
        content=body,
        headers=VOYAGER_HEADERS,
    )
    assert r.status_code == 201, r.text
    assert r.headers["DMGate-Decision"] == "allow"  # judged, not passed through
    assert "conversationUrn" in r.json()["value"]
    forwarded = linkedin.state.requests[-1]
    assert forwarded.body == body
    assert forwarded.header("Content-Type") is None
    assert forwarded.raw_path == "/voyager/api/messaging/conversations?action=create"
    assert [s.recipients for s in linkedin.state.sent] == [("ACoAAAanna",)]


def test_malformed_voyager_body_is_refused_not_forwarded(start, linkedin):
    gate = start()
    r = gate.client.post(
        "/linkedin-web/voyager/api/messaging/conversations?action=create",
        content=b'{"conversationCreate": {"recipients": ["ACoAAAanna"]',
        headers=VOYAGER_HEADERS,
    )
    assert r.status_code == 400
    assert "linkedin" in r.text
    assert linkedin.state.requests == []


def test_third_voyager_copy_is_held_with_201_and_released_once(start, linkedin):
    gate = start()
    learn_voyager_identity(gate.client)
    for i, rid in enumerate(("ACoAAAanna", "ACoAAAben")):
        assert voyager_send(gate.client, rid, pitch(i)).headers["DMGate-Decision"] == "allow"
    r = voyager_send(gate.client, "ACoAAAcleo", pitch(3))
    assert r.status_code == 201, r.text  # Voyager clients accept nothing else
    assert r.headers["DMGate-Decision"] == "hold"
    hold_id = r.headers["DMGate-Hold-Id"]
    body = r.json()
    assert body["value"]["conversationUrn"].startswith("urn:li:fs_conversation:")
    assert body["dmgate"] == {"hold_id": hold_id, "status": "pending"}
    assert len(linkedin.state.sent) == 2

    hold = gate.review().get(f"/api/v1/holds/{hold_id}").json()
    assert hold["platform"] == "linkedin"
    assert hold["account"] == ME  # learnt from GET /voyager/api/me for this li_at
    assert hold["recipients"] == ["ACoAAAcleo"]

    approved = gate.review().post(f"/api/v1/holds/{hold_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "sent"
    assert approved.json()["upstream_status"] == 201
    assert gate.review().post(f"/api/v1/holds/{hold_id}/approve").status_code == 409
    assert len(linkedin.state.sent) == 3
    assert linkedin.state.sent[-1].recipients == ("ACoAAAcleo",)
    released = linkedin.state.requests[-1]
    assert released.header("Cookie") == VOYAGER_HEADERS["Cookie"]
    assert released.header("csrf-token") == JSESSIONID


def test_send_into_a_learnt_conversation_is_attributed_to_its_members(start, linkedin):
    cid = linkedin.state.add_conversation((ME, "ACoAAAcleo"), "Hey Sam!", sender="ACoAAAcleo")
    gate = start()
    learn_voyager_identity(gate.client)
    listed = gate.client.get(
        "/linkedin-web/voyager/api/messaging/conversations",
        params={"keyVersion": "LEGACY_INBOX"},
        headers=VOYAGER_HEADERS,
    )
    assert listed.status_code == 200
    for i, rid in enumerate(("ACoAAAanna", "ACoAAAben")):
        voyager_send(gate.client, rid, pitch(i))
    r = gate.client.post(
        f"/linkedin-web/voyager/api/messaging/conversations/{cid}/events?action=create",
        content=voyager_body(pitch(7)),
        headers=VOYAGER_HEADERS,
    )
    assert r.status_code == 201, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    assert r.json()["value"]["conversationUrn"] == f"urn:li:fs_conversation:{cid}"
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    assert hold["recipients"] == ["ACoAAAcleo"]  # the member, not the conversation id


def dash_send(client: httpx.Client, text: str, **target: Any) -> httpx.Response:
    """What LinkedIn's own web client posts to send a message."""
    message: dict[str, Any] = {
        "body": {"attributes": [], "text": text},
        "renderContentUnions": [],
        "originToken": "ecfb3d0a-b406-485e-93b7-8593a4906c6c",
    }
    doc: dict[str, Any] = {"message": message, "mailboxUrn": f"urn:li:fsd_profile:{ME}"}
    if "conversation" in target:
        mailbox = f"urn:li:fsd_profile:{ME}"
        message["conversationUrn"] = f"urn:li:msg_conversation:({mailbox},{target['conversation']})"
    else:
        doc["hostRecipientUrns"] = [f"urn:li:fsd_profile:{target['to']}"]
    return client.post(
        "/linkedin-web/voyager/api/voyagerMessagingDashMessengerMessages?action=createMessage",
        json=doc,
        headers={**VOYAGER_HEADERS, "x-restli-protocol-version": "2.0.0"},
    )


def test_messenger_endpoint_sends_are_judged_like_the_legacy_ones(start, linkedin):
    cid = linkedin.state.add_conversation((ME, "ACoAAAcleo"), "Hey Sam!", sender="ACoAAAcleo")
    gate = start()
    learn_voyager_identity(gate.client)
    gate.client.get("/linkedin-web/voyager/api/messaging/conversations", headers=VOYAGER_HEADERS)
    first = dash_send(gate.client, pitch(0), to="ACoAAAanna")
    assert first.status_code == 200, first.text
    assert first.headers["DMGate-Decision"] == "allow"
    dash_send(gate.client, pitch(1), to="ACoAAAben")
    r = dash_send(gate.client, pitch(2), conversation=cid)
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    assert r.json()["value"]["entityUrn"].startswith("urn:li:msg_message:")
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    assert (hold["account"], hold["recipients"]) == (ME, ["ACoAAAcleo"])
    assert [s.recipients for s in linkedin.state.sent] == [("ACoAAAanna",), ("ACoAAAben",)]


def test_voyager_block_answers_403_in_restli_shape(start, linkedin):
    gate = start(BLOCK_TEMPLATES)
    for i, rid in enumerate(("ACoAAAanna", "ACoAAAben")):
        voyager_send(gate.client, rid, pitch(i))
    r = voyager_send(gate.client, "ACoAAAcleo", pitch(3))
    assert r.status_code == 403
    assert r.headers["DMGate-Decision"] == "block"
    body = r.json()
    assert body["status"] == 403
    assert body["code"] == "ACCESS_DENIED"
    assert body["message"].startswith("template_reuse:")
    assert len(linkedin.state.sent) == 2


# --- official Messages API ---------------------------------------------------------------


def official_send(client: httpx.Client, person: str, text: str) -> httpx.Response:
    return client.post(
        "/linkedin/v2/messages",
        json={"recipients": [f"urn:li:person:{person}"], "subject": "Hello", "body": text},
        headers={"Authorization": f"Bearer {TOKEN}", "X-Restli-Protocol-Version": "2.0.0"},
    )


def test_official_api_allowed_then_held_in_restli_create_shape(start, linkedin):
    gate = start()
    assert (
        gate.client.get("/linkedin/v2/me", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
        == 200
    )
    first = official_send(gate.client, "pAnna", pitch(0))
    assert first.status_code == 201
    assert first.headers["DMGate-Decision"] == "allow"
    assert first.headers["x-restli-id"].startswith("2-msg")  # the upstream's, untouched
    official_send(gate.client, "pBen", pitch(1))
    r = official_send(gate.client, "pCleo", pitch(2))
    assert r.status_code == 201
    assert r.headers["DMGate-Decision"] == "hold"
    assert r.headers["x-restli-id"]  # the created message's id, as LinkedIn gives it
    assert r.json()["dmgate"]["hold_id"] == r.headers["DMGate-Hold-Id"]
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    assert hold["account"] == PERSON  # from GET /v2/me
    assert hold["recipients"] == ["pCleo"]
    assert [s.recipients for s in linkedin.state.sent] == [("pAnna",), ("pBen",)]


# --- Meta --------------------------------------------------------------------------------


def graph_send(
    client: httpx.Client, recipient: str, text: str, form: str = "json", path: str = PAGE
) -> httpx.Response:
    doc = {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": text}}
    url = f"/meta/v21.0/{path}/messages"
    if form == "json":
        return client.post(url, params={"access_token": PAGE_TOKEN}, json=doc)
    strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
    strings["access_token"] = PAGE_TOKEN
    if form == "form":
        return client.post(
            url,
            content=urlencode(strings).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    return client.post(url, params=strings)


def test_graph_dm_is_forwarded_untouched(start, meta):
    gate = start()
    r = graph_send(gate.client, "9001", "Thanks for your question, here is the answer you wanted")
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "allow"
    assert r.json() == {"recipient_id": "9001", "message_id": "m_fake1"}
    sent = meta.state.sent[-1]
    assert (sent.page, sent.recipient, sent.form) == (PAGE, {"id": "9001"}, "json")


def test_graph_form_send_held_with_200_and_released_once(start, meta):
    gate = start()
    for i, rid in enumerate(("9001", "9002")):
        assert graph_send(gate.client, rid, pitch(i), "form").headers["DMGate-Decision"] == "allow"
    r = graph_send(gate.client, "9003", pitch(3), "form")
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    hold_id = r.headers["DMGate-Hold-Id"]
    body = r.json()
    assert body["recipient_id"] == "9003"
    assert body["message_id"].startswith("m_")
    assert body["dmgate"] == {"hold_id": hold_id, "status": "pending"}
    hold = gate.review().get(f"/api/v1/holds/{hold_id}").json()
    assert (hold["account"], hold["recipients"]) == (PAGE, ["9003"])
    assert len(meta.state.sent) == 2

    approved = gate.review().post(
        f"/api/v1/holds/{hold_id}/approve", json={"text": "Hi, no pitch: how can we help?"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "sent"
    assert gate.review().post(f"/api/v1/holds/{hold_id}/approve").status_code == 409
    assert len(meta.state.sent) == 3
    released = meta.state.sent[-1]
    assert released.form == "form"  # the edit kept the form it came in
    assert released.message == {"text": "Hi, no pitch: how can we help?"}
    assert released.recipient == {"id": "9003"}  # sent with the original access token


def test_graph_me_sender_learnt_from_get_me(start, meta):
    gate = start()
    r = gate.client.get("/instagram/v21.0/me", params={"access_token": PAGE_TOKEN})
    assert r.status_code == 200
    for i, rid in enumerate(("9001", "9002", "9003")):
        r = graph_send(gate.client, rid, pitch(i), "query", path="me")
    assert r.headers["DMGate-Decision"] == "hold"
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    assert hold["account"] == PAGE


def test_graph_block_answers_403_in_graph_error_shape(start, meta):
    gate = start(BLOCK_TEMPLATES)
    for i, rid in enumerate(("9001", "9002")):
        graph_send(gate.client, rid, pitch(i), "query")
    r = graph_send(gate.client, "9003", pitch(3), "query")
    assert r.status_code == 403
    assert r.headers["DMGate-Decision"] == "block"
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("OAuthException", 10)
    assert error["message"].startswith("(#10) template_reuse:")
    assert len(meta.state.sent) == 2


def test_graph_typing_indicator_passes(start, meta):
    gate = start()
    r = gate.client.post(
        f"/meta/v21.0/{PAGE}/messages",
        params={"access_token": PAGE_TOKEN},
        json={"recipient": {"id": "9001"}, "sender_action": "typing_on"},
    )
    assert r.status_code == 200, r.text
    assert meta.state.actions == [(PAGE, "typing_on")]


def test_graph_token_in_the_query_or_body_is_sealed_at_rest(start, meta):
    """Graph sends carry the page token in the URL or the form body: a held request must
    not leave it readable in the database."""
    gate = start()
    for i, form in enumerate(("query", "form", "json")):
        graph_send(gate.client, f"7000{i}", pitch(i), form=form)
    held = graph_send(gate.client, "70009", pitch(9), form="form")
    assert held.headers["DMGate-Decision"] == "hold"
    if os.environ.get("DMGATE_TEST_BACKEND", "sqlite") == "sqlite":
        gate.stop()
        raw = b"".join(p.read_bytes() for p in gate.tmp.glob("dmgate.db*"))
        assert PAGE_TOKEN.encode() not in raw
