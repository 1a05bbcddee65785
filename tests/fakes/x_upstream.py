"""A fake X API upstream for end-to-end tests and benchmarks.

Shapes follow X's OpenAPI document (v2.167): the DM request schemas are copied below and
enforced like X does (`additionalProperties: false`, text or attachments), answers carry
X's fields, DM lookups return only the `dm_event.fields` a client asked for. v1.1 shapes
follow X's v1.1 documentation. Everything under `/_test/` exists for pass-through fidelity
tests (echo, large and gzipped bodies, redirects, repeated headers, slow answers, uploads).

Embedding:
    fake, runner, port = await start_fake_x()           # inside an event loop
    with FakeXThread() as x: ... x.url, x.state ...      # from synchronous tests
    python -m tests.fakes.x_upstream --port 8081         # standalone, for benchmarks
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import json
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature as oauth1_signature
from oauthlib.oauth1.rfc5849.utils import parse_authorization_header

from tests.fakes.server import FakeAppThread, Recorded

CHUNK_SIZE = 64 * 1024
# Deterministic download pattern: bytes 0..255 repeating. A chunk is a whole number of
# periods, so every chunk is the same and any prefix can be recomputed.
_PATTERN_CHUNK = bytes(range(256)) * (CHUNK_SIZE // 256)

GZIP_PLAIN = json.dumps(
    {"message": "gzipped by the upstream", "padding": "x" * 4096}, separators=(",", ":")
).encode()
GZIP_BODY = gzip.compress(GZIP_PLAIN, mtime=0)

SET_COOKIES = ("a=1; Path=/", "b=2; Path=/; HttpOnly")
X_MULTI = ("one", "two")

_ID = re.compile(r"[0-9]{1,19}")
_PAIR = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")
# `sendChatMessage`'s `id`: the recipient's user id, a 1:1 pair, or a group `g{digits}`.
_CHAT_ID = re.compile(r"^([0-9]{1,19}|[0-9]{1,19}-[0-9]{1,19}|g[0-9]{1,19})$")
_CONVERSATION = re.compile(r"[0-9]{1,19}-[0-9]{1,19}|[0-9]{15,19}")
_PAGE_TOKEN = re.compile(r"PT([0-9]{16})")
JSON_TYPE = "application/json; charset=utf-8"
PROBLEM_TYPE = "application/problem+json"


def pattern_bytes(n: int) -> bytes:
    """The first `n` bytes `/_test/bytes/{n}` sends."""
    full, rest = divmod(n, CHUNK_SIZE)
    return _PATTERN_CHUNK * full + _PATTERN_CHUNK[:rest]


def pattern_sha256(n: int) -> str:
    """sha256 (hex) of `/_test/bytes/{n}`, computed without holding n bytes."""
    digest = hashlib.sha256()
    full, rest = divmod(n, CHUNK_SIZE)
    for _ in range(full):
        digest.update(_PATTERN_CHUNK)
    digest.update(_PATTERN_CHUNK[:rest])
    return digest.hexdigest()


# --- X's request schemas (OpenAPI v2.167, `description`s dropped) ----------------------

_ATTACHMENT: dict[str, Any] = {
    "type": "object",
    "required": ["media_id"],
    "properties": {"media_id": {"type": "string", "pattern": "^[0-9]{1,19}$"}},
    "additionalProperties": False,
}
_ATTACHMENTS: dict[str, Any] = {"type": "array", "items": _ATTACHMENT}
_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
_MESSAGE_REQUEST: dict[str, Any] = {
    "anyOf": [{"required": ["text"]}, {"required": ["attachments"]}],
    "type": "object",
    "properties": {"attachments": _ATTACHMENTS, "text": _TEXT},
    "additionalProperties": False,
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "CreateDirectMessagesByParticipantIdRequest": _MESSAGE_REQUEST,
    "CreateDirectMessagesByConversationIdRequest": _MESSAGE_REQUEST,
    "SendChatMessageRequest": {
        "type": "object",
        "required": ["message_id", "encoded_message_create_event"],
        "properties": {
            "conversation_token": {"type": "string"},
            "encoded_message_create_event": {"type": "string"},
            "encoded_message_event_signature": {"type": "string"},
            "message_id": {"type": "string"},
        },
    },
    "CreateDirectMessagesConversationRequest": {
        "type": "object",
        "required": ["conversation_type", "participant_ids", "message"],
        "properties": {
            "conversation_type": {"type": "string", "enum": ["Group"]},
            "message": {
                "type": "object",
                "properties": {"attachments": _ATTACHMENTS, "text": _TEXT},
                "additionalProperties": False,
            },
            "participant_ids": {
                "type": "array",
                "minItems": 2,
                "maxItems": 49,
                "items": {"type": "string", "pattern": "^[0-9]{1,19}$"},
            },
        },
        "additionalProperties": False,
    },
}


def schema_errors(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Errors of `instance` against the JSON-Schema subset X's DM schemas use."""
    errors: list[str] = []
    if "anyOf" in schema and all(schema_errors(instance, s, where) for s in schema["anyOf"]):
        wanted = " or ".join(
            "/".join(s.get("required", [])) or "a valid value" for s in schema["anyOf"]
        )
        errors.append(f"{where}: needs {wanted}")
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    if kind in types and (
        not isinstance(instance, types[kind]) or (kind == "integer" and isinstance(instance, bool))
    ):
        return [*errors, f"{where}: {type(instance).__name__} found, {kind} expected"]
    if isinstance(instance, dict):
        for name in schema.get("required", []):
            if name not in instance:
                errors.append(f"{where}.{name}: is missing but it is required")
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            errors.extend(
                f"{where}.{name}: is not defined in the schema and the schema does not "
                "allow additional properties"
                for name in instance
                if name not in props
            )
        for name, sub in props.items():
            if name in instance:
                errors.extend(schema_errors(instance[name], sub, f"{where}.{name}"))
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append(f"{where}: there must be a minimum of {schema['minItems']} items")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            errors.append(f"{where}: there must be a maximum of {schema['maxItems']} items")
        for i, item in enumerate(instance):
            errors.extend(schema_errors(item, schema.get("items", {}), f"{where}[{i}]"))
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{where}: must be at least {schema['minLength']} characters long")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{where}: does not match the regex pattern {schema['pattern']}")
        if "enum" in schema and instance not in schema["enum"]:
            errors.append(f"{where}: does not have a value in the enumeration {schema['enum']}")
    return errors


# --- state -----------------------------------------------------------------------------


@dataclass
class FakeMessage:
    """One DM event in the fake's mailbox (v2 `MessageCreate`, v1.1 `message_create`)."""

    id: str
    conversation_id: str  # "{lo}-{hi}" for 1:1, a number for groups
    sender_id: str
    text: str
    created_at: datetime
    participant_ids: tuple[str, ...]
    media_ids: tuple[str, ...] = ()
    api: str = "state"  # "v2" / "v1.1" / "xchat" when sent through the fake's API
    # XChat: the client's encrypted event (`text` is "": the fake cannot read it either)
    encoded_event: str = ""

    def recipient_id(self) -> str | None:
        others = [p for p in self.participant_ids if p != self.sender_id]
        return others[0] if len(others) == 1 else None


def _pair(a: str, b: str) -> str:
    lo, hi = sorted((a, b), key=int)
    return f"{lo}-{hi}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


class FakeX:
    """The fake's state. Mutate it freely from tests; each `app()` serves this state."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.users: dict[str, dict[str, str]] = {}  # id -> {"id", "name", "username"}
        self.users_by_token: dict[str, dict[str, str]] = {}  # OAuth 2.0 user tokens
        self.followers: dict[str, list[str]] = {}  # account id -> follower ids, newest first
        self.messages: list[FakeMessage] = []  # every DM, sent or put here by a test
        self.sent: list[FakeMessage] = []  # DMs that arrived through the send endpoints
        self.groups: dict[str, tuple[str, ...]] = {}  # group conversation id -> participants
        # XChat groups (`g{digits}`) -> participants; a send to an unknown group is refused.
        self.chat_groups: dict[str, tuple[str, ...]] = {}
        # OAuth 1.0a signature checking, opt-in per consumer key (see `add_oauth1_client`).
        self.oauth1_consumers: dict[str, str] = {}  # consumer key -> consumer secret
        self.oauth1_token_secrets: dict[str, str] = {}  # access token -> token secret
        self.oauth1_checks: list[tuple[str, bool]] = []  # (path, signature valid) per check
        # Failure knobs.
        self.reject_tokens: set[str] = set()  # bearer / oauth_token values answered 401
        self.delay_seconds: float = 0.0  # every answer waits this long
        self.record = True  # False keeps `requests` empty (long benchmark runs)
        self._next_id = 1_850_000_000_000_000_000

    # --- helpers for tests -------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        username: str | None = None,
        name: str | None = None,
        token: str | None = None,
    ) -> dict[str, str]:
        """Register a user; with `token`, that OAuth 2.0 user token authenticates as it."""
        user = {
            "id": user_id,
            "name": name or f"User {user_id}",
            "username": username or f"user{user_id}",
        }
        self.users[user_id] = user
        if token is not None:
            self.users_by_token[token] = user
        return user

    def add_oauth1_client(
        self, consumer_key: str, consumer_secret: str, access_token: str, token_secret: str
    ) -> None:
        """Check the HMAC-SHA1 signature of every request signed with `consumer_key`.

        The signed URL is taken to be `{scheme}://{Host header}{path}`, scheme https when the
        request came over TLS: what a client calling that host directly would have signed.
        """
        self.oauth1_consumers[consumer_key] = consumer_secret
        self.oauth1_token_secrets[access_token] = token_secret

    def add_dm(
        self, sender_id: str, recipient_id: str, text: str, at: datetime | None = None
    ) -> FakeMessage:
        """Put a 1:1 DM in the mailbox (as if `sender_id` had written it on X)."""
        message = FakeMessage(
            id=self.new_id(),
            conversation_id=_pair(sender_id, recipient_id),
            sender_id=sender_id,
            text=text,
            created_at=at or datetime.now(UTC),
            participant_ids=(sender_id, recipient_id),
        )
        self.messages.append(message)
        return message

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def user(self, user_id: str) -> dict[str, str]:
        return self.users.get(user_id) or {
            "id": user_id,
            "name": f"User {user_id}",
            "username": f"user{user_id}",
        }

    # --- the application ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**3)
        r = app.router
        r.add_post("/2/dm_conversations/with/{participant_id}/messages", self._dm_with)
        r.add_post("/2/dm_conversations/{dm_conversation_id}/messages", self._dm_conversation)
        r.add_post("/2/dm_conversations", self._dm_group_create)
        r.add_post("/1.1/direct_messages/events/new.json", self._v1_dm_new)
        r.add_post("/2/chat/conversations/{id}/messages", self._chat_send)
        r.add_get("/2/users/me", self._users_me)
        r.add_get("/2/users/{id}/followers", self._followers)
        r.add_get("/1.1/followers/ids.json", self._v1_follower_ids)
        r.add_get("/1.1/followers/list.json", self._v1_follower_list)
        r.add_get("/2/dm_events", self._dm_events)
        r.add_get("/2/dm_conversations/with/{participant_id}/dm_events", self._dm_events)
        r.add_get("/2/dm_conversations/{id}/dm_events", self._dm_events)
        r.add_get("/1.1/direct_messages/events/list.json", self._v1_dm_list)
        r.add_route("*", r"/_test/echo{tail:.*}", self._echo)
        r.add_get(r"/_test/bytes/{n:\d+}", self._bytes)
        r.add_get("/_test/gzip", self._gzip)
        r.add_route("*", r"/_test/status/{code:\d+}", self._status)
        r.add_get("/_test/headers", self._headers)
        r.add_route("*", "/_test/slow", self._slow)
        r.add_route("*", "/_test/upload", self._upload)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.record:
            # /_test/upload streams its body; everything else is small enough to keep.
            body = b"" if request.path == "/_test/upload" else await request.read()
            self.requests.append(Recorded.of(request, body))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        valid = await self._oauth1_signature_valid(request)
        if valid is not None:
            self.oauth1_checks.append((request.path, valid))
            if not valid:
                return _unauthorized()  # X's answer to a bad OAuth 1.0a signature
        token = _bearer(request) or _oauth1_token(request)
        if token is not None and token in self.reject_tokens:
            return _unauthorized()
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _v1_error(404, 34, "Sorry, that page does not exist")
        except web.HTTPMethodNotAllowed:
            return _v1_error(405, 34, "Sorry, that page does not exist")

    async def _oauth1_signature_valid(self, request: web.Request) -> bool | None:
        """None unless an `Authorization: OAuth` header names a registered consumer key;
        else whether its HMAC-SHA1 signature (and access token) checks out."""
        header = request.headers.get("Authorization", "").strip()
        if header[:6].lower() != "oauth ":
            return None
        try:
            oauth = {k: unquote(v) for k, v in parse_authorization_header(header)}
        except ValueError:
            return None
        consumer_secret = self.oauth1_consumers.get(oauth.get("oauth_consumer_key", ""))
        if consumer_secret is None:
            return None
        token_secret = self.oauth1_token_secrets.get(oauth.get("oauth_token", ""))
        if token_secret is None or oauth.get("oauth_signature_method") != "HMAC-SHA1":
            return False
        body = ""
        if request.content_type == "application/x-www-form-urlencoded":
            body = (await request.read()).decode("utf-8", "replace")
        host = request.headers.get("Host") or request.host
        signed = OAuthRequest(f"{request.scheme}://{host}{request.raw_path}", request.method)
        try:
            signed.params = oauth1_signature.collect_parameters(
                uri_query=request.raw_path.partition("?")[2],
                body=body,
                headers={"Authorization": header},
            )
            signed.signature = oauth.get("oauth_signature", "")
            return oauth1_signature.verify_hmac_sha1(signed, consumer_secret, token_secret)
        except ValueError:  # a malformed URL or query string
            return False

    def _caller(self, request: web.Request) -> dict[str, str] | web.Response:
        """The user a user-context request acts for, or X's refusal."""
        bearer = _bearer(request)
        if bearer is not None:
            user = self.users_by_token.get(bearer)
            if user is None:
                # X's answer to an app-only token on a user-context endpoint.
                return _problem(
                    403,
                    "Unsupported Authentication",
                    "Authenticating with OAuth 2.0 Application-Only is forbidden for this "
                    "endpoint.  Supported authentication types are [OAuth 1.0a User Context, "
                    "OAuth 2.0 User Context].",
                    "https://api.x.com/2/problems/unsupported-authentication",
                )
            return user
        token = _oauth1_token(request)
        if token and "-" in token and _ID.fullmatch(token.split("-", 1)[0]):
            return self.user(token.split("-", 1)[0])
        return _unauthorized()

    def _app_or_user(self, request: web.Request) -> dict[str, str] | web.Response | None:
        """For endpoints that also take app-only bearer tokens: the user, None, or 401."""
        if _bearer(request) is not None:
            return self.users_by_token.get(_bearer(request) or "")
        caller = self._caller(request)
        return caller

    def _deliver(
        self,
        api: str,
        conversation_id: str,
        sender_id: str,
        participants: tuple[str, ...],
        text: str,
        media_ids: tuple[str, ...] = (),
    ) -> FakeMessage:
        message = FakeMessage(
            id=self.new_id(),
            conversation_id=conversation_id,
            sender_id=sender_id,
            text=text,
            created_at=datetime.now(UTC),
            participant_ids=participants,
            media_ids=media_ids,
            api=api,
        )
        self.messages.append(message)
        self.sent.append(message)
        return message

    # --- v2 DM sends -------------------------------------------------------------------

    async def _dm_with(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        participant = request.match_info["participant_id"]
        if not _ID.fullmatch(participant):
            return _invalid_request(
                [
                    f"The `participant_id` path parameter value [{participant}] does not match "
                    "^[0-9]{1,19}$"
                ]
            )
        doc = await _json_body(request)
        if isinstance(doc, web.Response):
            return doc
        errors = schema_errors(doc, SCHEMAS["CreateDirectMessagesByParticipantIdRequest"])
        if errors:
            return _invalid_request(errors)
        conversation = _pair(caller["id"], participant)
        message = self._deliver(
            "v2", conversation, caller["id"], (caller["id"], participant), *_content(doc)
        )
        return _created(message)

    async def _dm_conversation(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        conversation = request.match_info["dm_conversation_id"]
        if not _CONVERSATION.fullmatch(conversation):
            return _invalid_request(
                [
                    f"The `dm_conversation_id` path parameter value [{conversation}] is not a "
                    "valid conversation id"
                ]
            )
        doc = await _json_body(request)
        if isinstance(doc, web.Response):
            return doc
        errors = schema_errors(doc, SCHEMAS["CreateDirectMessagesByConversationIdRequest"])
        if errors:
            return _invalid_request(errors)
        pair = _PAIR.fullmatch(conversation)
        if pair:
            participants = pair.groups()
        else:
            participants = self.groups.get(conversation, ())
        if participants and caller["id"] not in participants:
            return _problem(
                403,
                "Forbidden",
                "You are not a participant in this conversation.",
                "about:blank",
            )
        message = self._deliver(
            "v2", conversation, caller["id"], tuple(participants), *_content(doc)
        )
        return _created(message)

    async def _dm_group_create(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        doc = await _json_body(request)
        if isinstance(doc, web.Response):
            return doc
        errors = schema_errors(doc, SCHEMAS["CreateDirectMessagesConversationRequest"])
        if not errors and not (doc["message"].get("text") or doc["message"].get("attachments")):
            # Not in the schema, but a message with nothing in it is not a message.
            errors = ["$.message: needs text or attachments"]
        if errors:
            return _invalid_request(errors)
        conversation = self.new_id()
        participants = tuple(dict.fromkeys([caller["id"], *doc["participant_ids"]]))
        self.groups[conversation] = participants
        message = self._deliver(
            "v2", conversation, caller["id"], participants, *_content(doc["message"])
        )
        return _created(message)

    # --- XChat send (encrypted) ---------------------------------------------------------

    async def _chat_send(self, request: web.Request) -> web.Response:
        """`sendChatMessage`: 201 `{"data": {"encoded_message_event"}}`. Recorded in `sent`
        (api "xchat", no text) like every send, so tests can see what arrived."""
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        target = request.match_info["id"]
        if not _CHAT_ID.fullmatch(target):
            return _invalid_request(
                [f"The `id` path parameter value [{target}] does not match {_CHAT_ID.pattern}"]
            )
        doc = await _json_body(request)
        if isinstance(doc, web.Response):
            return doc
        errors = schema_errors(doc, SCHEMAS["SendChatMessageRequest"])
        if errors:
            return _invalid_request(errors)
        me = caller["id"]
        pair = _PAIR.fullmatch(target)
        if target.startswith("g"):
            participants = self.chat_groups.get(target, ())
            conversation = target
        elif pair:
            participants = pair.groups()
            conversation = _pair(*participants)
        else:  # the recipient's user id: X builds the 1:1 conversation with the caller
            participants = (me, target)
            conversation = _pair(me, target)
        if me not in participants:
            return _problem(
                403,
                "Forbidden",
                "You are not a participant in this conversation.",
                "about:blank",
            )
        message = FakeMessage(
            id=self.new_id(),
            conversation_id=conversation,
            sender_id=me,
            text="",
            created_at=datetime.now(UTC),
            participant_ids=tuple(participants),
            api="xchat",
            encoded_event=doc["encoded_message_create_event"],
        )
        self.sent.append(message)  # not in `messages`: DM lookups never show XChat
        event = {"id": message.id, "conversation_id": conversation, "sender_id": me}
        encoded = base64.b64encode(json.dumps(event).encode()).decode()
        return _json({"data": {"encoded_message_event": encoded}}, status=201)

    # --- v1.1 DM send ------------------------------------------------------------------

    async def _v1_dm_new(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return _v1_error(401, 32, "Could not authenticate you.")
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return _v1_error(400, 214, "Request body is not valid JSON.")
        # X's v1.1 validation errors use code 214 with a field path (not in the v1.1
        # reference pages; seen in X's developer forum answers).
        event = doc.get("event") if isinstance(doc, dict) else None
        if not isinstance(event, dict) or event.get("type") != "message_create":
            return _v1_error(400, 214, "event.type: 'message_create' is required.")
        create = event.get("message_create")
        create = create if isinstance(create, dict) else {}
        target = create.get("target") if isinstance(create.get("target"), dict) else {}
        recipient = str(target.get("recipient_id", ""))
        if not _ID.fullmatch(recipient):
            return _v1_error(
                400, 214, "event.message_create.target.recipient_id: is not a valid Long."
            )
        data = create.get("message_data") if isinstance(create.get("message_data"), dict) else {}
        text = data.get("text")
        if not isinstance(text, str):
            return _v1_error(400, 214, "event.message_create.message_data.text: is required.")
        media = ((data.get("attachment") or {}).get("media") or {}).get("id")
        message = self._deliver(
            "v1.1",
            _pair(caller["id"], recipient),
            caller["id"],
            (caller["id"], recipient),
            text,
            (str(media),) if media else (),
        )
        return web.json_response({"event": _v1_event(message)}, content_type="application/json")

    # --- v2 reads ----------------------------------------------------------------------

    async def _users_me(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        return _json({"data": dict(caller)})

    async def _followers(self, request: web.Request) -> web.Response:
        auth = self._app_or_user(request)
        if isinstance(auth, web.Response):
            return auth
        user_id = request.match_info["id"]
        if not _ID.fullmatch(user_id):
            return _invalid_request(
                [f"The `id` query parameter value [{user_id}] does not match ^[0-9]{{1,19}}$"]
            )
        page = _v2_page(request, default=100, maximum=1000)
        if isinstance(page, web.Response):
            return page
        offset, size = page
        ids = self.followers.get(user_id, [])
        return _json(
            _v2_paged([self.user(i) for i in ids[offset : offset + size]], offset, size, len(ids))
        )

    async def _dm_events(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        page = _v2_page(request, default=100, maximum=100)
        if isinstance(page, web.Response):
            return page
        offset, size = page
        me = caller["id"]
        if "participant_id" in request.match_info:
            peer = request.match_info["participant_id"]
            if not _ID.fullmatch(peer):
                return _invalid_request([f"The `participant_id` value [{peer}] is not valid"])
            wanted = [m for m in self.messages if m.conversation_id == _pair(me, peer)]
        elif "id" in request.match_info:
            conversation = request.match_info["id"]
            if not _CONVERSATION.fullmatch(conversation):
                return _invalid_request([f"The `id` value [{conversation}] is not valid"])
            wanted = [m for m in self.messages if m.conversation_id == conversation]
        else:
            wanted = [m for m in self.messages if me in m.participant_ids]
        types = set(request.query.get("event_types", "MessageCreate").split(","))
        if "MessageCreate" not in types:
            wanted = []
        wanted.sort(key=lambda m: (m.created_at, int(m.id)), reverse=True)
        # X returns id, event_type and text unless `dm_event.fields` asks for more.
        fields = {"id", "event_type", "text"} | set(
            f for f in request.query.get("dm_event.fields", "").split(",") if f
        )
        events = [
            {k: v for k, v in _v2_event(m).items() if k in fields}
            for m in wanted[offset : offset + size]
        ]
        return _json(_v2_paged(events, offset, size, len(wanted)))

    # --- v1.1 reads --------------------------------------------------------------------

    def _v1_subject(self, request: web.Request, caller: dict[str, str]) -> str | None:
        if "user_id" in request.query:
            return request.query["user_id"]
        if "screen_name" in request.query:
            name = request.query["screen_name"].lower()
            return next(
                (u["id"] for u in self.users.values() if u["username"].lower() == name), None
            )
        return caller["id"]

    async def _v1_follower_ids(self, request: web.Request) -> web.Response:
        return await self._v1_followers(request, ids_only=True)

    async def _v1_follower_list(self, request: web.Request) -> web.Response:
        return await self._v1_followers(request, ids_only=False)

    async def _v1_followers(self, request: web.Request, ids_only: bool) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return _v1_error(401, 32, "Could not authenticate you.")
        subject = self._v1_subject(request, caller)
        if subject is None:
            return _v1_error(404, 50, "User not found.")
        default, maximum = (5000, 5000) if ids_only else (20, 200)
        cursor = _v1_cursor(request, default, maximum)
        if cursor is None:
            return _v1_error(400, 214, "Invalid cursor or count.")
        offset, size = cursor
        ids = self.followers.get(subject, [])
        chunk = ids[offset : offset + size]
        body: dict[str, Any]
        if ids_only:
            stringify = request.query.get("stringify_ids", "").lower() in ("true", "1", "t")
            body = {"ids": chunk if stringify else [int(i) for i in chunk]}
        else:
            body = {"users": [_v1_user(self.user(i)) for i in chunk]}
        body.update(_v1_cursors(offset, size, len(ids)))
        return web.json_response(body, content_type="application/json")

    async def _v1_dm_list(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return _v1_error(401, 32, "Could not authenticate you.")
        cursor = _v1_cursor(request, 20, 50)
        if cursor is None:
            return _v1_error(400, 214, "Invalid cursor or count.")
        offset, size = cursor
        wanted = [
            m for m in self.messages if caller["id"] in m.participant_ids and m.recipient_id()
        ]
        wanted.sort(key=lambda m: (m.created_at, int(m.id)), reverse=True)
        body: dict[str, Any] = {"events": [_v1_event(m) for m in wanted[offset : offset + size]]}
        if offset + size < len(wanted):
            body["next_cursor"] = str(offset + size + 1)
        return web.json_response(body, content_type="application/json")

    # --- /_test/ -----------------------------------------------------------------------

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers
                ],
                "body_b64": base64.b64encode(body).decode(),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "body_length": len(body),
            }
        )

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = n
        await response.prepare(request)
        if request.method == "HEAD":  # the length, never a body
            await response.write_eof()
            return response
        full, rest = divmod(n, CHUNK_SIZE)
        for _ in range(full):
            await response.write(_PATTERN_CHUNK)
        if rest:
            await response.write(_PATTERN_CHUNK[:rest])
        await response.write_eof()
        return response

    async def _gzip(self, request: web.Request) -> web.Response:
        return web.Response(
            body=GZIP_BODY,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        if not 200 <= code <= 599:
            return web.json_response({"error": "status must be 200-599"}, status=400)
        headers: dict[str, str] = {}
        if 300 <= code < 400:
            headers["Location"] = request.query.get("location", "/_test/echo")
        if code in (204, 304):
            return web.Response(status=code, headers=headers)
        return web.json_response({"status": code}, status=code, headers=headers)

    async def _headers(self, request: web.Request) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict()
        for cookie in SET_COOKIES:
            headers.add("Set-Cookie", cookie)
        for value in X_MULTI:
            headers.add("X-Multi", value)
        return web.json_response({"ok": True}, headers=headers)

    async def _slow(self, request: web.Request) -> web.Response:
        seconds = float(request.query.get("seconds", "1"))
        await asyncio.sleep(seconds)
        return web.json_response({"slept": seconds})

    async def _upload(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        total = 0
        async for chunk in request.content.iter_chunked(CHUNK_SIZE):
            digest.update(chunk)
            total += len(chunk)
        return web.json_response({"bytes": total, "sha256": digest.hexdigest()})


# --- answers in X's shapes ---------------------------------------------------------------


def _json(doc: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(doc, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def _problem(status: int, title: str, detail: str, type_: str) -> web.Response:
    doc = {"title": title, "detail": detail, "type": type_, "status": status}
    return web.Response(body=json.dumps(doc).encode(), status=status, content_type=PROBLEM_TYPE)


def _unauthorized() -> web.Response:
    return _problem(401, "Unauthorized", "Unauthorized", "about:blank")


def _invalid_request(messages: list[str]) -> web.Response:
    doc = {
        "errors": [{"parameters": {}, "message": m} for m in messages],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.x.com/2/problems/invalid-request",
    }
    return web.Response(body=json.dumps(doc).encode(), status=400, content_type=PROBLEM_TYPE)


def _v1_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"errors": [{"code": code, "message": message}]}, status=status)


def _created(message: FakeMessage) -> web.Response:
    data = {"dm_conversation_id": message.conversation_id, "dm_event_id": message.id}
    return _json({"data": data}, status=201)


def _content(message: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    media = tuple(a["media_id"] for a in message.get("attachments") or [])
    return message.get("text", ""), media


def _v2_event(message: FakeMessage) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": message.id,
        "event_type": "MessageCreate",
        "text": message.text,
        "sender_id": message.sender_id,
        "dm_conversation_id": message.conversation_id,
        "created_at": _iso(message.created_at),
    }
    if message.media_ids:
        event["attachments"] = {"media_keys": [f"3_{m}" for m in message.media_ids]}
    return event


def _v1_event(message: FakeMessage) -> dict[str, Any]:
    data: dict[str, Any] = {
        "text": message.text,
        "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
    }
    if message.media_ids:
        data["attachment"] = {"type": "media", "media": {"id_str": message.media_ids[0]}}
    return {
        "type": "message_create",
        "id": message.id,
        "created_timestamp": _ms(message.created_at),
        "message_create": {
            "target": {"recipient_id": message.recipient_id() or ""},
            "sender_id": message.sender_id,
            "message_data": data,
        },
    }


def _v1_user(user: dict[str, str]) -> dict[str, Any]:
    return {
        "id": int(user["id"]),
        "id_str": user["id"],
        "name": user["name"],
        "screen_name": user["username"],
    }


def _page_token(offset: int) -> str:
    return f"PT{offset:016d}"


def _v2_page(request: web.Request, default: int, maximum: int) -> tuple[int, int] | web.Response:
    raw = request.query.get("max_results", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        return _invalid_request(
            [f"The `max_results` query parameter value [{raw}] is not between 1 and {maximum}"]
        )
    token = request.query.get("pagination_token")
    offset = 0
    if token is not None:
        m = _PAGE_TOKEN.fullmatch(token)
        if m is None:
            return _invalid_request(
                [f"The `pagination_token` query parameter value [{token}] is not valid"]
            )
        offset = int(m.group(1))
    return offset, int(raw)


def _v2_paged(items: list[Any], offset: int, size: int, total: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"result_count": len(items)}
    if offset + size < total:
        meta["next_token"] = _page_token(offset + size)
    if offset > 0:
        meta["previous_token"] = _page_token(max(offset - size, 0))
    doc: dict[str, Any] = {}
    if items:  # X leaves `data` out of an empty page
        doc["data"] = items
    doc["meta"] = meta
    return doc


def _v1_cursor(request: web.Request, default: int, maximum: int) -> tuple[int, int] | None:
    """v1.1 cursors: -1 is the first page; the fake's next cursor is offset+1 (0 = end)."""
    try:
        cursor = int(request.query.get("cursor", "-1"))
        count = int(request.query.get("count", str(default)))
    except ValueError:
        return None
    if not 1 <= count <= maximum or cursor == 0:
        return None
    offset = 0 if cursor == -1 else abs(cursor) - 1
    return offset, count


def _v1_cursors(offset: int, size: int, total: int) -> dict[str, Any]:
    nxt = offset + size + 1 if offset + size < total else 0
    prev = -(max(offset - size, 0) + 1) if offset > 0 else 0
    return {
        "next_cursor": nxt,
        "next_cursor_str": str(nxt),
        "previous_cursor": prev,
        "previous_cursor_str": str(prev),
        "total_count": None,
    }


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        return _invalid_request(["Request body is not valid JSON."])


def _bearer(request: web.Request) -> str | None:
    scheme, _, rest = request.headers.get("Authorization", "").strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else None


def _oauth1_token(request: web.Request) -> str | None:
    scheme, _, rest = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "oauth":
        m = re.search(r'oauth_token="([^"]*)"', rest)
        if m:
            return unquote(m.group(1))
    return request.query.get("oauth_token")


# --- running it ------------------------------------------------------------------------


async def start_fake_x(
    host: str = "127.0.0.1",
    port: int = 0,
    state: FakeX | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[FakeX, web.AppRunner, int]:
    """Serve a fake X on `host:port` (0 = any free port; HTTPS with `ssl_context`). Stop it
    with `await runner.cleanup()`."""
    fake = state or FakeX()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = runner.addresses[0][1]
    return fake, runner, bound


class FakeXThread(FakeAppThread):
    """The fake on its own event loop in a daemon thread, for synchronous tests."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state: FakeX | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(state or FakeX(), host, port, ssl_context)
        self.state: FakeX


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake X API (tests, benchmarks).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="TOKEN:ID[:USERNAME]",
        help="an OAuth 2.0 user token and the user it authenticates (repeatable)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="keep every request in memory (off by default: benchmarks run long)",
    )
    parser.add_argument(
        "--followers",
        action="append",
        default=[],
        metavar="ID:COUNT",
        help="give user ID COUNT generated followers (repeatable)",
    )
    args = parser.parse_args(argv)
    fake = FakeX()
    fake.record = args.record
    for spec in args.user:
        token, user_id, *rest = spec.split(":")
        fake.add_user(user_id, username=rest[0] if rest else None, token=token)
    for spec in args.followers:
        user_id, count = spec.split(":")
        fake.followers[user_id] = [str(9_000_000_000 + i) for i in range(int(count))]

    async def serve() -> None:
        _, runner, port = await start_fake_x(args.host, args.port, fake)
        print(f"fake X API on http://{args.host}:{port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
