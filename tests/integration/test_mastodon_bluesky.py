"""Mastodon and Bluesky DMs end to end: a real `dmgate serve` in front of the fake Mastodon
instance and the fake Bluesky PDS — judged, forwarded, held, released, blocked, and the
signals (identity, follows, conversation members) they are judged with."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from tests.fakes.bluesky_upstream import CHAT_PROXY, FakeBlueskyThread
from tests.fakes.mastodon_upstream import FakeMastodonThread
from tests.integration.dm_helpers import TEMPLATE_ONLY, pitch
from tests.integration.test_signals import FOLLOW_ONLY

ALICE_ID, ALICE_TOKEN = "1", "mastodon-token-of-alice"
ME, ANN, BEN, CAT = (f"did:plc:{n}{'x' * 20}" for n in ("me", "ann", "ben", "cat"))
PERSONAL = "Hi, saw your post on onboarding flows, would love to hear how you test them"
BLOCKING = TEMPLATE_ONLY.replace("action: hold", "action: block")


@pytest.fixture
def mastodon() -> Iterator[FakeMastodonThread]:
    with FakeMastodonThread() as fake:
        fake.state.add_account(ALICE_ID, "alice", token=ALICE_TOKEN)
        for i, name in enumerate(("bob", "carol", "dave", "erin"), start=2):
            fake.state.add_account(str(i), name)
        fake.state.add_account("9", "zed", domain="remote.example")
        yield fake


@pytest.fixture
def bluesky() -> Iterator[FakeBlueskyThread]:
    with FakeBlueskyThread() as fake:
        fake.state.add_user(ME, "me.test", password="app-password")
        for did, handle in ((ANN, "ann.test"), (BEN, "ben.test"), (CAT, "cat.test")):
            fake.state.add_user(did, handle)
        yield fake


@pytest.fixture
def start(dmgate_factory, mastodon, bluesky):
    def start(policy: str, env: dict[str, str] | None = None):
        routes = {
            "mastodon": {"upstream": mastodon.url, "platform": "mastodon"},
            "bluesky": {"upstream": bluesky.url, "platform": "bluesky"},
            "xrpc": {"upstream": bluesky.url + "/xrpc", "platform": "bluesky"},
        }
        return dmgate_factory(
            env={"DMGATE_ROUTES": json.dumps(routes), **(env or {})}, policy_yaml=policy
        )

    return start


# --- Mastodon ----------------------------------------------------------------------------

M_AUTH = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def toot(gate, text: str, visibility: str = "direct", headers: dict[str, str] | None = None):
    body = urlencode({"status": text, "visibility": visibility})
    return gate.client.post(
        "/mastodon/api/v1/statuses",
        content=body,
        headers={**M_AUTH, "Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )


def m_learn_identity(gate) -> None:
    r = gate.client.get("/mastodon/api/v1/accounts/verify_credentials", headers=M_AUTH)
    assert r.status_code == 200, r.text


def test_mastodon_direct_status_is_forwarded_untouched(start, mastodon):
    gate = start(TEMPLATE_ONLY)
    m_learn_identity(gate)
    body = urlencode({"status": "@bob " + PERSONAL, "visibility": "direct"})
    r = gate.client.post(
        "/mastodon/api/v1/statuses",
        content=body,
        headers={
            **M_AUTH,
            "Content-Type": "application/x-www-form-urlencoded",
            "Idempotency-Key": "k-1",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "allow"
    assert r.json()["visibility"] == "direct"
    sent = mastodon.state.requests[-1]
    assert sent.body == body.encode()
    assert sent.header("Authorization") == M_AUTH["Authorization"]
    assert sent.header("Idempotency-Key") == "k-1"
    assert [s.mentions for s in mastodon.state.statuses] == [("bob",)]


def test_mastodon_json_and_multipart_statuses_are_judged_and_forwarded(start, mastodon):
    gate = start(TEMPLATE_ONLY)
    m_learn_identity(gate)
    as_json = {"status": "@carol " + PERSONAL, "visibility": "direct", "language": "en"}
    r = gate.client.post("/mastodon/api/v1/statuses", json=as_json, headers=M_AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "allow"
    r = gate.client.post(
        "/mastodon/api/v1/statuses",
        files={"status": (None, "@zed@remote.example " + PERSONAL), "visibility": (None, "direct")},
        headers=M_AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "allow"
    assert mastodon.state.requests[-1].header("Content-Type").startswith("multipart/form-data")
    assert [s.mentions for s in mastodon.state.statuses] == [("carol",), ("zed@remote.example",)]


def _hold_third_toot(gate) -> str:
    m_learn_identity(gate)
    for i, who in enumerate(("bob", "carol")):
        assert toot(gate, f"@{who} " + pitch(i)).headers["DMGate-Decision"] == "allow"
    r = toot(gate, "@dave " + pitch(2))
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    status = r.json()
    assert status["visibility"] == "direct"
    assert status["id"].isdigit()
    assert status["account"]["id"] == ALICE_ID
    assert [m["acct"] for m in status["mentions"]] == ["dave"]
    assert status["dmgate"] == {"hold_id": r.headers["DMGate-Hold-Id"], "status": "pending"}
    return r.headers["DMGate-Hold-Id"]


def test_mastodon_third_copy_of_a_template_is_held_and_approved_once(start, mastodon):
    gate = start(TEMPLATE_ONLY)
    hold_id = _hold_third_toot(gate)
    assert len(mastodon.state.statuses) == 2
    hold = gate.review().get(f"/api/v1/holds/{hold_id}").json()
    assert hold["platform"] == "mastodon"
    assert hold["account"] == ALICE_ID  # learnt from verify_credentials for this token
    assert hold["recipients"] == ["dave"]
    assert hold["policies"][0]["policy"] == "template_reuse"

    # A retry of the same toot hears the same hold.
    again = toot(gate, "@dave " + pitch(2))
    assert again.headers["DMGate-Hold-Id"] == hold_id

    r = gate.review().post(f"/api/v1/holds/{hold_id}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "sent"
    assert r.json()["upstream_status"] == 200
    assert gate.review().post(f"/api/v1/holds/{hold_id}/approve").status_code == 409
    assert len(mastodon.state.statuses) == 3
    released = mastodon.state.requests[-1]
    assert released.header("Authorization") == M_AUTH["Authorization"]
    assert mastodon.state.statuses[-1].mentions == ("dave",)
    assert mastodon.state.statuses[-1].visibility == "direct"


def test_mastodon_approve_with_an_edit_keeps_the_form_encoding(start, mastodon):
    gate = start(TEMPLATE_ONLY)
    hold_id = _hold_third_toot(gate)
    edit = "@dave Hi Dave, thanks for following - no pitch, promise."
    r = gate.review().post(f"/api/v1/holds/{hold_id}/approve", json={"text": edit})
    assert r.status_code == 200, r.text
    assert mastodon.state.statuses[-1].text == edit
    bad = _hold_other(gate)
    r = gate.review().post(f"/api/v1/holds/{bad}/approve", json={"text": "@bob redirected instead"})
    assert r.status_code == 422


def _hold_other(gate) -> str:
    r = toot(gate, "@erin " + pitch(3))
    assert r.headers["DMGate-Decision"] == "hold"
    return r.headers["DMGate-Hold-Id"]


def test_mastodon_block_answers_403_in_mastodons_error_shape(start, mastodon):
    gate = start(BLOCKING)
    m_learn_identity(gate)
    for i, who in enumerate(("bob", "carol", "dave")):
        r = toot(gate, f"@{who} " + pitch(i))
    assert r.status_code == 403
    assert r.headers["DMGate-Decision"] == "block"
    assert set(r.json()) == {"error", "dmgate"}
    assert r.json()["error"].startswith("template_reuse: ")
    assert len(mastodon.state.statuses) == 2


def test_mastodon_follow_notification_makes_follow_timing_hold(start, mastodon):
    gate = start(FOLLOW_ONLY)
    m_learn_identity(gate)
    mastodon.state.notify_follow(ALICE_ID, "2")  # bob followed just now
    mastodon.state.notify_follow(ALICE_ID, "9")  # zed@remote.example too …
    mastodon.state.notify_direct(ALICE_ID, "9", "hey, are you hiring?")  # … and wrote first
    r = gate.client.get("/mastodon/api/v1/notifications", headers=M_AUTH)
    assert r.status_code == 200 and len(r.json()) == 3

    held = toot(gate, "@Bob " + PERSONAL)
    assert held.headers["DMGate-Decision"] == "hold", held.text
    hold = gate.review().get(f"/api/v1/holds/{held.headers['DMGate-Hold-Id']}").json()
    assert hold["policies"][0]["policy"] == "follow_timing"
    assert hold["recipients"] == ["bob"]
    # No follow known: allowed. A follower who wrote first: a reply, allowed.
    assert toot(gate, "@carol " + PERSONAL).headers["DMGate-Decision"] == "allow"
    assert toot(gate, "@zed@remote.example " + PERSONAL).headers["DMGate-Decision"] == "allow"


def test_mastodon_public_status_is_never_judged(start, mastodon):
    gate = start(BLOCKING)
    m_learn_identity(gate)
    for i, who in enumerate(("bob", "carol", "dave", "erin")):
        r = toot(gate, f"@{who} " + pitch(i), visibility="public")
        assert r.status_code == 200, r.text
        assert "DMGate-Decision" not in r.headers
    assert [s.visibility for s in mastodon.state.statuses] == ["public"] * 4
    assert gate.metric(
        "dmgate_dm_decisions_total", platform="mastodon", action="allow", mode="enforce"
    ) in (None, 0)


# --- Bluesky -------------------------------------------------------------------------------


def b_login(gate, route: str = "bluesky") -> tuple[dict, dict[str, str]]:
    r = gate.client.post(
        f"/{route}/xrpc/com.atproto.server.createSession"
        if route == "bluesky"
        else "/xrpc/com.atproto.server.createSession",
        json={"identifier": "me.test", "password": "app-password"},
    )
    assert r.status_code == 200, r.text
    session = r.json()
    return session, {"Authorization": f"Bearer {session['accessJwt']}", "atproto-proxy": CHAT_PROXY}


def convo_with(gate, headers, did: str) -> str:
    r = gate.client.get(
        "/bluesky/xrpc/chat.bsky.convo.getConvoForMembers",
        params=[("members", ME), ("members", did)],
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return r.json()["convo"]["id"]


def chat(gate, headers, convo: str, text: str):
    return gate.client.post(
        "/bluesky/xrpc/chat.bsky.convo.sendMessage",
        json={"convoId": convo, "message": {"text": text}},
        headers=headers,
    )


def test_bluesky_message_allowed_and_forwarded_untouched(start, bluesky):
    gate = start(TEMPLATE_ONLY)
    _, headers = b_login(gate)
    convo = convo_with(gate, headers, ANN)
    body = json.dumps({"convoId": convo, "message": {"text": PERSONAL}}).encode()
    r = gate.client.post(
        "/bluesky/xrpc/chat.bsky.convo.sendMessage",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "allow"
    assert r.json()["sender"] == {"did": ME}
    sent = bluesky.state.requests[-1]
    assert sent.body == body
    assert sent.header("atproto-proxy") == CHAT_PROXY
    assert sent.header("Authorization") == headers["Authorization"]
    assert [m.text for m in bluesky.state.sent] == [PERSONAL]


def test_bluesky_hold_resolves_members_and_approves_once(start, bluesky):
    gate = start(TEMPLATE_ONLY)
    _, headers = b_login(gate)
    convos = [convo_with(gate, headers, did) for did in (ANN, BEN, CAT)]
    for i, convo in enumerate(convos[:2]):
        assert chat(gate, headers, convo, pitch(i)).headers["DMGate-Decision"] == "allow"
    r = chat(gate, headers, convos[2], pitch(2))
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    hold_id = r.headers["DMGate-Hold-Id"]
    view = r.json()
    assert {"id", "rev", "text", "sender", "sentAt"} <= set(view)
    assert view["sender"] == {"did": ME} and view["text"] == pitch(2)
    assert len(bluesky.state.sent) == 2

    hold = gate.review().get(f"/api/v1/holds/{hold_id}").json()
    assert hold["account"] == ME  # the access token's subject
    assert hold["recipients"] == [CAT]  # from the getConvoForMembers answer, sender dropped

    assert gate.review().post(f"/api/v1/holds/{hold_id}/approve").json()["status"] == "sent"
    assert gate.review().post(f"/api/v1/holds/{hold_id}/approve").status_code == 409
    assert len(bluesky.state.sent) == 3
    released = bluesky.state.requests[-1]
    assert released.header("Authorization") == headers["Authorization"]
    assert released.header("atproto-proxy") == CHAT_PROXY
    assert bluesky.state.sent[-1].convo_id == convos[2]


def test_bluesky_block_answers_403_in_xrpc_error_shape(start, bluesky):
    gate = start(BLOCKING)
    _, headers = b_login(gate)
    for i, did in enumerate((ANN, BEN, CAT)):
        r = chat(gate, headers, convo_with(gate, headers, did), pitch(i))
    assert r.status_code == 403
    assert r.headers["DMGate-Decision"] == "block"
    assert r.json()["error"] == "Forbidden"
    assert r.json()["message"].startswith("template_reuse: ")
    assert len(bluesky.state.sent) == 2


def test_bluesky_follower_list_then_a_new_follower_is_held(start, bluesky):
    gate = start(FOLLOW_ONLY)
    _, headers = b_login(gate)
    bluesky.state.followers[ME] = [BEN]

    def followers() -> None:
        r = gate.client.get(
            "/bluesky/xrpc/app.bsky.graph.getFollowers",
            params={"actor": "me.test"},
            headers={"Authorization": headers["Authorization"]},
        )
        assert r.status_code == 200, r.text

    followers()  # the baseline
    bluesky.state.followers[ME] = [ANN, BEN]  # ann followed since
    followers()
    r = chat(gate, headers, convo_with(gate, headers, ANN), PERSONAL)
    assert r.headers["DMGate-Decision"] == "hold", r.text
    # ann wrote first in another answer seen later: a reply is allowed.
    convo = convo_with(gate, headers, ANN)
    bluesky.state.add_message(convo, ANN, "hi! thanks for the note")
    gate.client.get(
        "/bluesky/xrpc/chat.bsky.convo.getMessages", params={"convoId": convo}, headers=headers
    )
    assert chat(gate, headers, convo, PERSONAL + "!").headers["DMGate-Decision"] == "allow"
    assert (
        chat(gate, headers, convo_with(gate, headers, BEN), PERSONAL).headers["DMGate-Decision"]
        == "allow"
    )


def test_bluesky_session_keeps_the_client_behind_dmgate(start, bluesky):
    gate = start(TEMPLATE_ONLY)
    session, _ = b_login(gate)
    endpoint = session["didDoc"]["service"][0]["serviceEndpoint"]
    assert endpoint == f"{gate.url}/bluesky"
    # Below the `xrpc` route (for @atproto/api, which drops a service URL's path) the
    # endpoint is dmgate's origin: the client's own `/xrpc/...` then lands on that route.
    session, _ = b_login(gate, route="xrpc")
    assert session["didDoc"]["service"][0]["serviceEndpoint"] == gate.url


def test_bluesky_batch_through_the_xrpc_root_route_is_held_as_one(start, bluesky):
    gate = start(TEMPLATE_ONLY)
    _, headers = b_login(gate, route="xrpc")
    convos = [convo_with(gate, headers, did) for did in (ANN, BEN, CAT)]
    items = [{"convoId": c, "message": {"text": pitch(0)}} for c in convos]
    r = gate.client.post(
        "/xrpc/chat.bsky.convo.sendMessageBatch", json={"items": items}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.headers["DMGate-Decision"] == "hold"
    assert len(r.json()["items"]) == 3
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    # Each item judged with its conversation's members, never the conversation id.
    assert sorted(hold["recipients"]) == sorted([ANN, BEN, CAT])
    assert [p["reason"].split(":")[0] for p in hold["policies"]] == ["items[2]"]
    assert bluesky.state.sent == []
    assert gate.review().post(f"/api/v1/holds/{hold['id']}/approve").json()["status"] == "sent"
    assert sorted(m.convo_id for m in bluesky.state.sent) == sorted(convos)
