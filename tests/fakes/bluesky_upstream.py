"""A fake Bluesky PDS (with the chat service behind it) for end-to-end tests.

Shapes follow the atproto lexicons (bluesky-social/atproto `lexicons/com/atproto/server/
createSession.json`, `getSession.json`, `refreshSession.json`, `lexicons/chat/bsky/convo/
*.json`, `lexicons/app/bsky/graph/getFollowers.json`): sessions hand out HS256 JWTs whose
`sub` is the DID and a DID document whose `#atproto_pds` endpoint is this fake; chat calls
need `atproto-proxy: did:web:api.bsky.chat#bsky_chat` like a real PDS; bodies are checked
against the lexicon (`convoId`, `message.text` up to 10000 characters, batch up to 100).
Errors are XRPC's `{"error", "message"}`.

    with FakeBlueskyThread() as b:
        b.state.add_user("did:plc:alice", "alice.test", password="pw")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeAppThread, Recorded

CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
_SECRET = b"fake-bluesky-jwt-secret"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(did: str, scope: str = "com.atproto.access", nonce: str = "") -> str:
    header = _b64(json.dumps({"typ": "at+jwt", "alg": "HS256"}).encode())
    now = int(time.time())
    claims = {"scope": scope, "sub": did, "iat": now, "exp": now + 7200, "jti": nonce}
    payload = _b64(json.dumps(claims).encode())
    mac = hmac.new(_SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def _verify_jwt(token: str) -> dict[str, Any] | None:
    try:
        header, payload, sig = token.split(".")
        mac = hmac.new(_SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64(mac), sig):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


@dataclass
class Sent:
    convo_id: str
    sender: str
    text: str
    id: str
    sent_at: datetime


class FakeBluesky:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.users: dict[str, dict[str, str]] = {}  # did -> {"did", "handle", "displayName"}
        self.passwords: dict[str, str] = {}  # identifier (handle or did) -> did
        self.convos: dict[str, tuple[str, ...]] = {}  # convo id -> member dids
        self.messages: list[Sent] = []
        self.sent: list[Sent] = []  # messages that arrived through sendMessage(Batch)
        self.followers: dict[str, list[str]] = {}  # did -> follower dids, newest first
        self.url = ""  # set when served: the DID documents' PDS endpoint
        self._next = 0

    def new_id(self) -> str:
        self._next += 1
        return f"3l{self._next:011d}"

    def add_user(self, did: str, handle: str, password: str | None = None) -> dict[str, str]:
        user = {"did": did, "handle": handle, "displayName": handle.split(".")[0].capitalize()}
        self.users[did] = user
        if password is not None:
            self.passwords[f"{handle}:{password}"] = did
        return user

    def convo_for(self, *dids: str) -> str:
        members = tuple(sorted(dids))
        for cid, m in self.convos.items():
            if tuple(sorted(m)) == members:
                return cid
        cid = self.new_id()
        self.convos[cid] = members
        return cid

    def add_message(self, convo_id: str, sender: str, text: str) -> Sent:
        m = Sent(convo_id, sender, text, self.new_id(), datetime.now(UTC))
        self.messages.append(m)
        return m

    # --- views ---------------------------------------------------------------------------

    def _session(self, did: str, tokens: bool) -> dict[str, Any]:
        user = self.users[did]
        doc: dict[str, Any] = {
            "did": did,
            "handle": user["handle"],
            "didDoc": {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": did,
                "alsoKnownAs": [f"at://{user['handle']}"],
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": self.url,
                    }
                ],
            },
            "active": True,
        }
        if tokens:
            doc["accessJwt"] = make_jwt(did, nonce=self.new_id())
            doc["refreshJwt"] = make_jwt(did, "com.atproto.refresh", self.new_id())
        return doc

    def _message_view(self, m: Sent) -> dict[str, Any]:
        return {
            "$type": "chat.bsky.convo.defs#messageView",
            "id": m.id,
            "rev": m.id,
            "text": m.text,
            "sender": {"did": m.sender},
            "sentAt": _iso(m.sent_at),
        }

    def _convo_view(self, cid: str) -> dict[str, Any]:
        members = [
            self.users.get(d, {"did": d, "handle": "handle.invalid"}) for d in self.convos[cid]
        ]
        last = [m for m in self.messages if m.convo_id == cid]
        view: dict[str, Any] = {
            "id": cid,
            "rev": cid,
            "members": members,
            "muted": False,
            "unreadCount": 0,
        }
        if last:
            view["lastMessage"] = self._message_view(last[-1])
        return view

    # --- the application -----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/xrpc/com.atproto.server.createSession", self._create_session)
        r.add_get("/xrpc/com.atproto.server.getSession", self._get_session)
        r.add_post("/xrpc/com.atproto.server.refreshSession", self._refresh_session)
        r.add_get("/xrpc/chat.bsky.convo.getConvoForMembers", self._get_convo_for_members)
        r.add_get("/xrpc/chat.bsky.convo.getConvo", self._get_convo)
        r.add_get("/xrpc/chat.bsky.convo.getMessages", self._get_messages)
        r.add_post("/xrpc/chat.bsky.convo.sendMessage", self._send_message)
        r.add_post("/xrpc/chat.bsky.convo.sendMessageBatch", self._send_message_batch)
        r.add_get("/xrpc/app.bsky.graph.getFollowers", self._get_followers)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded.of(request, body))
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(501, "MethodNotImplemented", "Method Not Implemented")
        except web.HTTPMethodNotAllowed:
            return _error(400, "InvalidRequest", "Incorrect HTTP method")

    def _caller(
        self, request: web.Request, scope: str = "com.atproto.access"
    ) -> str | web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        claims = _verify_jwt(token.strip()) if scheme.lower() == "bearer" else None
        if claims is None:
            return _error(401, "AuthenticationRequired", "Authentication Required")
        if claims.get("scope") != scope:
            return _error(400, "InvalidToken", "Bad token scope")
        return str(claims["sub"])

    def _chat_caller(self, request: web.Request) -> str | web.Response:
        if request.headers.get("atproto-proxy") != CHAT_PROXY:
            return _error(501, "MethodNotImplemented", "Method Not Implemented")
        return self._caller(request)

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.content_type != "application/json":
            return _error(400, "InvalidRequest", f"Wrong request encoding: {request.content_type}")
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return _error(400, "InvalidRequest", "Invalid JSON")
        if not isinstance(doc, dict):
            return _error(400, "InvalidRequest", "Input must be an object")
        return doc

    async def _create_session(self, request: web.Request) -> web.Response:
        doc = await self._json(request)
        if isinstance(doc, web.Response):
            return doc
        did = self.passwords.get(f"{doc.get('identifier')}:{doc.get('password')}")
        if did is None:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        return web.json_response(self._session(did, tokens=True))

    async def _get_session(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        return web.json_response(self._session(caller, tokens=False))

    async def _refresh_session(self, request: web.Request) -> web.Response:
        caller = self._caller(request, scope="com.atproto.refresh")
        if isinstance(caller, web.Response):
            return caller
        return web.json_response(self._session(caller, tokens=True))

    async def _get_convo_for_members(self, request: web.Request) -> web.Response:
        caller = self._chat_caller(request)
        if isinstance(caller, web.Response):
            return caller
        members = request.query.getall("members", [])
        if not members or caller not in members:
            return _error(400, "InvalidRequest", "Convo members must include the caller")
        return web.json_response({"convo": self._convo_view(self.convo_for(*members))})

    async def _get_convo(self, request: web.Request) -> web.Response:
        caller = self._chat_caller(request)
        if isinstance(caller, web.Response):
            return caller
        cid = request.query.get("convoId", "")
        if caller not in self.convos.get(cid, ()):
            return _error(400, "InvalidConvo", "Convo not found")
        return web.json_response({"convo": self._convo_view(cid)})

    async def _get_messages(self, request: web.Request) -> web.Response:
        caller = self._chat_caller(request)
        if isinstance(caller, web.Response):
            return caller
        cid = request.query.get("convoId", "")
        if caller not in self.convos.get(cid, ()):
            return _error(400, "InvalidConvo", "Convo not found")
        msgs = [self._message_view(m) for m in reversed(self.messages) if m.convo_id == cid]
        return web.json_response({"messages": msgs})

    def _check_item(self, item: Any, caller: str) -> tuple[str, str] | web.Response:
        if not isinstance(item, dict) or not isinstance(item.get("convoId"), str):
            return _error(400, "InvalidRequest", 'Input must have the property "convoId"')
        message = item.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            return _error(400, "InvalidRequest", 'Input/message must have the property "text"')
        if len(message["text"]) > 10000:
            return _error(
                400, "InvalidRequest", "Input/message/text must not be longer than 10000 characters"
            )
        if caller not in self.convos.get(item["convoId"], ()):
            return _error(400, "InvalidConvo", "Convo not found")
        return item["convoId"], message["text"]

    def _deliver(self, cid: str, caller: str, text: str) -> Sent:
        m = self.add_message(cid, caller, text)
        self.sent.append(m)
        return m

    async def _send_message(self, request: web.Request) -> web.Response:
        caller = self._chat_caller(request)
        if isinstance(caller, web.Response):
            return caller
        doc = await self._json(request)
        if isinstance(doc, web.Response):
            return doc
        checked = self._check_item(doc, caller)
        if isinstance(checked, web.Response):
            return checked
        sent = self._deliver(checked[0], caller, checked[1])
        return web.json_response(self._message_view(sent))

    async def _send_message_batch(self, request: web.Request) -> web.Response:
        caller = self._chat_caller(request)
        if isinstance(caller, web.Response):
            return caller
        doc = await self._json(request)
        if isinstance(doc, web.Response):
            return doc
        items = doc.get("items")
        if not isinstance(items, list) or len(items) > 100:
            return _error(400, "InvalidRequest", "Input/items must be an array of at most 100")
        checked: list[tuple[str, str]] = []
        for item in items:
            c = self._check_item(item, caller)
            if isinstance(c, web.Response):
                return c
            checked.append(c)
        views = [self._message_view(self._deliver(cid, caller, text)) for cid, text in checked]
        return web.json_response({"items": views})

    async def _get_followers(self, request: web.Request) -> web.Response:
        actor = request.query.get("actor", "")
        did = (
            actor
            if actor in self.users
            else next((d for d, u in self.users.items() if u["handle"] == actor), None)
        )
        if did is None:
            return _error(400, "InvalidRequest", "Profile not found")
        limit = int(request.query.get("limit", "50"))
        offset = int(request.query.get("cursor", "0"))
        ids = self.followers.get(did, [])
        page = [
            self.users.get(f, {"did": f, "handle": "handle.invalid"})
            for f in ids[offset : offset + limit]
        ]
        doc: dict[str, Any] = {"subject": self.users[did], "followers": page}
        if offset + limit < len(ids):
            doc["cursor"] = str(offset + limit)
        return web.json_response(doc)


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


class FakeBlueskyThread(FakeAppThread):
    """The fake on its own event loop in a daemon thread, for synchronous tests."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, state: FakeBluesky | None = None
    ) -> None:
        super().__init__(state or FakeBluesky(), host, port)
        self.state: FakeBluesky
