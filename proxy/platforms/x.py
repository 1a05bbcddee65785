"""X (Twitter) API v2 and v1.1: DM sends, follow/identity/DM-lookup signals, webhooks.

Request and response shapes follow X's OpenAPI document (v2.167) and X's v1.1 and
webhook documentation; `research/platform-apis.md` lists the sources. The module is pure:
it reads the clock for `created_timestamp` in v1.1 hold answers and nothing else.

XChat (`POST /2/chat/conversations/{id}/messages`) is a DM whose text the client encrypts
end to end: it is judged with `opaque=True` and no text (the policies that need none still
apply), held and blocked like any DM, and a reviewer cannot edit it. Its `{id}` is the
recipient's user id, an `A-B` pair, or a group `g{digits}`.

User ids are judged in X's reading: `0042`, ` 42` and the JSON number 42 are user 42, and
an `A-B` conversation id is each side so, smaller first (`ids.canonical_pair`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote

from multidict import CIMultiDictProxy, MultiDictProxy

from proxy.platforms.base import (
    BadDMRequest,
    ConversationMembers,
    Fact,
    Followed,
    FollowerSnapshot,
    Identity,
    InboundMessage,
    Kind,
    ParsedDM,
    Platform,
    PlatformResponse,
    Profile,
    RequestView,
    Unfollowed,
    normalize_path,
)
from proxy.platforms.ids import canonical_number, canonical_pair, number_or_none
from proxy.platforms.jsonbody import dump_json, load_json_object
from proxy.platforms.routes import (
    copy_headers,
    identity_view,
    refuse_other_methods,
    route_pattern,
)

# X answers JSON with this exact type. Block answers use it too (not
# `application/problem+json`): tweepy parses any body, but twitter-api-v2 (Node) only
# parses bodies whose type contains `application/json`, and the OpenAPI document allows
# both types for error responses.
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
WEBHOOK_SIGNATURE_HEADER = "x-twitter-webhooks-signature"

# User ids: `UserId` in the OpenAPI document.
_USER_ID = re.compile(r"[0-9]{1,19}")
_MAX_DIGITS = 19
# Conversation ids: 1:1 is `{a}-{b}`, a group is one number (the document's
# `getDirectMessagesEventsByConversationId` pattern; 1-19 digits accepted for groups).
_ONE_TO_ONE = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")

GROUP_PREFIX = "group:"
# XChat group conversations: `g{digits}` (`sendChatMessage`'s `id` pattern).
CHAT_GROUP_PREFIX = "g"


# --- routes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    name: str
    method: str
    kind: Kind
    pattern: re.Pattern[str]
    v1: bool = False


def _route(name: str, method: str, kind: Kind, template: str) -> _Route:
    # Path parameters match any segment so that a DM to a malformed id is still a DM
    # (and refused by `parse_dm`), never forwarded unjudged. Literals match in any case
    # and with any extension (v1.1's `.json`, or `messages.json`): judging a DM X would
    # 404 is harmless, missing one X would accept is not.
    pattern = route_pattern(template.removesuffix(".json"))
    return _Route(name, method, kind, pattern, v1=template.startswith("/1.1/"))


DM_WITH = "dm_with_participant"
DM_CONVERSATION = "dm_conversation"
DM_GROUP_CREATE = "dm_group_create"
DM_V1 = "dm_v1_new"
CHAT_SEND = "chat_send"
CHAT_CONVERSATION = "chat_conversation"
USERS_ME = "users_me"
FOLLOWERS = "followers"
V1_FOLLOWER_IDS = "v1_follower_ids"
V1_FOLLOWER_LIST = "v1_follower_list"
DM_EVENTS = "dm_events"
DM_EVENTS_WITH = "dm_events_with_participant"
DM_EVENTS_CONVERSATION = "dm_events_conversation"
V1_DM_LIST = "v1_dm_list"

_ROUTES: tuple[_Route, ...] = (
    _route(DM_WITH, "POST", Kind.DM, "/2/dm_conversations/with/{participant_id}/messages"),
    _route(DM_CONVERSATION, "POST", Kind.DM, "/2/dm_conversations/{dm_conversation_id}/messages"),
    _route(DM_GROUP_CREATE, "POST", Kind.DM, "/2/dm_conversations"),
    _route(DM_V1, "POST", Kind.DM, "/1.1/direct_messages/events/new.json"),
    _route(CHAT_SEND, "POST", Kind.DM, "/2/chat/conversations/{id}/messages"),
    _route(USERS_ME, "GET", Kind.SIGNAL, "/2/users/me"),
    _route(FOLLOWERS, "GET", Kind.SIGNAL, "/2/users/{id}/followers"),
    _route(V1_FOLLOWER_IDS, "GET", Kind.SIGNAL, "/1.1/followers/ids.json"),
    _route(V1_FOLLOWER_LIST, "GET", Kind.SIGNAL, "/1.1/followers/list.json"),
    _route(DM_EVENTS, "GET", Kind.SIGNAL, "/2/dm_events"),
    _route(
        DM_EVENTS_WITH, "GET", Kind.SIGNAL, "/2/dm_conversations/with/{participant_id}/dm_events"
    ),
    _route(DM_EVENTS_CONVERSATION, "GET", Kind.SIGNAL, "/2/dm_conversations/{id}/dm_events"),
    _route(V1_DM_LIST, "GET", Kind.SIGNAL, "/1.1/direct_messages/events/list.json"),
    _route(CHAT_CONVERSATION, "GET", Kind.SIGNAL, "/2/chat/conversations/{id}"),
)


def _match_path(
    path: str, method: str | None, kind: Kind | None = None
) -> tuple[_Route, dict[str, str]] | None:
    normalized = normalize_path(path)
    for route in _ROUTES:
        if method is not None and route.method != method:
            continue
        if kind is not None and route.kind is not kind:
            continue
        m = route.pattern.fullmatch(normalized)
        if m:
            return route, m.groupdict()
    return None


# --- JSON helpers ----------------------------------------------------------------------


def _object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise BadDMRequest(f"{where}{key} is missing or not a JSON object", 400)
    return value


def _user_id(value: Any, what: str) -> str:
    """A user id as X reads it (a string of 1-19 digits; v1.1 clients send numbers), in
    one spelling: no whitespace, no leading zeros."""
    return canonical_number(value, f"{what} (an X user id)", _MAX_DIGITS)


def _conversation(value: str) -> tuple[tuple[str, ...], str]:
    """The recipients and canonical id of a v2 DM conversation: `A-B` names both users
    (the sender is dropped later), a number is a group."""
    if "-" in value:
        pair = canonical_pair(value, "dm_conversation_id", _MAX_DIGITS)
        return tuple(dict.fromkeys(pair)), "-".join(pair)
    try:
        group = canonical_number(value, "dm_conversation_id", _MAX_DIGITS)
    except BadDMRequest:
        raise BadDMRequest(
            f"dm_conversation_id must be '{{id}}-{{id}}' or a numeric group id, got {value!r}",
            400,
        ) from None
    return (GROUP_PREFIX + group,), group


def _chat_conversation(value: str) -> tuple[tuple[str, ...], str | None]:
    """XChat's conversation `id`: the recipient's user id (X builds the 1:1 conversation
    from it and the caller), an `A-B` pair, or a group `g{digits}` (no recipients: the
    proxy resolves the members it learnt, else the group id stands for them)."""
    value = value.strip()
    if "-" in value:
        pair = canonical_pair(value, "chat conversation id", _MAX_DIGITS)
        return tuple(dict.fromkeys(pair)), "-".join(pair)
    if value[:1] in ("g", "G"):
        group = canonical_number(value[1:], "chat group conversation id", _MAX_DIGITS)
        return (), CHAT_GROUP_PREFIX + group
    return (_user_id(value, "chat conversation id"),), None


def _message_text(message: dict[str, Any], where: str, attachment_key: str = "attachments") -> str:
    """The text of a message object that needs text or an attachment (both v2 shapes and
    v1.1 `message_data`). Attachment-only messages have the text ""."""
    text = message.get("text")
    if text is not None and not isinstance(text, str):
        raise BadDMRequest(f"{where}text must be a string", 400)
    attachments = message.get(attachment_key)
    if text is None or text == "":
        if not attachments:
            raise BadDMRequest(f"{where}text or {where}{attachment_key} is required", 400)
        text = ""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadDMRequest(f"{where}text is not valid Unicode (lone surrogate)", 400) from exc
    return text


def _chat_body(doc: dict[str, Any]) -> None:
    """`SendChatMessageRequest`: `message_id` and `encoded_message_create_event` are
    required strings (the encrypted message itself dmgate cannot read)."""
    for key in ("message_id", "encoded_message_create_event"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise BadDMRequest(f"{key} is required and must be a non-empty string", 400)
    for key in ("conversation_token", "encoded_message_event_signature"):
        if key in doc and not isinstance(doc[key], str):
            raise BadDMRequest(f"{key} must be a string", 400)


def _check_content_type(req: RequestView) -> None:
    # X's DM endpoints take JSON only; some tools send no Content-Type at all.
    content_type = req.headers.get("Content-Type")
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise BadDMRequest(f"DM requests must be application/json, got {content_type!r}", 415)


def _oauth1_params(header_value: str) -> dict[str, str]:
    """`OAuth k="v", k2="v2"` parameters, percent-decoded (RFC 5849 section 3.5.1)."""
    params: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z0-9_.~%-]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))', header_value):
        key = unquote(m.group(1))
        params.setdefault(key, unquote(m.group(2) if m.group(2) is not None else m.group(3)))
    return params


def _epoch_ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _id_of(value: Any) -> str | None:
    """A numeric id from a JSON string/number, canonical, else None (learners never
    raise)."""
    return number_or_none(value, _MAX_DIGITS)


def _pair_id(a: str, b: str) -> str:
    """X's 1:1 conversation id: the two user ids, smaller first."""
    if _USER_ID.fullmatch(a) and _USER_ID.fullmatch(b):
        lo, hi = sorted((a, b), key=int)
    else:
        lo, hi = sorted((a, b))
    return f"{lo}-{hi}"


def _synthetic_id(hold_id: str, purpose: str) -> str:
    """A stable 19-digit id (below 2**63, like X's snowflakes) for a held DM, so a retry of
    the same hold gets the same ids."""
    digest = hashlib.sha256(f"dmgate:{purpose}:{hold_id}".encode()).digest()
    return str(10**18 + int.from_bytes(digest[:8], "big") % (8 * 10**18))


def _hmac_b64(secret: str, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def _earliest_inbound(facts: list[InboundMessage]) -> list[Fact]:
    """One fact per (account, sender), with the earliest known time: a page of a long
    conversation should not become a hundred writes saying the same thing."""
    best: dict[tuple[str, str], InboundMessage] = {}
    for fact in facts:
        key = (fact.account, fact.sender)
        seen = best.get(key)
        if seen is None or (fact.at is not None and (seen.at is None or fact.at < seen.at)):
            best[key] = fact
    return list(best.values())


# --- the adapter -----------------------------------------------------------------------


Learner = Callable[["XPlatform", RequestView, dict[str, str], str | None, Any], list[Fact]]


class XPlatform(Platform):
    """X API v2 (and the v1.1 endpoints automation tools still call)."""

    name: ClassVar[str] = "x"

    # --- classification and identity --------------------------------------------------

    def classify(self, req: RequestView) -> Kind:
        match = _match_path(req.path, req.method.upper())
        if match:
            return match[0].kind
        if _match_path(req.path, None, Kind.DM):
            # X serves nothing but the send (POST) on its DM-send paths.
            refuse_other_methods(req)
        return Kind.PASSTHROUGH

    def credential(self, req: RequestView) -> str | None:
        auth = req.headers.get("Authorization", "").strip()
        scheme, _, rest = auth.partition(" ")
        if scheme.lower() == "bearer":
            return rest.strip() or None
        return self._oauth1_token(req)

    def account_from_request(self, req: RequestView) -> str | None:
        # OAuth 1.0a access tokens are `{user id}-{random}` (tweepy relies on this too).
        # Trustworthy: X issues the token and acts as exactly that user or refuses the
        # request (401), so a made-up prefix can only name a sender whose DM X rejects.
        token = self._oauth1_token(req)
        if token is None or "-" not in token:
            return None
        return _id_of(token.split("-", 1)[0])

    def whoami(self, req: RequestView) -> RequestView | None:
        """`GET /2/users/me` with the request's OAuth 2.0 bearer token. None for OAuth
        1.0a: its signature covers the method and URL, so the header cannot be replayed on
        another call, and the token names its user already (`account_from_request`)."""
        scheme, _, rest = req.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not rest.strip():
            return None
        return identity_view("/2/users/me", copy_headers(req, ["Authorization"]))

    def _oauth1_token(self, req: RequestView) -> str | None:
        auth = req.headers.get("Authorization", "").strip()
        scheme, _, rest = auth.partition(" ")
        if scheme.lower() == "oauth":
            token = _oauth1_params(rest).get("oauth_token")
            if token:
                return token
        if scheme.lower() == "bearer":
            return None
        return req.query.get("oauth_token") or None

    # --- DM requests --------------------------------------------------------------------

    def _dm_route(self, req: RequestView) -> tuple[_Route, dict[str, str]]:
        match = _match_path(req.path, "POST")
        if match is None or match[0].kind is not Kind.DM:
            raise BadDMRequest(f"{req.method} {req.path} is not an X DM send", 400)
        return match

    def parse_dm(self, req: RequestView, body: bytes) -> ParsedDM:
        route, params = self._dm_route(req)
        _check_content_type(req)
        doc = load_json_object(body)
        hint = self.account_from_request(req)
        if route.name == DM_WITH:
            recipient = _user_id(params["participant_id"], "participant_id")
            return ParsedDM((recipient,), _message_text(doc, ""), account_hint=hint)
        if route.name == DM_CONVERSATION:
            text = _message_text(doc, "")
            # For `A-B` the sender is one of the two; `recipients_for` drops it once known.
            recipients, conversation = _conversation(params["dm_conversation_id"])
            return ParsedDM(recipients, text, account_hint=hint, conversation_id=conversation)
        if route.name == CHAT_SEND:
            _chat_body(doc)
            recipients, conversation = _chat_conversation(params["id"])
            return ParsedDM(
                recipients, "", account_hint=hint, conversation_id=conversation, opaque=True
            )
        if route.name == DM_GROUP_CREATE:
            ids = doc.get("participant_ids")
            if not isinstance(ids, list) or not ids:
                raise BadDMRequest("participant_ids must be a non-empty array", 400)
            recipients = tuple(dict.fromkeys(_user_id(i, "participant_ids[]") for i in ids))
            message = _object(doc, "message", "")
            return ParsedDM(recipients, _message_text(message, "message."), account_hint=hint)
        # v1.1 direct_messages/events/new
        event = _object(doc, "event", "")
        if event.get("type") != "message_create":
            raise BadDMRequest("event.type must be 'message_create'", 400)
        create = _object(event, "message_create", "event.")
        target = _object(create, "target", "event.message_create.")
        recipient = _user_id(target.get("recipient_id"), "event.message_create.target.recipient_id")
        data = _object(create, "message_data", "event.message_create.")
        text = _message_text(data, "event.message_create.message_data.", "attachment")
        return ParsedDM((recipient,), text, account_hint=hint)

    def recipients_for(self, dm: ParsedDM, account: str) -> tuple[str, ...]:
        """Drop the sender from an `A-B` conversation id; if the account is neither A nor
        B, the conversation id itself stands for the recipient."""
        if dm.conversation_id and _ONE_TO_ONE.fullmatch(dm.conversation_id):
            if account not in dm.recipients:
                return (dm.conversation_id,)
        return super().recipients_for(dm, account)

    def replace_text(self, req: RequestView, body: bytes, text: str) -> bytes:
        self.parse_dm(req, body)  # the same validation, so the edit lands in a sane body
        route, _ = self._dm_route(req)
        if route.name == CHAT_SEND:
            raise BadDMRequest(
                "XChat messages are end-to-end encrypted: dmgate cannot edit their text; "
                "approve the message unedited or reject it",
                422,
            )
        doc = load_json_object(body)
        if route.name == DM_V1:
            message = doc["event"]["message_create"]["message_data"]
            has_attachment = bool(message.get("attachment"))
        else:
            message = doc["message"] if route.name == DM_GROUP_CREATE else doc
            has_attachment = bool(message.get("attachments"))
        if text:
            message["text"] = text
        elif has_attachment and route.name != DM_V1:
            message.pop("text", None)  # v2 `text` has minLength 1
        elif has_attachment:
            message["text"] = ""
        else:
            raise BadDMRequest("the edited text is empty and the DM has no attachment", 422)
        return dump_json(doc)

    # --- answers on X's behalf ------------------------------------------------------------

    def hold_response(
        self, req: RequestView, dm: ParsedDM, account: str, hold_id: str
    ) -> PlatformResponse:
        match = _match_path(req.path, None)
        name = match[0].name if match else DM_WITH
        marker = {"hold_id": hold_id, "status": "pending"}
        event_id = _synthetic_id(hold_id, "dm_event")
        if name == CHAT_SEND:
            # `sendChatMessage` answers 201 `{"data": {"encoded_message_event"}}`, a base64
            # Thrift event dmgate cannot build: a stable base64 stand-in per hold.
            encoded = base64.b64encode(f"dmgate:hold:{hold_id}:{event_id}".encode()).decode()
            return PlatformResponse(
                201,
                {"data": {"encoded_message_event": encoded}, "dmgate": marker},
                content_type=JSON_CONTENT_TYPE,
            )
        if name == DM_V1:
            event = {
                "type": "message_create",
                "id": event_id,
                "created_timestamp": str(int(time.time() * 1000)),
                "message_create": {
                    "target": {"recipient_id": dm.recipients[0] if dm.recipients else ""},
                    "sender_id": account,
                    "message_data": {"text": dm.text},
                },
            }
            return PlatformResponse(
                200, {"event": event, "dmgate": marker}, content_type=JSON_CONTENT_TYPE
            )
        if name == DM_GROUP_CREATE:
            conversation = _synthetic_id(hold_id, "dm_conversation")
        elif dm.conversation_id:
            conversation = dm.conversation_id
        else:
            peer = dm.recipients[0] if dm.recipients else account
            conversation = _pair_id(account, peer)
        data = {"dm_conversation_id": conversation, "dm_event_id": event_id}
        return PlatformResponse(
            201, {"data": data, "dmgate": marker}, content_type=JSON_CONTENT_TYPE
        )

    def block_response(self, req: RequestView, reason: str) -> PlatformResponse:
        match = _match_path(req.path, None)
        marker = {"decision": "block", "reason": reason}
        if match and match[0].v1:
            # 151 is X's documented v1.1 code for a refused DM ("There was an error sending
            # your message: reason", HTTP 403).
            message = f"There was an error sending your message: {reason}"
            body: dict[str, Any] = {"errors": [{"code": 151, "message": message}]}
        else:
            # v2 problem shape; tweepy reads errors[].message, twitter-api-v2 title/detail.
            body = {
                "title": "Forbidden",
                "type": "about:blank",
                "status": 403,
                "detail": reason,
                "errors": [{"message": reason}],
            }
        body["dmgate"] = marker
        return PlatformResponse(403, body, content_type=JSON_CONTENT_TYPE)

    # --- signals --------------------------------------------------------------------------

    def learn_from(self, req: RequestView, account: str | None, doc: Any) -> list[Fact]:
        match = _match_path(req.path, "GET")
        if match is None or match[0].kind is not Kind.SIGNAL:
            return []
        route, params = match
        return _LEARNERS[route.name](self, req, params, account, doc)

    def _learn_chat_conversation(
        self, req: RequestView, params: dict[str, str], account: str | None, doc: Any
    ) -> list[Fact]:
        """`GET /2/chat/conversations/{id}`: the members of an XChat group, so a send to
        `g{digits}` is judged against the people in it."""
        path_id = params["id"].strip()
        if path_id[:1] not in ("g", "G") or not isinstance(doc.get("data"), dict):
            return []
        group = _id_of(path_id[1:])
        data = doc["data"]
        ids = data.get("member_ids") or data.get("participant_ids") or []
        members = tuple(dict.fromkeys(i for x in ids if (i := _id_of(x))))
        if group is None or not members:
            return []
        return [ConversationMembers(CHAT_GROUP_PREFIX + group, members)]

    def _learn_me(
        self, req: RequestView, params: dict[str, str], account: str | None, doc: Any
    ) -> list[Fact]:
        user = doc.get("data", {})
        user_id = _id_of(user.get("id"))
        return [Identity(user_id), *_profiles([user])] if user_id else []

    def _learn_followers(
        self, req: RequestView, params: dict[str, str], account: str | None, doc: Any
    ) -> list[Fact]:
        owner = _id_of(params["id"])
        if owner is None or not isinstance(doc, dict):
            return []
        users = doc.get("data") or []  # X omits `data` when there are no followers
        followers = tuple(i for u in users if isinstance(u, dict) and (i := _id_of(u.get("id"))))
        first = not req.query.get("pagination_token")
        return [FollowerSnapshot(owner, followers, first_page=first), *_profiles(users)]

    def _v1_follower_owner(self, req: RequestView, account: str | None) -> str | None:
        if "user_id" in req.query:
            return _id_of(req.query["user_id"])
        if "screen_name" in req.query:
            return None  # a handle, not an id: nothing to attach the list to
        return account  # no user named: the authenticating user's followers

    def _learn_v1_follower_ids(
        self, req: RequestView, params: dict[str, str], account: str | None, doc: Any
    ) -> list[Fact]:
        owner = self._v1_follower_owner(req, account)
        if owner is None:
            return []
        followers = tuple(i for x in doc.get("ids") or [] if (i := _id_of(x)))
        first = req.query.get("cursor", "-1") == "-1"
        return [FollowerSnapshot(owner, followers, first_page=first)]

    def _learn_v1_follower_list(
        self, req: RequestView, params: dict[str, str], account: str | None, doc: Any
    ) -> list[Fact]:
        owner = self._v1_follower_owner(req, account)
        if owner is None:
            return []
        users = doc.get("users") or []
        followers = tuple(
            i for u in users if isinstance(u, dict) and (i := _id_of(u.get("id_str", u.get("id"))))
        )
        first = req.query.get("cursor", "-1") == "-1"
        profiles = _profiles(
            [
                {
                    "id": u.get("id_str", u.get("id")),
                    "name": u.get("name"),
                    "username": u.get("screen_name"),
                }
                for u in users
                if isinstance(u, dict)
            ]
        )
        return [FollowerSnapshot(owner, followers, first_page=first), *profiles]

    def _learn_dm_events(
        self, req: RequestView, params: dict[str, str], account: str | None, doc: Any
    ) -> list[Fact]:
        """v2 DM lookups. `sender_id`, `created_at` and `dm_conversation_id` are only in
        the answer when the tool asked for them (`dm_event.fields`)."""
        path_peer = _id_of(params.get("participant_id"))
        path_conversation = params.get("id")
        facts: list[InboundMessage] = []
        for event in doc.get("data") or []:
            if not isinstance(event, dict):
                continue
            if event.get("event_type", "MessageCreate") != "MessageCreate":
                continue
            sender = _id_of(event.get("sender_id"))
            if sender is None:
                continue
            at = _iso(event.get("created_at"))
            if account is not None:
                # With a participant in the path, only that participant writes inbound.
                inbound = sender == path_peer if path_peer else sender != account
                if inbound:
                    facts.append(InboundMessage(account, sender, at))
                continue
            # Caller unknown: a 1:1 conversation id still says who received it.
            pair = _ONE_TO_ONE.fullmatch(
                str(event.get("dm_conversation_id") or path_conversation or "")
            )
            if pair and sender in pair.groups():
                a, b = pair.groups()
                facts.append(InboundMessage(b if sender == a else a, sender, at))
        return _earliest_inbound(facts)

    def _learn_v1_dm_list(
        self, req: RequestView, params: dict[str, str], account: str | None, doc: Any
    ) -> list[Fact]:
        return _earliest_inbound(_v1_inbound(doc.get("events") or [], account))

    # --- webhooks (Account Activity API and X Activity API) -------------------------------

    def webhook_challenge(
        self, query: MultiDictProxy[str], secret: str | None
    ) -> PlatformResponse | None:
        token = query.get("crc_token")
        if token is None:
            return None
        if secret is None:
            return PlatformResponse(
                503,
                {
                    "title": "Service Unavailable",
                    "detail": "dmgate: the X webhook secret (the app's consumer secret) is "
                    "not configured, so the CRC challenge cannot be answered",
                },
            )
        return PlatformResponse(200, {"response_token": _hmac_b64(secret, token.encode())})

    def webhook_signature_valid(
        self, headers: CIMultiDictProxy[str], body: bytes, secret: str | None
    ) -> bool:
        if not secret:
            return False
        values = headers.getall(WEBHOOK_SIGNATURE_HEADER, [])
        if len(values) != 1:
            return False
        expected = _hmac_b64(secret, body).encode()
        return hmac.compare_digest(values[0].strip().encode(), expected)

    def webhook_facts(self, body: bytes, received_at: datetime) -> list[Fact]:
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                return []
            if "for_user_id" in doc:
                return _account_activity_facts(doc, received_at)
            if "data" in doc:
                return _activity_api_facts(doc["data"], received_at)
        except Exception:  # an unexpected payload teaches nothing; never fail the webhook
            return []
        return []


_LEARNERS: dict[str, Learner] = {
    USERS_ME: XPlatform._learn_me,
    FOLLOWERS: XPlatform._learn_followers,
    V1_FOLLOWER_IDS: XPlatform._learn_v1_follower_ids,
    V1_FOLLOWER_LIST: XPlatform._learn_v1_follower_list,
    DM_EVENTS: XPlatform._learn_dm_events,
    DM_EVENTS_WITH: XPlatform._learn_dm_events,
    DM_EVENTS_CONVERSATION: XPlatform._learn_dm_events,
    V1_DM_LIST: XPlatform._learn_v1_dm_list,
    CHAT_CONVERSATION: XPlatform._learn_chat_conversation,
}


def _v1_inbound(events: list[Any], account: str | None) -> list[InboundMessage]:
    """v1.1-shaped `message_create` events (REST list, Account Activity and Activity API
    DM events) as "recipient received a DM from sender". With `account` given, only the
    DMs it received."""
    facts: list[InboundMessage] = []
    for event in events:
        if not isinstance(event, dict) or event.get("type") != "message_create":
            continue
        create = event.get("message_create") or {}
        sender = _id_of(create.get("sender_id"))
        recipient = _id_of((create.get("target") or {}).get("recipient_id"))
        if sender is None:
            continue
        if account is not None:
            if sender == account or (recipient is not None and recipient != account):
                continue
            recipient = account
        if recipient is None or recipient == sender:
            continue
        facts.append(InboundMessage(recipient, sender, _epoch_ms(event.get("created_timestamp"))))
    return facts


def _account_activity_facts(doc: dict[str, Any], received_at: datetime) -> list[Fact]:
    """Account Activity API: `{"for_user_id", "follow_events": [...],
    "direct_message_events": [...]}`; only facts about the subscribed user."""
    account = _id_of(doc.get("for_user_id"))
    if account is None:
        return []
    facts: list[Fact] = []
    for event in doc.get("follow_events") or []:
        if not isinstance(event, dict):
            continue
        target = _id_of((event.get("target") or {}).get("id"))
        source = _id_of((event.get("source") or {}).get("id"))
        if target != account or source is None:
            continue  # the subscribed user following someone else
        if event.get("type") == "follow":
            at = _epoch_ms(event.get("created_timestamp")) or received_at
            facts.append(Followed(account, source, at))
        elif event.get("type") == "unfollow":
            facts.append(Unfollowed(account, source))
    facts.extend(_earliest_inbound(_v1_inbound(doc.get("direct_message_events") or [], account)))
    return facts


def _activity_user_id(user: Any) -> str | None:
    # The event-payloads page nests users as `{"data": {...}}`; the OpenAPI document's
    # `FollowActivityResponsePayload` has the `User` itself. Accept both.
    if not isinstance(user, dict):
        return None
    inner = user.get("data")
    return _id_of(inner.get("id") if isinstance(inner, dict) else user.get("id"))


def _activity_api_facts(data: Any, received_at: datetime) -> list[Fact]:
    """X Activity API deliveries: `{"data": {"event_type", "filter": {"user_id"},
    "payload"}}`. Follow events carry no time: `received_at` stands in."""
    events = data if isinstance(data, list) else [data]
    facts: list[Fact] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event.get("event_type")
        payload = event.get("payload") or {}
        watched = _id_of((event.get("filter") or {}).get("user_id"))
        if kind in ("follow.follow", "follow.unfollow"):
            source = _activity_user_id(payload.get("source"))
            target = _activity_user_id(payload.get("target"))
            # Also fired when the watched user follows someone: not a follow of the account.
            if source is None or target is None or (watched and target != watched):
                continue
            if kind == "follow.follow":
                facts.append(Followed(target, source, received_at))
            else:
                facts.append(Unfollowed(target, source))
        elif kind in ("dm.received", "dm.sent"):
            facts.extend(
                _earliest_inbound(_v1_inbound(payload.get("direct_message_events") or [], watched))
            )
        elif kind == "chat.received":
            # XChat (encrypted DMs): content is opaque but sender and time are not.
            sender = _id_of(payload.get("sender_id"))
            if watched and sender and sender != watched:
                at = _epoch_ms(payload.get("created_at_msec")) or received_at
                facts.append(InboundMessage(watched, sender, at))
    return facts


def _profiles(users: list[Any]) -> list[Fact]:
    """Display names and handles of user objects, for the template `<name>` placeholder."""
    out: list[Fact] = []
    for user in users:
        if not isinstance(user, dict) or not (uid := _id_of(user.get("id"))):
            continue
        names = tuple(n for k in ("name", "username") if isinstance(n := user.get(k), str) and n)
        if names:
            out.append(Profile(uid, names))
    return out
