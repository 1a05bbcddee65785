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
from datetime import datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import unquote

from multidict import CIMultiDictProxy, MultiDictProxy

from proxy.facts import (
    ConversationMembers,
    Fact,
    Followed,
    FollowerSnapshot,
    Identity,
    InboundMessage,
    Profile,
    Unfollowed,
)
from proxy.platforms.ambiguity import check_json_request
from proxy.platforms.base import (
    BadDMRequest,
    Classified,
    Kind,
    ParsedDM,
    Platform,
    PlatformResponse,
    RequestView,
)
from proxy.platforms.ids import canonical_number, canonical_pair, number_or_none
from proxy.platforms.jsonbody import dump_json, load_json_object
from proxy.platforms.routes import (
    Route,
    RouteTable,
    authorization,
    identity_view_with_authorization,
    route_pattern,
)
from proxy.platforms.shapes import (
    JSON_CONTENT_TYPE,
    earliest_inbound,
    epoch_ms,
    iso_time,
    json_object,
    require_json,
    sendable,
    synthetic_number,
)

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


def _route(endpoint: str, method: str, kind: Kind, template: str, refused: str = "") -> Route:
    # Path parameters match any segment so that a DM to a malformed id is still a DM
    # (and refused by `parse_dm`), never forwarded unjudged. Literals match in any case
    # and with any extension (v1.1's `.json`, or `messages.json`): judging a DM X would
    # 404 is harmless, missing one X would accept is not. X serves nothing but the send
    # (POST) on its DM-send paths: other methods there are refused.
    pattern = route_pattern(template.removesuffix(".json"))
    return Route(endpoint, method, kind, pattern, refused=refused)


DM_WITH = "dm_with_participant"
DM_CONVERSATION = "dm_conversation"
DM_GROUP_CREATE = "dm_group_create"
DM_V1 = "dm_v1_new"
CHAT_SEND = "chat_send"
# XChat groups: creating one with members (`createChatConversation`, its name and
# description plain text) and adding members to one (`addChatGroupMembers`, the title
# encrypted) put people in a conversation with the sender: first contacts, judged.
CHAT_GROUP_CREATE = "chat_group_create"
CHAT_MEMBERS = "chat_members"
_CHAT_GROUP = frozenset({CHAT_GROUP_CREATE, CHAT_MEMBERS})
CHAT_CONVERSATION = "chat_conversation"
USERS_ME = "users_me"
FOLLOWERS = "followers"
V1_FOLLOWER_IDS = "v1_follower_ids"
V1_FOLLOWER_LIST = "v1_follower_list"
DM_EVENTS = "dm_events"
DM_EVENTS_WITH = "dm_events_with_participant"
DM_EVENTS_CONVERSATION = "dm_events_conversation"
V1_DM_LIST = "v1_dm_list"
# DM sends dmgate does not judge: v1.1's retired `direct_messages/new` (form parameters,
# gone since 2018) and the web client's private `dm/new.json`/`dm/new2.json`. Refused, never
# forwarded: were X to answer one, it would be a DM no policy saw.
DM_UNJUDGED = "dm_unjudged"
_UNJUDGED_WHY = "X's retired v1.1 or web-client API; send DMs with POST /2/dm_conversations/…"

_ROUTES = RouteTable(
    _route(DM_WITH, "POST", Kind.DM, "/2/dm_conversations/with/{participant_id}/messages"),
    _route(DM_CONVERSATION, "POST", Kind.DM, "/2/dm_conversations/{dm_conversation_id}/messages"),
    _route(DM_GROUP_CREATE, "POST", Kind.DM, "/2/dm_conversations"),
    _route(DM_V1, "POST", Kind.DM, "/1.1/direct_messages/events/new.json"),
    _route(CHAT_SEND, "POST", Kind.DM, "/2/chat/conversations/{id}/messages"),
    _route(CHAT_GROUP_CREATE, "POST", Kind.DM, "/2/chat/conversations/group"),
    _route(CHAT_MEMBERS, "POST", Kind.DM, "/2/chat/conversations/{id}/members"),
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
    _route(DM_UNJUDGED, "POST", Kind.DM, "/1.1/direct_messages/new.json", _UNJUDGED_WHY),
    _route(DM_UNJUDGED, "POST", Kind.DM, "/1.1/dm/new.json", _UNJUDGED_WHY),
    _route(DM_UNJUDGED, "POST", Kind.DM, "/1.1/dm/new2.json", _UNJUDGED_WHY),
    _route(DM_UNJUDGED, "POST", Kind.DM, "/i/api/1.1/dm/new.json", _UNJUDGED_WHY),
    _route(DM_UNJUDGED, "POST", Kind.DM, "/i/api/1.1/dm/new2.json", _UNJUDGED_WHY),
)


# --- JSON helpers ----------------------------------------------------------------------


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
    return sendable(text, f"{where}text")


def _chat_body(doc: dict[str, Any]) -> None:
    """`SendChatMessageRequest`: `message_id` and `encoded_message_create_event` are
    required strings (the encrypted message itself dmgate cannot read)."""
    for key in ("message_id", "encoded_message_create_event"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise BadDMRequest(f"{key} is required and must be a non-empty string", 400)
    for key in ("conversation_token", "encoded_message_event_signature"):
        if key in doc and not isinstance(doc[key], str):
            raise BadDMRequest(f"{key} must be a string", 400)


def _chat_group(endpoint: str, doc: dict[str, Any], hint: str | None) -> ParsedDM:
    """XChat group creation (`group_members`; text: `group_name` and `group_description`,
    plain text) or member additions (`user_ids`; the title is encrypted: opaque)."""
    key = "group_members" if endpoint == CHAT_GROUP_CREATE else "user_ids"
    ids = doc.get(key)
    if not isinstance(ids, list) or not ids:
        raise BadDMRequest(f"{key} must be a non-empty array", 400)
    recipients = tuple(dict.fromkeys(_user_id(i, f"{key}[]") for i in ids))
    if endpoint == CHAT_MEMBERS:
        return ParsedDM(recipients, "", account_hint=hint, opaque=True)
    parts = []
    for field in ("group_name", "group_description"):
        value = doc.get(field)
        if value is not None and not isinstance(value, str):
            raise BadDMRequest(f"{field} must be a string", 400)
        parts.append(sendable(value or "", field))
    return ParsedDM(recipients, "\n\n".join(p for p in parts if p), account_hint=hint)


def _oauth1_params(header_value: str) -> dict[str, str]:
    """`OAuth k="v", k2="v2"` parameters, percent-decoded (RFC 5849 section 3.5.1)."""
    params: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z0-9_.~%-]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))', header_value):
        key = unquote(m.group(1))
        params.setdefault(key, unquote(m.group(2) if m.group(2) is not None else m.group(3)))
    return params


# A numeric id from a JSON string/number, canonical, else None (learners never raise).
_id_of = partial(number_or_none, max_digits=_MAX_DIGITS)


def _pair_id(a: str, b: str) -> str:
    """X's 1:1 conversation id: the two user ids, smaller first."""
    if _USER_ID.fullmatch(a) and _USER_ID.fullmatch(b):
        lo, hi = sorted((a, b), key=int)
    else:
        lo, hi = sorted((a, b))
    return f"{lo}-{hi}"


def _synthetic_id(hold_id: str, purpose: str) -> str:
    """A stable 19-digit id (below 2**63, like X's snowflakes) for a held DM."""
    return synthetic_number(hold_id, purpose, low=10**18, span=8 * 10**18)


def _hmac_b64(secret: str, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


# --- the adapter -----------------------------------------------------------------------


Learner = Callable[["XPlatform", Classified, str | None, Any], list[Fact]]


class XPlatform(Platform):
    """X API v2 (and the v1.1 endpoints automation tools still call)."""

    name: ClassVar[str] = "x"
    routes: ClassVar[RouteTable] = _ROUTES

    # --- identity -----------------------------------------------------------------------

    def credential(self, req: RequestView) -> str | None:
        scheme, rest = authorization(req)
        if scheme == "bearer":
            return rest or None
        return self._oauth1_token(req)

    def account_from_request(self, call: Classified) -> str | None:
        # OAuth 1.0a access tokens are `{user id}-{random}` (tweepy relies on this too).
        # Trustworthy: X issues the token and acts as exactly that user or refuses the
        # request (401), so a made-up prefix can only name a sender whose DM X rejects.
        token = self._oauth1_token(call.request)
        if token is None or "-" not in token:
            return None
        return _id_of(token.split("-", 1)[0])

    def whoami(self, call: Classified) -> RequestView | None:
        """`GET /2/users/me` with the request's OAuth 2.0 bearer token. None for OAuth
        1.0a: its signature covers the method and URL, so the header cannot be replayed on
        another call, and the token names its user already (`account_from_request`)."""
        return identity_view_with_authorization(call.request, "/2/users/me")

    def _oauth1_token(self, req: RequestView) -> str | None:
        scheme, rest = authorization(req)
        if scheme == "oauth":
            token = _oauth1_params(rest).get("oauth_token")
            if token:
                return token
        if scheme == "bearer":
            return None
        return req.query.get("oauth_token") or None

    # --- DM requests --------------------------------------------------------------------

    def parse_dm(self, call: Classified, body: bytes) -> ParsedDM:
        endpoint, params = call.dm_endpoint("an X DM send"), call.params
        # X's DM endpoints take JSON only; some tools send no Content-Type at all.
        require_json(call.request, "DM requests")
        doc = load_json_object(body)
        check_json_request(call.request, doc)
        hint = self.account_from_request(call)
        if endpoint == DM_WITH:
            recipient = _user_id(params["participant_id"], "participant_id")
            return ParsedDM((recipient,), _message_text(doc, ""), account_hint=hint)
        if endpoint == DM_CONVERSATION:
            text = _message_text(doc, "")
            # For `A-B` the sender is one of the two; `recipients_for` drops it once known.
            recipients, conversation = _conversation(params["dm_conversation_id"])
            return ParsedDM(recipients, text, account_hint=hint, conversation_id=conversation)
        if endpoint == CHAT_SEND:
            _chat_body(doc)
            recipients, conversation = _chat_conversation(params["id"])
            return ParsedDM(
                recipients, "", account_hint=hint, conversation_id=conversation, opaque=True
            )
        if endpoint in _CHAT_GROUP:
            return _chat_group(endpoint, doc, hint)
        if endpoint == DM_GROUP_CREATE:
            ids = doc.get("participant_ids")
            if not isinstance(ids, list) or not ids:
                raise BadDMRequest("participant_ids must be a non-empty array", 400)
            recipients = tuple(dict.fromkeys(_user_id(i, "participant_ids[]") for i in ids))
            message = json_object(doc, "message", "")
            return ParsedDM(recipients, _message_text(message, "message."), account_hint=hint)
        # v1.1 direct_messages/events/new
        event = json_object(doc, "event", "")
        if event.get("type") != "message_create":
            raise BadDMRequest("event.type must be 'message_create'", 400)
        create = json_object(event, "message_create", "event.")
        target = json_object(create, "target", "event.message_create.")
        recipient = _user_id(target.get("recipient_id"), "event.message_create.target.recipient_id")
        data = json_object(create, "message_data", "event.message_create.")
        text = _message_text(data, "event.message_create.message_data.", "attachment")
        return ParsedDM((recipient,), text, account_hint=hint)

    def recipients_for(self, dm: ParsedDM, account: str) -> tuple[str, ...]:
        """Drop the sender from an `A-B` conversation id; if the account is neither A nor
        B, the conversation id itself stands for the recipient."""
        if dm.conversation_id and _ONE_TO_ONE.fullmatch(dm.conversation_id):
            if account not in dm.recipients:
                return (dm.conversation_id,)
        return super().recipients_for(dm, account)

    def replace_text(self, call: Classified, body: bytes, text: str) -> bytes:
        self.parse_dm(call, body)  # the same validation, so the edit lands in a sane body
        endpoint = call.endpoint
        if endpoint == CHAT_SEND:
            raise BadDMRequest(
                "XChat messages are end-to-end encrypted: dmgate cannot edit their text; "
                "approve the message unedited or reject it",
                422,
            )
        if endpoint in _CHAT_GROUP:
            raise BadDMRequest(
                "an XChat group's name and members are not edited by dmgate: approve it "
                "unedited or reject it",
                422,
            )
        doc = load_json_object(body)
        if endpoint == DM_V1:
            message = doc["event"]["message_create"]["message_data"]
            has_attachment = bool(message.get("attachment"))
        else:
            message = doc["message"] if endpoint == DM_GROUP_CREATE else doc
            has_attachment = bool(message.get("attachments"))
        if text:
            message["text"] = text
        elif has_attachment and endpoint != DM_V1:
            message.pop("text", None)  # v2 `text` has minLength 1
        elif has_attachment:
            message["text"] = ""
        else:
            raise BadDMRequest("the edited text is empty and the DM has no attachment", 422)
        return dump_json(doc)

    # --- answers on X's behalf ------------------------------------------------------------

    def hold_response(
        self, call: Classified, dm: ParsedDM, account: str, hold_id: str
    ) -> PlatformResponse:
        name = call.endpoint
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
        if name == CHAT_GROUP_CREATE:
            # `createChatConversation`: 201 with the conversation's canonical id.
            data = {"conversation_id": CHAT_GROUP_PREFIX + _synthetic_id(hold_id, "chat_group")}
            return PlatformResponse(
                201, {"data": data, "dmgate": marker}, content_type=JSON_CONTENT_TYPE
            )
        if name == CHAT_MEMBERS:
            return PlatformResponse(200, {"data": {}, "dmgate": marker}, JSON_CONTENT_TYPE)
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

    def block_response(self, call: Classified, reason: str) -> PlatformResponse:
        marker = {"decision": "block", "reason": reason}
        if call.endpoint == DM_V1:
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
        # X's own JSON type (not `application/problem+json`): tweepy parses any body, but
        # twitter-api-v2 (Node) only parses bodies whose type contains `application/json`,
        # and the OpenAPI document allows both types for error responses.
        return PlatformResponse(403, body, content_type=JSON_CONTENT_TYPE)

    # --- signals --------------------------------------------------------------------------

    def learn_from(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        return _LEARNERS[call.endpoint](self, call, account, doc)

    def _learn_chat_conversation(
        self, call: Classified, account: str | None, doc: Any
    ) -> list[Fact]:
        """`GET /2/chat/conversations/{id}`: the members of an XChat group, so a send to
        `g{digits}` is judged against the people in it."""
        path_id = call.params["id"].strip()
        if path_id[:1] not in ("g", "G") or not isinstance(doc.get("data"), dict):
            return []
        group = _id_of(path_id[1:])
        data = doc["data"]
        ids = data.get("member_ids") or data.get("participant_ids") or []
        members = tuple(dict.fromkeys(i for x in ids if (i := _id_of(x))))
        if group is None or not members:
            return []
        return [ConversationMembers(CHAT_GROUP_PREFIX + group, members)]

    def _learn_me(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        user = doc.get("data", {})
        user_id = _id_of(user.get("id"))
        return [Identity(user_id), *_profiles([user])] if user_id else []

    def _learn_followers(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        owner = _id_of(call.params["id"])
        if owner is None or not isinstance(doc, dict):
            return []
        users = doc.get("data") or []  # X omits `data` when there are no followers
        followers = tuple(i for u in users if isinstance(u, dict) and (i := _id_of(u.get("id"))))
        first = not call.request.query.get("pagination_token")
        return [FollowerSnapshot(owner, followers, first_page=first), *_profiles(users)]

    def _v1_follower_owner(self, req: RequestView, account: str | None) -> str | None:
        if "user_id" in req.query:
            return _id_of(req.query["user_id"])
        if "screen_name" in req.query:
            return None  # a handle, not an id: nothing to attach the list to
        return account  # no user named: the authenticating user's followers

    def _learn_v1_follower_ids(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        owner = self._v1_follower_owner(call.request, account)
        if owner is None:
            return []
        followers = tuple(i for x in doc.get("ids") or [] if (i := _id_of(x)))
        first = call.request.query.get("cursor", "-1") == "-1"
        return [FollowerSnapshot(owner, followers, first_page=first)]

    def _learn_v1_follower_list(
        self, call: Classified, account: str | None, doc: Any
    ) -> list[Fact]:
        owner = self._v1_follower_owner(call.request, account)
        if owner is None:
            return []
        users = doc.get("users") or []
        followers = tuple(
            i for u in users if isinstance(u, dict) and (i := _id_of(u.get("id_str", u.get("id"))))
        )
        first = call.request.query.get("cursor", "-1") == "-1"
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

    def _learn_dm_events(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        """v2 DM lookups. `sender_id`, `created_at` and `dm_conversation_id` are only in
        the answer when the tool asked for them (`dm_event.fields`)."""
        path_peer = _id_of(call.params.get("participant_id"))
        path_conversation = call.params.get("id")
        facts: list[InboundMessage] = []
        for event in doc.get("data") or []:
            if not isinstance(event, dict):
                continue
            if event.get("event_type", "MessageCreate") != "MessageCreate":
                continue
            sender = _id_of(event.get("sender_id"))
            if sender is None:
                continue
            at = iso_time(event.get("created_at"))
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
        return earliest_inbound(facts)

    def _learn_v1_dm_list(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        return earliest_inbound(_v1_inbound(doc.get("events") or [], account))

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
        facts.append(InboundMessage(recipient, sender, epoch_ms(event.get("created_timestamp"))))
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
            at = epoch_ms(event.get("created_timestamp")) or received_at
            facts.append(Followed(account, source, at))
        elif event.get("type") == "unfollow":
            facts.append(Unfollowed(account, source))
    facts.extend(earliest_inbound(_v1_inbound(doc.get("direct_message_events") or [], account)))
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
                earliest_inbound(_v1_inbound(payload.get("direct_message_events") or [], watched))
            )
        elif kind == "chat.received":
            # XChat (encrypted DMs): content is opaque but sender and time are not.
            sender = _id_of(payload.get("sender_id"))
            if watched and sender and sender != watched:
                at = epoch_ms(payload.get("created_at_msec")) or received_at
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
            out.append(
                Profile.seen(
                    uid,
                    names,
                    username=user.get("username"),
                    name=user.get("name"),
                    description=user.get("description"),
                    location=user.get("location"),
                )
            )
    return out
