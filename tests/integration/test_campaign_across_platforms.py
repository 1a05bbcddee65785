"""The policies are platform-independent: the same auto-DM campaign, sent through every
platform dmgate understands, gets the same decisions — each answered in the platform's own
shapes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.bluesky_upstream import CHAT_PROXY, FakeBlueskyThread
from tests.fakes.linkedin_upstream import FakeLinkedInThread
from tests.fakes.mastodon_upstream import FakeMastodonThread
from tests.fakes.meta_upstream import FakeMetaThread
from tests.integration.dm_helpers import SENDER, SENDER_TOKEN, bearer, learn_identity, pitch
from tests.support import DMGate

POLICY = """
policies:
  template_reuse: {action: hold, min_recipients: 3, window: 24h}
  burst: {action: block, max_first_contacts: 5, window: 1h}
"""
PERSONAL = "Hi, loved your talk on onboarding at the meetup, could I ask you two questions?"
# personal note, then the same pitch to five more people: the 3rd and 4th copies are held
# (template), and the 6th first contact within the hour is blocked (burst).
CAMPAIGN = [PERSONAL, pitch(1), pitch(2), pitch(3), pitch(4), pitch(5)]
EXPECTED = ["allow", "allow", "allow", "hold", "hold", "block"]
HELD_STATUS = {
    "x": 201,
    "linkedin": 201,
    "linkedin-invitation": 200,  # verifyQuotaAndCreateV2 is a Rest.li action
    "meta": 200,
    "messenger-template": 200,
    "mastodon": 200,
    "bluesky": 200,
}

LI_AT = "AQEDAT-campaign-session"
LI_HEADERS = {"Cookie": f'li_at={LI_AT}; JSESSIONID="ajax:1"', "csrf-token": "ajax:1"}
# Invitations and templates come from accounts of their own (policies count per account).
LI_INVITER = "AQEDAT-campaign-inviter"
INVITER_HEADERS = {"Cookie": f'li_at={LI_INVITER}; JSESSIONID="ajax:2"', "csrf-token": "ajax:2"}
PAGE, PAGE_TOKEN = "5566778899", "EAAB-campaign-page-token"
BOT_PAGE, BOT_TOKEN = "6677889900", "EAAB-campaign-bot-token"
M_TOKEN = "mastodon-campaign-token"
B_ME = "did:plc:campaignsender000000"


@dataclass
class Channel:
    name: str  # the channel (a platform's DMs, or another first-contact channel)
    platform: str
    learn: Callable[[httpx.Client], None]  # what a tool does at start (whoami, lookups)
    send: Callable[[httpx.Client, int, str], httpx.Response]  # to recipient number i


@pytest.fixture
def fakes(fake_x) -> Iterator[dict[str, object]]:
    fake_x.state.add_user(SENDER, token=SENDER_TOKEN)
    with (
        FakeLinkedInThread() as li,
        FakeMetaThread() as meta,
        FakeMastodonThread() as masto,
        FakeBlueskyThread() as bsky,
    ):
        li.state.add_member("ACoAAAcampaigner", first="Sam", li_at=LI_AT)
        li.state.add_member("ACoAAAinviter", first="Kim", li_at=LI_INVITER)
        for i in range(6):
            li.state.add_member(f"ACoAAAperson{i}", first=f"Person{i}")
        meta.state.add_page(PAGE, token=PAGE_TOKEN)
        meta.state.add_page(BOT_PAGE, token=BOT_TOKEN)
        masto.state.add_account("1", "sam", token=M_TOKEN)
        for i in range(6):
            masto.state.add_account(str(10 + i), f"person{i}")
        bsky.state.add_user(B_ME, "sam.test", password="app-password")
        for i in range(6):
            bsky.state.add_user(f"did:plc:person{i}{'x' * 14}", f"person{i}.test")
        yield {"x": fake_x, "linkedin": li, "meta": meta, "mastodon": masto, "bluesky": bsky}


def channels() -> list[Channel]:
    def x_send(c: httpx.Client, i: int, text: str) -> httpx.Response:
        return c.post(
            f"/x/2/dm_conversations/with/{300 + i}/messages", json={"text": text}, headers=bearer()
        )

    def li_learn(c: httpx.Client) -> None:
        assert c.get("/linkedin-web/voyager/api/me", headers=LI_HEADERS).status_code == 200

    def li_send(c: httpx.Client, i: int, text: str) -> httpx.Response:
        body = {
            "keyVersion": "LEGACY_INBOX",
            "conversationCreate": {
                "eventCreate": {
                    "value": {
                        "com.linkedin.voyager.messaging.create.MessageCreate": {
                            "attributedBody": {"text": text, "attributes": []},
                            "attachments": [],
                        }
                    }
                },
                "recipients": [f"ACoAAAperson{i}"],
                "subtype": "MEMBER_TO_MEMBER",
            },
        }
        return c.post(
            "/linkedin-web/voyager/api/messaging/conversations?action=create",
            content=json.dumps(body).encode(),
            headers=LI_HEADERS,
        )

    def li_invite_learn(c: httpx.Client) -> None:
        assert c.get("/linkedin-web/voyager/api/me", headers=INVITER_HEADERS).status_code == 200

    def li_invite(c: httpx.Client, i: int, text: str) -> httpx.Response:
        # A connection request with a note, as LinkedIn's web client sends it.
        body = {
            "invitee": {"inviteeUnion": {"memberProfile": f"urn:li:fsd_profile:ACoAAAinvitee{i}"}},
            "customMessage": text,
        }
        return c.post(
            "/linkedin-web/voyager/api/voyagerRelationshipsDashMemberRelationships"
            "?action=verifyQuotaAndCreateV2",
            content=json.dumps(body).encode(),
            headers=INVITER_HEADERS,
        )

    def template_send(c: httpx.Client, i: int, text: str) -> httpx.Response:
        # What Messenger bot builders send: the pitch in a button template.
        button = {"type": "web_url", "url": "https://example.com", "title": "Learn more"}
        payload = {"template_type": "button", "text": text, "buttons": [button]}
        return c.post(
            f"/meta/v21.0/{BOT_PAGE}/messages",
            params={"access_token": BOT_TOKEN},
            json={
                "recipient": {"id": f"88{i}"},
                "messaging_type": "RESPONSE",
                "message": {"attachment": {"type": "template", "payload": payload}},
            },
        )

    def meta_send(c: httpx.Client, i: int, text: str) -> httpx.Response:
        return c.post(
            f"/meta/v21.0/{PAGE}/messages",
            params={"access_token": PAGE_TOKEN},
            json={
                "recipient": {"id": f"77{i}"},
                "messaging_type": "RESPONSE",
                "message": {"text": text},
            },
        )

    def m_learn(c: httpx.Client) -> None:
        r = c.get(
            "/mastodon/api/v1/accounts/verify_credentials",
            headers={"Authorization": f"Bearer {M_TOKEN}"},
        )
        assert r.status_code == 200

    def m_send(c: httpx.Client, i: int, text: str) -> httpx.Response:
        return c.post(
            "/mastodon/api/v1/statuses",
            content=urlencode({"status": f"@person{i} {text}", "visibility": "direct"}),
            headers={
                "Authorization": f"Bearer {M_TOKEN}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )

    bsky_session: dict[str, object] = {}

    def b_learn(c: httpx.Client) -> None:
        r = c.post(
            "/bluesky/xrpc/com.atproto.server.createSession",
            json={"identifier": "sam.test", "password": "app-password"},
        )
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['accessJwt']}", "atproto-proxy": CHAT_PROXY}
        convos = []
        for i in range(6):
            r = c.get(
                "/bluesky/xrpc/chat.bsky.convo.getConvoForMembers",
                params=[("members", B_ME), ("members", f"did:plc:person{i}{'x' * 14}")],
                headers=headers,
            )
            assert r.status_code == 200, r.text
            convos.append(r.json()["convo"]["id"])
        bsky_session.update(headers=headers, convos=convos)

    def b_send(c: httpx.Client, i: int, text: str) -> httpx.Response:
        return c.post(
            "/bluesky/xrpc/chat.bsky.convo.sendMessage",
            json={"convoId": bsky_session["convos"][i], "message": {"text": text}},
            headers=bsky_session["headers"],
        )

    return [
        Channel("x", "x", learn_identity, x_send),
        Channel("linkedin", "linkedin", li_learn, li_send),
        Channel("linkedin-invitation", "linkedin", li_invite_learn, li_invite),
        Channel("meta", "meta", lambda c: None, meta_send),
        Channel("messenger-template", "meta", lambda c: None, template_send),
        Channel("mastodon", "mastodon", m_learn, m_send),
        Channel("bluesky", "bluesky", b_learn, b_send),
    ]


def test_same_campaign_same_decisions_on_every_platform(dmgate_factory, fakes):
    routes = {
        "x": {"upstream": fakes["x"].url, "platform": "x"},
        "linkedin-web": {"upstream": fakes["linkedin"].url, "platform": "linkedin"},
        "meta": {"upstream": fakes["meta"].url, "platform": "meta"},
        "mastodon": {"upstream": fakes["mastodon"].url, "platform": "mastodon"},
        "bluesky": {"upstream": fakes["bluesky"].url, "platform": "bluesky"},
    }
    gate: DMGate = dmgate_factory(env={"DMGATE_ROUTES": json.dumps(routes)}, policy_yaml=POLICY)
    outcomes: dict[str, list[str]] = {}
    platforms: list[str] = []
    for channel in channels():
        channel.learn(gate.client)
        answers = [channel.send(gate.client, i, text) for i, text in enumerate(CAMPAIGN)]
        outcomes[channel.name] = [r.headers.get("DMGate-Decision", "?") for r in answers]
        held = [r for r in answers if r.headers.get("DMGate-Decision") == "hold"]
        assert {r.status_code for r in held} == {HELD_STATUS[channel.name]}, channel.name
        blocked = answers[-1]
        assert blocked.status_code == 403, (channel.name, blocked.text)
        assert "burst" in blocked.text, (channel.name, blocked.text)
        platforms += [channel.platform] * 2
    assert outcomes == {name: EXPECTED for name in outcomes}, outcomes
    assert len(outcomes) == 7
    holds = gate.review().get("/api/v1/holds", params={"status": "pending", "limit": 50}).json()
    assert sorted(h["platform"] for h in holds["items"]) == sorted(platforms)
