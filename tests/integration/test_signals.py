"""Facts dmgate learns from traffic and webhooks, and the follow_timing policy they feed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, bearer, learn_identity, send_dm

FOLLOW_ONLY = """
policies:
  follow_timing:
    action: hold
    window: 1h
"""
CONSUMER_SECRET = "consumer-secret-for-webhooks"
PERSONAL = "Hi Dana, saw your post on onboarding flows, would love to hear how you test them"


@pytest.fixture
def gate(dmgate_factory, fake_x):
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    gate = dmgate_factory(
        policy_yaml=FOLLOW_ONLY,
        env={"DMGATE_WEBHOOK_SECRETS": json.dumps({"x": CONSUMER_SECRET})},
    )
    learn_identity(gate.client)  # as tools do at start: dmgate learns whose token it is
    return gate


def _followers(gate, account: str = SENDER):
    r = gate.client.get(f"/x/2/users/{account}/followers", headers=bearer())
    assert r.status_code == 200, r.text
    return r


def test_new_id_in_a_later_follower_snapshot_counts_as_a_fresh_follow(gate, fake_x):
    fake_x.state.followers[SENDER] = ["301", "302"]
    _followers(gate)  # first snapshot: a baseline, teaches no timing
    assert send_dm(gate.client, "301", PERSONAL).headers["DMGate-Decision"] == "allow"
    fake_x.state.followers[SENDER] = ["303", "301", "302"]  # 303 followed since
    _followers(gate)
    r = send_dm(gate.client, "303", PERSONAL)
    assert r.headers["DMGate-Decision"] == "hold"
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    assert hold["policies"][0]["policy"] == "follow_timing"
    assert "303" in hold["policies"][0]["reason"]


def test_continuation_pages_teach_no_timing(gate, fake_x):
    fake_x.state.followers[SENDER] = [str(400 + i) for i in range(5)]
    _followers(gate)
    fake_x.state.followers[SENDER] = [str(400 + i) for i in range(5)] + ["499"]
    r = gate.client.get(
        f"/x/2/users/{SENDER}/followers", params={"max_results": 5}, headers=bearer()
    )
    token = r.json()["meta"]["next_token"]
    gate.client.get(
        f"/x/2/users/{SENDER}/followers",
        params={"max_results": 5, "pagination_token": token},
        headers=bearer(),
    )
    # 499 appeared on a later page: an old follower first seen now, not a new follow.
    assert send_dm(gate.client, "499", PERSONAL).headers["DMGate-Decision"] == "allow"


def test_follow_events_api_and_writing_first(gate, fake_x):
    review = gate.review()
    r = review.post(
        "/api/v1/follow-events", json={"platform": "x", "account": SENDER, "follower": "310"}
    )
    assert r.status_code == 201
    old = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    review.post(
        "/api/v1/follow-events",
        json={"platform": "x", "account": SENDER, "follower": "311", "followed_at": old},
    )
    assert send_dm(gate.client, "310", PERSONAL).headers["DMGate-Decision"] == "hold"
    assert send_dm(gate.client, "311", PERSONAL).headers["DMGate-Decision"] == "allow"

    # 312 followed just now but wrote first: a reply is not an auto-DM.
    review.post(
        "/api/v1/follow-events", json={"platform": "x", "account": SENDER, "follower": "312"}
    )
    fake_x.state.add_dm("312", SENDER, "hey, loved your thread - are you hiring?")
    # X returns sender ids only when asked for them, as tools that read DMs do.
    lookup = gate.client.get(
        "/x/2/dm_conversations/with/312/dm_events",
        headers=bearer(),
        params={"dm_event.fields": "sender_id,created_at"},
    )
    assert lookup.status_code == 200
    assert send_dm(gate.client, "312", PERSONAL).headers["DMGate-Decision"] == "allow"


def test_follow_events_api_refuses_bad_input(gate):
    review = gate.review()
    # Malformed input is 400 everywhere in the review API (422 only: a reject without reason).
    assert review.post("/api/v1/follow-events", json={"platform": "x"}).status_code == 400
    assert (
        review.post(
            "/api/v1/follow-events", content=b"{nope", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    naive = {"platform": "x", "account": "1", "follower": "2", "followed_at": "2026-01-01T00:00"}
    assert review.post("/api/v1/follow-events", json=naive).status_code == 400
    assert gate.client.post("/api/v1/follow-events", json={}).status_code == 401


def _signed(body: bytes) -> str:
    return (
        "sha256="
        + base64.b64encode(
            hmac.new(CONSUMER_SECRET.encode(), body, hashlib.sha256).digest()
        ).decode()
    )


def test_account_activity_webhook_crc_signature_and_follow_event(gate, fake_x):
    r = gate.client.get("/webhooks/x", params={"crc_token": "challenge-123"})
    assert r.status_code == 200
    assert r.json() == {"response_token": _signed(b"challenge-123")}

    payload = json.dumps(
        {
            "for_user_id": SENDER,
            "follow_events": [
                {
                    "type": "follow",
                    "created_timestamp": str(int(time.time() * 1000)),
                    "target": {"id": SENDER},
                    "source": {"id": "320"},
                }
            ],
        }
    ).encode()
    bad = gate.client.post(
        "/webhooks/x", content=payload, headers={"x-twitter-webhooks-signature": "sha256=AAAA"}
    )
    assert bad.status_code == 401
    assert send_dm(gate.client, "320", PERSONAL).headers["DMGate-Decision"] == "allow"

    ok = gate.client.post(
        "/webhooks/x", content=payload, headers={"x-twitter-webhooks-signature": _signed(payload)}
    )
    assert ok.status_code == 200
    assert send_dm(gate.client, "320", PERSONAL + "!").headers["DMGate-Decision"] == "hold"


def test_webhook_dm_event_marks_the_peer_as_having_written_first(gate):
    now_ms = str(int(time.time() * 1000))
    payload = json.dumps(
        {
            "for_user_id": SENDER,
            "follow_events": [
                {
                    "type": "follow",
                    "created_timestamp": now_ms,
                    "target": {"id": SENDER},
                    "source": {"id": "330"},
                }
            ],
            "direct_message_events": [
                {
                    "type": "message_create",
                    "id": "1",
                    "created_timestamp": now_ms,
                    "message_create": {
                        "target": {"recipient_id": SENDER},
                        "sender_id": "330",
                        "message_data": {"text": "hi! quick question"},
                    },
                }
            ],
        }
    ).encode()
    r = gate.client.post(
        "/webhooks/x", content=payload, headers={"x-twitter-webhooks-signature": _signed(payload)}
    )
    assert r.status_code == 200
    assert send_dm(gate.client, "330", PERSONAL).headers["DMGate-Decision"] == "allow"


def test_activity_api_follow_payload(gate):
    payload = json.dumps(
        {
            "data": {
                "event_type": "follow.follow",
                "payload": {"source": {"data": {"id": "340"}}, "target": {"data": {"id": SENDER}}},
            }
        }
    ).encode()
    r = gate.client.post(
        "/webhooks/x", content=payload, headers={"x-twitter-webhooks-signature": _signed(payload)}
    )
    assert r.status_code == 200
    assert send_dm(gate.client, "340", PERSONAL).headers["DMGate-Decision"] == "hold"


def test_account_identification(gate, fake_x):
    fake_x.state.add_user("150", token="opaque-token-150")
    gate.review().post(
        "/api/v1/follow-events", json={"platform": "x", "account": "150", "follower": "350"}
    )
    # dmgate never saw users/me for this token: it asks X itself, once, before judging.
    r = send_dm(gate.client, "350", PERSONAL, headers=bearer("opaque-token-150"))
    assert r.headers["DMGate-Decision"] == "hold"
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    assert hold["account"] == "150"
    learn_identity(gate.client, "opaque-token-150")
    r = send_dm(gate.client, "350", PERSONAL + " :)", headers=bearer("opaque-token-150"))
    assert r.headers["DMGate-Decision"] == "hold"
    asked = [r.header("Authorization") for r in fake_x.state.requests if r.path == "/2/users/me"]
    # dmgate's own lookup, then the tool's: one each.
    assert asked.count("Bearer opaque-token-150") == 2, asked

    # OAuth 1.0a names the user in its token.
    oauth1 = (
        'OAuth oauth_consumer_key="ck", oauth_token="150-abcdef", '
        'oauth_signature_method="HMAC-SHA1", oauth_signature="x"'
    )
    r = send_dm(gate.client, "350", PERSONAL + " ...", headers={"Authorization": oauth1})
    assert r.headers["DMGate-Decision"] == "hold"
    # DMGate-Account asserts; it never identifies. A token X will not name is held.
    r = send_dm(
        gate.client,
        "350",
        PERSONAL + "?",
        headers={**bearer("app-only-token"), "DMGate-Account": "999"},
    )
    assert r.headers["DMGate-Decision"] == "hold"
    hold = gate.review().get(f"/api/v1/holds/{r.headers['DMGate-Hold-Id']}").json()
    assert [p["policy"] for p in hold["policies"]] == ["sender_identity"]
    assert all(
        k.lower() != "dmgate-account" for rec in fake_x.state.requests for k, _ in rec.headers
    )
    assert "opaque-token-150" not in gate.logs()


def test_recipient_names_from_follower_lists_become_placeholders(dmgate_factory, fake_x):
    """Without names these two texts share too little to be one template; with the names
    dmgate saw in the follower list they are the same text."""
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    names = {
        "361": "Maximilian Montgomery",
        "362": "Bartholomew Featherstonehaugh",
        "363": "Ottoline Fairweather-Browne",
    }
    for uid, name in names.items():
        fake_x.state.add_user(uid, name=name, username=f"user{uid}")
    fake_x.state.followers[SENDER] = list(names)
    gate = dmgate_factory(
        policy_yaml="""
policies:
  template_reuse: {action: hold, min_recipients: 3, window: 24h}
"""
    )
    learn_identity(gate.client)
    text = "Hi {}, welcome aboard! Grab your free trial today"
    decisions = [
        send_dm(gate.client, uid, text.format(name)).headers["DMGate-Decision"]
        for uid, name in names.items()
    ]
    assert decisions == ["allow", "allow", "allow"]  # names unknown: not one template

    _followers(gate)  # dmgate sees the follower list, with names
    later = [
        send_dm(gate.client, uid, text.format(name) + " :)").headers["DMGate-Decision"]
        for uid, name in names.items()
    ]
    assert later == ["allow", "allow", "hold"]


def test_large_signal_answer_is_relayed_whole_and_learnt(gate, fake_x):
    fake_x.state.followers[SENDER] = [str(10_000 + i) for i in range(1000)]
    for uid in fake_x.state.followers[SENDER]:
        fake_x.state.add_user(uid, name=f"Person Number {uid}")
    direct = httpx.get(
        f"{fake_x.url}/2/users/{SENDER}/followers", params={"max_results": 1000}, headers=bearer()
    )
    via = gate.client.get(
        f"/x/2/users/{SENDER}/followers", params={"max_results": 1000}, headers=bearer()
    )
    assert via.status_code == 200
    assert via.content == direct.content  # many chunks, byte-identical
    assert len(via.json()["data"]) == 1000
    fake_x.state.followers[SENDER].insert(0, "20000")
    gate.client.get(
        f"/x/2/users/{SENDER}/followers", params={"max_results": 1000}, headers=bearer()
    )
    assert send_dm(gate.client, "20000", PERSONAL).headers["DMGate-Decision"] == "hold"
    assert send_dm(gate.client, "10500", PERSONAL).headers["DMGate-Decision"] == "allow"
