"""Bluesky: every spelling of a chat send is judged or refused, DIDs and conversation ids
have one spelling, and `whoami` asks `getSession` with the bearer token."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.facts import ConversationMembers, Identity, InboundMessage
from proxy.platforms.base import Kind, RefusedRequest, RequestView
from proxy.platforms.bluesky import BlueskyPlatform, jwt_subject

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.bluesky_upstream import FakeBluesky, make_jwt  # noqa: E402
from tests.fakes.server import ask  # noqa: E402

B = BlueskyPlatform()
ME = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
ANN = "did:plc:ann4y2a5ejsfuf5yxgxwbbdq"
JSON = {"Content-Type": "application/json"}
SEND_BODY = json.dumps({"convoId": "3abc", "message": {"text": "hi"}}).encode()


def jwt(claims: dict[str, Any]) -> str:
    def enc(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{enc({'typ': 'at+jwt', 'alg': 'ES256K'})}.{enc(claims)}.c2ln"


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


# --- path spellings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/xrpc/../xrpc/chat.bsky.convo.sendMessage",
        "/xrpc/chat.bsky.convo.sendMessage;x=1",
        "/XRPC/CHAT.BSKY.CONVO.SENDMESSAGE",
        "/xrpc/./chat.bsky.convo.sendMessageBatch/",
        "/other/../chat.bsky.convo.sendMessage",  # below an /xrpc upstream
    ],
)
def test_every_spelling_of_a_send_is_a_dm(path: str) -> None:
    req = view("POST", path, JSON)
    assert B.classify(req).kind is Kind.DM


def test_a_tricky_spelling_is_parsed_like_the_plain_one() -> None:
    req = view("POST", "/xrpc/x/../CHAT.bsky.convo.sendMessage;v=1", JSON)
    assert B.parse_dm(B.classify(req), SEND_BODY).conversation_id == "3abc"


@pytest.mark.parametrize(
    "path",
    ["/xrpc/com.atproto.server.GETSESSION", "/xrpc/x/../com.atproto.server.getSession;p"],
)
def test_signals_are_read_in_any_case(path: str) -> None:
    req = view("GET", path)
    assert B.classify(req).kind is Kind.SIGNAL
    facts = B.learn(
        B.classify(req), None, 200, json.dumps({"did": ME, "handle": "me.test"}).encode()
    )
    assert Identity(ME) in facts


def test_session_answers_are_rewritten_whatever_the_case_of_the_nsid() -> None:
    doc = {
        "did": ME,
        "didDoc": {
            "id": ME,
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": "https://pds.example",
                }
            ],
        },
    }
    req = view("POST", "/xrpc/com.atproto.server.CreateSession")
    out = B.rewrite_response(
        B.classify(req), json.dumps(doc).encode(), "http://dmgate:8080/bluesky"
    )
    assert out is not None
    assert json.loads(out)["didDoc"]["service"][0]["serviceEndpoint"] == (
        "http://dmgate:8080/bluesky"
    )


# --- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(
    "path", ["/xrpc/chat.bsky.convo.sendMessage", "/XRPC/Chat.Bsky.Convo.SendMessageBatch/"]
)
def test_other_methods_on_send_nsids_are_refused(method: str, path: str) -> None:
    with pytest.raises(RefusedRequest) as info:
        B.classify(view(method, path))
    assert info.value.status == 405
    assert method in str(info.value) and "accept only POST" in str(info.value)


def test_a_browser_preflight_passes() -> None:
    req = view(
        "OPTIONS", "/xrpc/chat.bsky.convo.sendMessage", {"Access-Control-Request-Method": "POST"}
    )
    assert B.classify(req).kind is Kind.PASSTHROUGH


# --- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["DID:PLC:ewvi7nxzyoun6zhxrhs64oiz", f" {ME} ", ME])
def test_the_jwt_subject_is_one_did(sub: str) -> None:
    token = jwt({"sub": sub, "scope": "com.atproto.access"})
    assert jwt_subject(token) == ME
    req = view("POST", "/xrpc/chat.bsky.convo.sendMessage", {"Authorization": f"Bearer {token}"})
    assert B.account_from_request(B.classify(req)) == ME


def test_learnt_dids_and_conversation_ids_have_one_spelling() -> None:
    convo = {
        "id": " 3abc ",
        "members": [{"did": "did:PLC:ann4y2a5ejsfuf5yxgxwbbdq"}, {"did": ME.upper()[:8] + ME[8:]}],
        "lastMessage": {"sender": {"did": "DID:plc:ann4y2a5ejsfuf5yxgxwbbdq"}},
    }
    req = view("GET", "/xrpc/chat.bsky.convo.getConvo")
    facts = B.learn(B.classify(req), ME, 200, json.dumps({"convo": convo}).encode())
    assert ConversationMembers("3abc", (ANN, ME)) in facts
    assert any(isinstance(f, InboundMessage) and f.sender == ANN for f in facts)


def test_conversation_ids_lose_surrounding_whitespace() -> None:
    body = json.dumps({"convoId": "  3abc\n", "message": {"text": "hi"}}).encode()
    req = view("POST", "/xrpc/chat.bsky.convo.sendMessage", JSON)
    assert B.parse_dm(B.classify(req), body).conversation_id == "3abc"


# --- whoami --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/xrpc/chat.bsky.convo.sendMessage", "/xrpc/com.atproto.server.getSession"),
        ("/chat.bsky.convo.sendMessage", "/com.atproto.server.getSession"),
    ],
)
def test_whoami_keeps_the_requests_prefix(path: str, expected: str) -> None:
    me = B.whoami(B.classify(view("POST", path, {"Authorization": "Bearer t", **JSON})))
    assert me is not None and me.path == expected


async def test_whoami_is_get_session_with_the_bearer_token_only() -> None:
    fake = FakeBluesky()
    fake.add_user(ME, "me.test")
    token = make_jwt(ME)
    headers = {
        "Authorization": f"Bearer {token}",
        "atproto-proxy": "did:web:api.bsky.chat#bsky_chat",
        **JSON,
    }
    me = B.whoami(B.classify(view("POST", "/xrpc/chat.bsky.convo.sendMessage", headers)))
    assert me is not None
    assert me.method == "GET"
    assert list(me.headers.items()) == [("Authorization", f"Bearer {token}")]
    assert list(me.query.items()) == []
    status, body = await ask(fake.app(), me)
    assert status == 200
    assert Identity(ME) in B.learn(B.classify(me), None, status, body)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "DPoP tok", "DPoP": "proof"}, {"Authorization": "Basic x"}],
)
def test_whoami_is_none_without_a_replayable_token(headers: dict[str, str]) -> None:
    assert B.whoami(B.classify(view("POST", "/xrpc/chat.bsky.convo.sendMessage", headers))) is None
