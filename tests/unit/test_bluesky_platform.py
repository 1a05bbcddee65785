"""The Bluesky adapter: classification, parsing, answers, facts, and the DID-document
rewrite that keeps a client behind dmgate.

Shapes follow the atproto lexicons (bluesky-social/atproto `lexicons/chat/bsky/convo/
sendMessage.json`, `sendMessageBatch.json`, `defs.json`, `lexicons/com/atproto/server/*`).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import (
    ConversationMembers,
    Followed,
    FollowerSnapshot,
    Identity,
    InboundMessage,
    Profile,
)
from proxy.platforms import PLATFORMS
from proxy.platforms.base import BadDMRequest, Kind, ParsedDM, RequestView
from proxy.platforms.bluesky import UNKNOWN_SENDER_DID, BlueskyPlatform, jwt_subject

B = BlueskyPlatform()
ME = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
ANN = "did:plc:ann4y2a5ejsfuf5yxgxwbbdq"
BEN = "did:web:ben.example.com"
JSON = {"Content-Type": "application/json"}


def jwt(claims: dict[str, Any], sig: str = "c2ln") -> str:
    def enc(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{enc({'typ': 'at+jwt', 'alg': 'ES256K'})}.{enc(claims)}.{sig}"


TOKEN = jwt({"scope": "com.atproto.access", "sub": ME, "iat": 1, "exp": 2})


def view(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
) -> RequestView:
    return RequestView(
        method,
        path,
        MultiDictProxy(MultiDict(query or [])),
        CIMultiDictProxy(CIMultiDict(headers or {})),
    )


def send(nsid: str = "chat.bsky.convo.sendMessage", headers: dict[str, str] | None = None):
    return view(
        "POST", f"/xrpc/{nsid}", {"Authorization": f"Bearer {TOKEN}", **JSON, **(headers or {})}
    )


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# --- registry and classification -------------------------------------------------------


def test_registered_under_its_name():
    assert PLATFORMS["bluesky"] is BlueskyPlatform
    assert isinstance(PLATFORMS["bluesky"](), BlueskyPlatform)


@pytest.mark.parametrize(
    "path",
    [
        "/xrpc/chat.bsky.convo.sendMessage",
        "/xrpc/chat.bsky.convo.sendMessage/",
        "//xrpc//chat.bsky.convo.sendMessage",
        "/XRPC/chat.bsky.convo.SendMessage",
        "/xrpc/chat.bsky.convo.sendMessageBatch",
        "/chat.bsky.convo.sendMessage",  # below a route whose upstream ends in /xrpc
    ],
)
def test_sends_are_dms(path):
    assert B.classify(view("POST", path)).kind is Kind.DM


@pytest.mark.parametrize(
    "method,path",
    [
        # GET on a send NSID is refused now (test_platform_bluesky_hardening.py).
        ("POST", "/xrpc/chat.bsky.convo.deleteMessageForSelf"),
        ("POST", "/xrpc/chat.bsky.convo.addReaction"),
        ("POST", "/xrpc/chat.bsky.convo.updateRead"),
        ("POST", "/xrpc/com.atproto.repo.createRecord"),
        ("GET", "/xrpc/app.bsky.feed.getTimeline"),
        ("POST", "/xrpc/chat.bsky.convo.sendMessage/extra"),
        ("GET", "/xrpc/com.atproto.server.createSession"),
        ("POST", "/other/chat.bsky.convo.sendMessage"),
    ],
)
def test_near_misses_pass_through(method, path):
    assert B.classify(view(method, path)).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    "method,nsid",
    [
        ("POST", "com.atproto.server.createSession"),
        ("POST", "com.atproto.server.refreshSession"),
        ("GET", "com.atproto.server.getSession"),
        ("GET", "chat.bsky.convo.getConvoForMembers"),
        ("GET", "chat.bsky.convo.getConvo"),
        ("GET", "chat.bsky.convo.listConvos"),
        ("GET", "chat.bsky.convo.getMessages"),
        ("GET", "app.bsky.graph.getFollowers"),
        ("GET", "app.bsky.notification.listNotifications"),
    ],
)
def test_signals(method, nsid):
    assert B.classify(view(method, f"/xrpc/{nsid}")).kind is Kind.SIGNAL


# --- who is sending ----------------------------------------------------------------------


def test_the_sender_is_the_access_tokens_subject():
    assert B.credential(send()) == TOKEN
    assert B.account_from_request(B.classify(send())) == ME
    dpop = view("POST", "/", {"Authorization": f"DPoP {TOKEN}"})
    assert B.credential(dpop) == TOKEN and B.account_from_request(B.classify(dpop)) == ME


@pytest.mark.parametrize(
    "token",
    [
        "opaque-token",
        "a.b",
        "a.!!!.c",
        jwt({"sub": "alice"}),
        jwt({"scope": "x"}),
        "x." + base64.urlsafe_b64encode(b"[1]").decode().rstrip("=") + ".y",
    ],
)
def test_tokens_without_a_did_subject_name_nobody(token):
    assert jwt_subject(token) is None
    assert (
        B.account_from_request(B.classify(view("POST", "/", {"Authorization": f"Bearer {token}"})))
        is None
    )


# --- parsing -----------------------------------------------------------------------------

MESSAGE = {"convoId": "3ku7w6h4vog2d", "message": {"text": "Hi Ann, thanks for the follow!"}}


def test_send_message_names_only_the_conversation():
    assert B.parse_dm(B.classify(send()), dumps(MESSAGE)) == ParsedDM(
        (), "Hi Ann, thanks for the follow!", conversation_id="3ku7w6h4vog2d"
    )


def test_missing_content_type_is_read_as_json():
    req = view("POST", "/xrpc/chat.bsky.convo.sendMessage")
    assert B.parse_dm(B.classify(req), dumps(MESSAGE)).conversation_id == "3ku7w6h4vog2d"


def test_the_sender_is_dropped_from_the_learnt_members():
    dm = ParsedDM((ME, ANN), "hi", conversation_id="c")
    assert B.recipients_for(dm, ME) == (ANN,)


def test_batch_to_one_conversation_is_one_dm_with_all_texts():
    body = {"items": [MESSAGE, {**MESSAGE, "message": {"text": "Second line"}}]}
    dm = B.parse_dm(B.classify(send("chat.bsky.convo.sendMessageBatch")), dumps(body))
    assert dm == ParsedDM(
        (), "Hi Ann, thanks for the follow!\n\nSecond line", conversation_id="3ku7w6h4vog2d"
    )


def test_batch_of_one_text_to_many_conversations():
    body = {"items": [{**MESSAGE, "convoId": c} for c in ("c1", "c2", "c1", "c3")]}
    dm = B.parse_dm(B.classify(send("chat.bsky.convo.sendMessageBatch")), dumps(body))
    assert dm == ParsedDM(("c1", "c2", "c3"), "Hi Ann, thanks for the follow!")


def test_batch_of_differing_texts_to_many_conversations_is_refused():
    body = {"items": [MESSAGE, {"convoId": "c2", "message": {"text": "other"}}]}
    with pytest.raises(BadDMRequest) as err:
        B.parse_dm(B.classify(send("chat.bsky.convo.sendMessageBatch")), dumps(body))
    assert err.value.status == 400


@pytest.mark.parametrize(
    "nsid,body",
    [
        ("chat.bsky.convo.sendMessage", b"{nope"),
        ("chat.bsky.convo.sendMessage", b"[]"),
        (
            "chat.bsky.convo.sendMessage",
            b'{"convoId": "a", "convoId": "b", "message": {"text": "x"}}',
        ),
        ("chat.bsky.convo.sendMessage", dumps({"message": {"text": "x"}})),
        ("chat.bsky.convo.sendMessage", dumps({"convoId": "", "message": {"text": "x"}})),
        ("chat.bsky.convo.sendMessage", dumps({"convoId": 5, "message": {"text": "x"}})),
        ("chat.bsky.convo.sendMessage", dumps({"convoId": "a"})),
        ("chat.bsky.convo.sendMessage", dumps({"convoId": "a", "message": {"text": None}})),
        ("chat.bsky.convo.sendMessage", dumps({"convoId": "a", "message": "hi"})),
        ("chat.bsky.convo.sendMessage", b'{"convoId": "a", "message": {"text": "\\ud800"}}'),
        ("chat.bsky.convo.sendMessage", b"\xff\xfe{}"),
        ("chat.bsky.convo.sendMessageBatch", dumps({"items": []})),
        ("chat.bsky.convo.sendMessageBatch", dumps({"items": "x"})),
        ("chat.bsky.convo.sendMessageBatch", dumps({"items": [MESSAGE] * 101})),
        ("chat.bsky.convo.sendMessageBatch", dumps({"items": [MESSAGE, {"convoId": "x"}]})),
    ],
)
def test_malformed_bodies_are_refused(nsid, body):
    with pytest.raises(BadDMRequest) as err:
        B.parse_dm(B.classify(send(nsid)), body)
    assert err.value.status == 400


def test_wrong_content_type_is_415():
    with pytest.raises(BadDMRequest) as err:
        B.parse_dm(B.classify(send(headers={"Content-Type": "text/plain"})), dumps(MESSAGE))
    assert err.value.status == 415


# --- replace_text ----------------------------------------------------------------------


def test_replace_text_keeps_the_conversation_and_embed_and_drops_facets():
    body = {
        "convoId": "c1",
        "message": {
            "text": "Hi @ann.test",
            "facets": [{"index": {"byteStart": 3, "byteEnd": 12}, "features": []}],
            "embed": {"$type": "app.bsky.embed.record", "record": {"uri": "at://x", "cid": "y"}},
        },
    }
    # The embedded record is judged as its link, the edit's last line (test_bluesky_embeds.py).
    edit = "Hi Ann, no pitch ✓\nat://x"
    out = json.loads(B.replace_text(B.classify(send()), dumps(body), edit))
    assert out == {
        "convoId": "c1",
        "message": {"text": "Hi Ann, no pitch ✓", "embed": body["message"]["embed"]},
    }


def test_replace_text_in_batches():
    nsid = "chat.bsky.convo.sendMessageBatch"
    one = {"items": [MESSAGE, {**MESSAGE, "message": {"text": "more"}}]}
    out = json.loads(B.replace_text(B.classify(send(nsid)), dumps(one), "edited"))
    assert out == {"items": [{"convoId": MESSAGE["convoId"], "message": {"text": "edited"}}]}
    many = {"items": [{**MESSAGE, "convoId": c} for c in ("c1", "c2")]}
    out = json.loads(B.replace_text(B.classify(send(nsid)), dumps(many), "edited"))
    assert [i["message"]["text"] for i in out["items"]] == ["edited", "edited"]
    assert B.parse_dm(B.classify(send(nsid)), json.dumps(out).encode()).recipients == ("c1", "c2")


def test_replace_text_refuses_an_empty_edit():
    with pytest.raises(BadDMRequest) as err:
        B.replace_text(B.classify(send()), dumps(MESSAGE), "")
    assert err.value.status == 422


# --- answers ---------------------------------------------------------------------------


def test_hold_answer_is_a_message_view():
    dm = B.parse_dm(B.classify(send()), dumps(MESSAGE))
    answer = B.hold_response(B.classify(send()), dm, ME, "hold-1")
    assert answer.status == 200
    body = answer.body
    assert isinstance(body, dict)
    assert set(body) == {"id", "rev", "text", "sender", "sentAt", "dmgate"}
    assert body["text"] == MESSAGE["message"]["text"]
    assert body["sender"] == {"did": ME}
    assert len(body["id"]) == 13 and len(body["rev"]) == 13
    datetime.fromisoformat(body["sentAt"].replace("Z", "+00:00"))
    assert body["dmgate"] == {"hold_id": "hold-1", "status": "pending"}
    again = B.hold_response(B.classify(send()), dm, ME, "hold-1").body
    assert isinstance(again, dict) and again["id"] == body["id"]


def test_hold_answer_for_a_batch_and_for_an_unknown_sender():
    nsid = "chat.bsky.convo.sendMessageBatch"
    dm = ParsedDM(("c1", "c2"), "hi")
    body = B.hold_response(B.classify(send(nsid)), dm, "credential:abcd", "h").body
    assert isinstance(body, dict)
    assert len(body["items"]) == 2
    assert body["items"][0]["sender"] == {"did": UNKNOWN_SENDER_DID}
    assert body["items"][0]["id"] != body["items"][1]["id"]


def test_block_answer_is_an_xrpc_error():
    answer = B.block_response(B.classify(send()), "follow_timing: followed 3 minutes ago")
    assert answer.status == 403
    body = json.loads(answer.body_bytes())
    assert body["error"] == "Forbidden"
    assert body["message"] == "follow_timing: followed 3 minutes ago"


# --- the DID document rewrite -----------------------------------------------------------


def session(did: str = ME, endpoint: str = "https://morel.us-east.host.bsky.network") -> dict:
    return {
        "did": did,
        "handle": "me.test",
        "accessJwt": TOKEN,
        "didDoc": {
            "id": did,
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": endpoint,
                },
                {
                    "id": "#bsky_chat",
                    "type": "BskyChatService",
                    "serviceEndpoint": "https://chat.example",
                },
            ],
        },
    }


@pytest.mark.parametrize(
    "method,nsid",
    [
        ("POST", "com.atproto.server.createSession"),
        ("GET", "com.atproto.server.getSession"),
        ("POST", "com.atproto.server.refreshSession"),
    ],
)
def test_session_answers_point_the_client_at_dmgate(method, nsid):
    req = view(method, f"/xrpc/{nsid}")
    out = B.rewrite_response(B.classify(req), dumps(session()), "http://dmgate:8080/bluesky")
    assert out is not None
    doc = json.loads(out)
    assert doc["didDoc"]["service"][0]["serviceEndpoint"] == "http://dmgate:8080/bluesky"
    assert doc["didDoc"]["service"][1]["serviceEndpoint"] == "https://chat.example"
    assert doc["accessJwt"] == TOKEN


def test_rewrite_below_an_xrpc_route_gives_the_origin():
    req = view("POST", "/com.atproto.server.createSession")
    out = B.rewrite_response(B.classify(req), dumps(session()), "http://dmgate:8080/xrpc")
    assert out is not None
    assert json.loads(out)["didDoc"]["service"][0]["serviceEndpoint"] == "http://dmgate:8080"


def test_rewrite_accepts_a_full_did_fragment_id():
    doc = session()
    doc["didDoc"]["service"][0]["id"] = f"{ME}#atproto_pds"
    out = B.rewrite_response(
        B.classify(view("GET", "/xrpc/com.atproto.server.getSession")), dumps(doc), "http://d/b"
    )
    assert (
        out is not None
        and json.loads(out)["didDoc"]["service"][0]["serviceEndpoint"] == "http://d/b"
    )


@pytest.mark.parametrize(
    "path,body",
    [
        ("/xrpc/app.bsky.feed.getTimeline", dumps(session())),
        ("/xrpc/com.atproto.server.getSession", dumps({"did": ME, "handle": "me.test"})),
        ("/xrpc/com.atproto.server.getSession", b"{not json"),
        (
            "/xrpc/com.atproto.server.getSession",
            dumps(session(endpoint="http://dmgate:8080/bluesky")),
        ),
        ("/xrpc/com.atproto.server.getSession", dumps({**session(), "didDoc": {"service": "x"}})),
    ],
)
def test_rewrite_leaves_other_answers_alone(path, body):
    assert (
        B.rewrite_response(B.classify(view("GET", path)), body, "http://dmgate:8080/bluesky")
        is None
    )


# --- learning --------------------------------------------------------------------------


def learn(nsid: str, doc: Any, account: str | None = ME, method: str = "GET", query=None):
    return B.learn(B.classify(view(method, f"/xrpc/{nsid}", query=query)), account, 200, dumps(doc))


def member(did: str, handle: str, name: str | None = None) -> dict[str, Any]:
    return {"did": did, "handle": handle, **({"displayName": name} if name else {})}


def test_session_answers_teach_identity():
    facts = learn("com.atproto.server.createSession", session(), account=None, method="POST")
    assert facts == [Identity(ME), Profile(ME, ("me.test",))]
    assert learn("com.atproto.server.getSession", session())[0] == Identity(ME)


def test_conversation_lookups_teach_members_names_and_who_wrote():
    convo = {
        "id": "c1",
        "rev": "r",
        "members": [member(ME, "me.test"), member(ANN, "ann.test", "Ann")],
        "muted": False,
        "unreadCount": 1,
        "lastMessage": {
            "$type": "chat.bsky.convo.defs#messageView",
            "id": "m",
            "rev": "r",
            "text": "hey",
            "sender": {"did": ANN},
            "sentAt": "2026-11-26T01:00:00Z",
        },
    }
    facts = learn(
        "chat.bsky.convo.getConvoForMembers",
        {"convo": convo},
        query=[("members", ME), ("members", ANN)],
    )
    assert ConversationMembers("c1", (ME, ANN)) in facts
    assert Profile(ANN, ("Ann", "ann.test")) in facts
    assert InboundMessage(ME, ANN, datetime(2026, 11, 26, 1, tzinfo=UTC)) in facts
    assert ConversationMembers("c1", (ME, ANN)) in learn(
        "chat.bsky.convo.getConvo", {"convo": convo}
    )
    listed = learn("chat.bsky.convo.listConvos", {"convos": [convo, {**convo, "id": "c2"}]})
    assert ConversationMembers("c2", (ME, ANN)) in listed
    mine = {**convo, "lastMessage": {**convo["lastMessage"], "sender": {"did": ME}}}
    assert not [
        f
        for f in learn("chat.bsky.convo.getConvo", {"convo": mine})
        if isinstance(f, InboundMessage)
    ]


def test_messages_from_others_mean_they_wrote_first():
    doc = {
        "messages": [
            {
                "id": "3",
                "rev": "3",
                "text": "reply",
                "sender": {"did": ME},
                "sentAt": "2026-11-26T03:00:00Z",
            },
            {"id": "2", "rev": "2", "sender": {"did": ANN}, "sentAt": "2026-11-26T02:00:00Z"},
            {
                "id": "1",
                "rev": "1",
                "text": "hi",
                "sender": {"did": ANN},
                "sentAt": "2026-11-26T01:00:00Z",
            },
            {"id": "0", "rev": "0", "sentAt": "2026-11-26T00:00:00Z", "data": {}},
        ]
    }
    assert learn("chat.bsky.convo.getMessages", doc, query=[("convoId", "c1")]) == [
        InboundMessage(ME, ANN, datetime(2026, 11, 26, 1, tzinfo=UTC))
    ]
    assert learn("chat.bsky.convo.getMessages", doc, account=None) == []


def test_follower_pages():
    doc = {
        "subject": member(ME, "me.test"),
        "followers": [member(ANN, "ann.test", "Ann"), member(BEN, "ben.example.com")],
        "cursor": "abc",
    }
    facts = learn("app.bsky.graph.getFollowers", doc, query=[("actor", "me.test")])
    assert facts[0] == FollowerSnapshot(ME, (ANN, BEN), first_page=True)
    assert Profile(BEN, ("ben.example.com",)) in facts
    later = learn("app.bsky.graph.getFollowers", doc, query=[("actor", ME), ("cursor", "abc")])
    assert later[0] == FollowerSnapshot(ME, (ANN, BEN), first_page=False)


def test_follow_notifications_are_follows_at_their_index_time():
    doc = {
        "notifications": [
            {
                "uri": "at://x",
                "cid": "c",
                "author": member(ANN, "ann.test", "Ann"),
                "reason": "follow",
                "record": {"createdAt": "2020-01-01T00:00:00Z"},
                "isRead": False,
                "indexedAt": "2026-11-26T01:00:00Z",
            },
            {
                "uri": "at://y",
                "cid": "c",
                "author": member(BEN, "ben.example.com"),
                "reason": "like",
                "record": {},
                "isRead": False,
                "indexedAt": "2026-11-26T01:00:00Z",
            },
        ]
    }
    facts = learn("app.bsky.notification.listNotifications", doc)
    assert [f for f in facts if isinstance(f, Followed)] == [
        Followed(ME, ANN, datetime(2026, 11, 26, 1, tzinfo=UTC))
    ]
    assert not [
        f
        for f in learn("app.bsky.notification.listNotifications", doc, account=None)
        if isinstance(f, Followed)
    ]


@pytest.mark.parametrize(
    "nsid,body,status",
    [
        ("com.atproto.server.getSession", b"{}", 401),
        ("com.atproto.server.getSession", b"{not json", 200),
        ("com.atproto.server.getSession", b"[]", 200),
        ("com.atproto.server.getSession", dumps({"did": "not-a-did"}), 200),
        ("chat.bsky.convo.getConvo", dumps({"convo": "x"}), 200),
        ("app.bsky.graph.getFollowers", dumps({"followers": []}), 200),
        ("app.bsky.feed.getTimeline", dumps({"feed": []}), 200),
    ],
)
def test_odd_answers_teach_nothing(nsid, body, status):
    assert B.learn(B.classify(view("GET", f"/xrpc/{nsid}")), ME, status, body) == []
