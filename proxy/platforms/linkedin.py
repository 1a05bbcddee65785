"""LinkedIn: the official Messages API and the Voyager API automation tools use, told apart
by path (one adapter serves both default routes, `linkedin` and `linkedin-web`).

Official API (partners only; learn.microsoft.com/linkedin/shared/integrations/
communications/messages): `POST /v2/messages` with `{"recipients": ["urn:li:person:…"],
"subject", "body", "messageType", "attachments"}` or, for a reply, `thread` instead of
`recipients`. `/rest/messages` (the versioned host path) is judged the same way: the page
does not name it, and judging a send LinkedIn would 404 is harmless, missing one it would
accept is not. Identity: `GET /v2/me` (`id`) or `GET /v2/userinfo` (OpenID `sub`).

Voyager (tomquirk/linkedin-api `linkedin_api/linkedin.py`, `send_message`):
`POST /voyager/api/messaging/conversations?action=create` with `{"keyVersion",
"conversationCreate": {"eventCreate": {"value": {"com.linkedin.voyager.messaging.create.
MessageCreate": {"attributedBody": {"text"}, "attachments"}}}, "recipients": [profile
ids], "subtype"}}`, and `POST /voyager/api/messaging/conversations/{id}/events?action=create`
with `{"eventCreate": {...}}` for an existing conversation. The library sends these with
`data=json.dumps(...)`, so without a Content-Type: the body is parsed as JSON anyway.
Identity: `GET /voyager/api/me` (`miniProfile.entityUrn`); conversation members from
`GET /voyager/api/messaging/conversations[/{id}]` answers. LinkedIn's own web client (and
newer tools) send through `POST /voyager/api/voyagerMessagingDashMessengerMessages
?action=createMessage` with `{"message": {"body": {"text"}, "conversationUrn"?},
"mailboxUrn", "hostRecipientUrns"?}`, answered 200 with the message in `value`: judged too.

Connection invitations are first contacts: a note is a message to a person who has never
written (recipient = the invitee, text = the note), and an invitation without a note is a
first contact with no text (`burst` counts it). Voyager's
`POST /voyager/api/voyagerRelationshipsDashMemberRelationships?action=verifyQuotaAndCreateV2`
(LinkedIn's web client; tomquirk/linkedin-api `add_connection`) with `{"invitee":
{"inviteeUnion": {"memberProfile": URN}}, "customMessage"}`, answered 200 (linkedin-api
treats anything else as a failure); the legacy `POST /voyager/api/growth/normInvitations`
with `{"invitee": {"com.linkedin.voyager.growth.invitation.InviteeProfile": {"profileId"}},
"message"}`, a Rest.li create answered 201. Sales Navigator (same host and session):
`POST /sales-api/salesApiConnection?action=connectV2` `{"member", "message"}` (200) and
messages/InMail `POST /sales-api/salesApiMessageActions?action=createMessage`
`{"createMessageRequest": {"subject", "body", "recipients" | "threadId"}}` (200, ids in
`value`). Everywhere on LinkedIn a `subject` is part of the judged text (`subject`, a blank
line, the body); a reviewer's edit writes its first paragraph back as the subject.

Member ids are kept bare: `urn:li:person:abc` → `abc`, `urn:li:fs_miniProfile:ACoAA…` and
`urn:li:fsd_profile:ACoAA…` → `ACoAA…` (Voyager's profile id, what `me` and conversation
answers name too), whatever the case of the `urn:li:<type>:` prefix and however often the
URN was percent-encoded (`urn%3Ali%3Aperson%3Aabc`); the id itself keeps its case (LinkedIn
ids are case-sensitive). Other URNs (`urn:li:member:123`) are kept whole, `urn:li:` in
lower case. Conversation ids are kept bare too (`urn:li:fs_conversation:2-X` → `2-X`).

Methods: only POST sends. Other methods on the official send paths are refused (405); on
Voyager's send paths GET and HEAD pass as before (Rest.li reads never create: the
conversation list and events are signals), anything else is refused.

The sender is never taken from the request: the Voyager cookie and the OAuth token are
opaque, and `mailboxUrn` in a body is only the tool's claim. `whoami` asks LinkedIn:
`GET /v2/me` for official-API routes, `GET /voyager/api/me` for Voyager ones.

Not learnt: connection/invitation acceptance. Accepting an invitation
(`POST /voyager/api/relationships/invitations/{id}?action=accept`) names only the
invitation, never the member, so there is no follow fact to record from it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, ClassVar

from proxy.facts import ConversationMembers, Fact, Identity, InboundMessage, Profile
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
from proxy.platforms.ids import percent_decoded
from proxy.platforms.jsonbody import dump_json, load_json_object
from proxy.platforms.routes import (
    SAFE_READS,
    Route,
    RouteTable,
    authorization,
    copy_headers,
    identity_view,
    identity_view_with_authorization,
    route_pattern,
)
from proxy.platforms.shapes import (
    earliest_inbound,
    epoch_ms,
    json_object,
    media_type,
    sendable,
    synthetic_number,
)

MESSAGE_CREATE = "com.linkedin.voyager.messaging.create.MessageCreate"
MESSAGING_MEMBER = "com.linkedin.voyager.messaging.MessagingMember"

# URN types whose id is a member/profile id, stripped to that id. The prefix matches in
# any case (URN schemes and namespaces are case-insensitive, RFC 8141); the id keeps its.
_PROFILE_URN = re.compile(
    r"(?i:urn:li:(?:person|fs_miniProfile|fsd_profile|fs_profile|fs_normalized_profile)):(.+)"
)
_CONVERSATION_URN = re.compile(
    r"(?i:urn:li:(?:fs_conversation|messagingThread|msg_thread)):(.+)"
    # The messenger ("dash") form names the mailbox owner and the thread.
    r"|(?i:urn:li:msg_conversation):\((?i:urn:li):[A-Za-z_]+:[^,]+,(.+)\)"
)
# Sales Navigator names a lead `urn:li:fs_salesProfile:(ACwAA…,NAME_SEARCH,abc)`: the
# first element is the member's Sales Navigator id, which `member` in a connect names bare.
_SALES_PROFILE_URN = re.compile(r"(?i:urn:li:fs_salesProfile):\(([^,()]+)(?:,[^()]*)?\)")
_URN_PREFIX = re.compile(r"(?i:urn:li):")
_ID_CHARS = re.compile(r"[^\s/?#]{1,200}")

OFFICIAL_SEND = "official_send"
VOYAGER_CREATE = "voyager_create"
VOYAGER_EVENT = "voyager_event"
VOYAGER_DASH_SEND = "voyager_dash_send"
VOYAGER_INVITE = "voyager_invite"
VOYAGER_NORM_INVITE = "voyager_norm_invite"
SALES_MESSAGE = "sales_message"
SALES_CONNECT = "sales_connect"
OFFICIAL_INVITE = "official_invite"
# A Rest.li partial update of a sent message (`POST …/voyagerMessagingDashMessengerMessages/
# {urn}` with `{"patch": {"$set": {"body": …}}}`): an edit that turns a harmless message into
# a pitch after it was judged. Refused, never forwarded.
VOYAGER_EDIT = "voyager_edit"
OFFICIAL_ME = "official_me"
OFFICIAL_USERINFO = "official_userinfo"
VOYAGER_ME = "voyager_me"
VOYAGER_CONVERSATIONS = "voyager_conversations"
VOYAGER_CONVERSATION = "voyager_conversation"
VOYAGER_EVENTS = "voyager_events"


def _actions(req: RequestView) -> list[str]:
    """The Rest.li `action` parameters, lower-cased (a server that folds case must not
    turn `?action=CREATE` into an unjudged send)."""
    return [v.lower() for k, v in req.query.items() if k.lower() == "action"]


def _action(*names: str) -> Callable[[RequestView], bool]:
    """Voyager's Rest.li actions: the `action` query parameter names the verb, and a POST
    with no action is a plain create, which is a send too. Any of `names` among repeated
    actions is judged: which one LinkedIn reads is not documented, and erring towards "a
    send" is the safe side."""

    def names_it(req: RequestView) -> bool:
        actions = _actions(req)
        return not actions or any(name in actions for name in names)

    return names_it


_CONVERSATIONS = "/voyager/api/messaging/conversations"
# Rest.li answers GET (and HEAD) with reads only, never a create: on Voyager's send paths
# they pass as before (the conversation list and events are signals).
_VOYAGER_READS = SAFE_READS
# The other methods on the official send paths are refused.
_ROUTES = RouteTable(
    Route(OFFICIAL_SEND, "POST", Kind.DM, route_pattern("/v2/messages", "/rest/messages")),
    Route(
        VOYAGER_CREATE,
        "POST",
        Kind.DM,
        route_pattern(_CONVERSATIONS),
        reads=_VOYAGER_READS,
        when=_action("create"),
    ),
    Route(
        VOYAGER_EVENT,
        "POST",
        Kind.DM,
        route_pattern(_CONVERSATIONS + "/{id}/events"),
        reads=_VOYAGER_READS,
        when=_action("create"),
    ),
    Route(
        VOYAGER_DASH_SEND,
        "POST",
        Kind.DM,
        route_pattern("/voyager/api/voyagerMessagingDashMessengerMessages"),
        reads=_VOYAGER_READS,
        when=_action("createmessage"),
    ),
    # Connection invitations: a note is a first message to someone who never wrote, and
    # one without a note is still a first contact (`burst` counts it).
    Route(
        VOYAGER_INVITE,
        "POST",
        Kind.DM,
        route_pattern("/voyager/api/voyagerRelationshipsDashMemberRelationships"),
        reads=_VOYAGER_READS,
        when=_action("verifyquotaandcreatev2", "verifyquotaandcreate", "create"),
    ),
    Route(
        VOYAGER_NORM_INVITE,
        "POST",
        Kind.DM,
        route_pattern("/voyager/api/growth/normInvitations"),
        reads=_VOYAGER_READS,
    ),
    # Sales Navigator (same host and session as Voyager): messages and InMail, and
    # connection requests with a note.
    Route(
        SALES_MESSAGE,
        "POST",
        Kind.DM,
        route_pattern("/sales-api/salesApiMessageActions"),
        reads=_VOYAGER_READS,
        when=_action("createmessage"),
    ),
    Route(
        SALES_CONNECT,
        "POST",
        Kind.DM,
        route_pattern("/sales-api/salesApiConnection"),
        reads=_VOYAGER_READS,
        when=_action("connectv2", "connect"),
    ),
    # The partner API's connection requests: `{"invitee": "urn:li:person:…", "message":
    # {"com.linkedin.invitations.InvitationMessage": {"body": "…"}}}`.
    Route(OFFICIAL_INVITE, "POST", Kind.DM, route_pattern("/v2/invitations", "/rest/invitations")),
    Route(
        VOYAGER_EDIT,
        "POST",
        Kind.DM,
        route_pattern("/voyager/api/voyagerMessagingDashMessengerMessages/{urn}"),
        reads=_VOYAGER_READS,
        refused="an edit of a sent message; send a new message instead",
    ),
    Route(OFFICIAL_ME, "GET", Kind.SIGNAL, route_pattern("/v2/me", "/rest/me")),
    Route(OFFICIAL_USERINFO, "GET", Kind.SIGNAL, route_pattern("/v2/userinfo")),
    Route(VOYAGER_ME, "GET", Kind.SIGNAL, route_pattern("/voyager/api/me")),
    Route(VOYAGER_CONVERSATIONS, "GET", Kind.SIGNAL, route_pattern(_CONVERSATIONS)),
    Route(VOYAGER_CONVERSATION, "GET", Kind.SIGNAL, route_pattern(_CONVERSATIONS + "/{id}")),
    Route(VOYAGER_EVENTS, "GET", Kind.SIGNAL, route_pattern(_CONVERSATIONS + "/{id}/events")),
)
# The Voyager endpoints (a session cookie), as opposed to the official API's (OAuth).
_VOYAGER = frozenset(
    {
        VOYAGER_CREATE,
        VOYAGER_EVENT,
        VOYAGER_DASH_SEND,
        VOYAGER_INVITE,
        VOYAGER_NORM_INVITE,
        SALES_MESSAGE,
        SALES_CONNECT,
        VOYAGER_ME,
        VOYAGER_CONVERSATIONS,
        VOYAGER_CONVERSATION,
        VOYAGER_EVENTS,
    }
)

# Connection requests and the body keys their note may travel in (one at most: a body
# with two is refused, since which one LinkedIn reads is not documented).
# Every endpoint reads both keys: a tool putting its note in the key another endpoint uses
# must not have it pass unjudged because dmgate looked only at its own (a red-team finding:
# `verifyQuotaAndCreateV2` with `message`, `connectV2` with `customMessage`).
_NOTE_FIELDS: dict[str, tuple[str, ...]] = {
    VOYAGER_INVITE: ("customMessage", "message"),
    VOYAGER_NORM_INVITE: ("message", "customMessage"),
    SALES_CONNECT: ("message", "customMessage"),
}
_INVITATIONS = frozenset(_NOTE_FIELDS)
INVITEE_PROFILE = "com.linkedin.voyager.growth.invitation.InviteeProfile"


# --- small helpers ---------------------------------------------------------------------


def member_id(value: Any) -> str | None:
    """A member/profile id in dmgate's form (bare id), or None if `value` is not one."""
    if not isinstance(value, str):
        return None
    value = percent_decoded(value.strip()).strip()
    m = _PROFILE_URN.fullmatch(value) or _SALES_PROFILE_URN.fullmatch(value)
    if m:
        value = m.group(1).strip()
    else:
        value = _URN_PREFIX.sub("urn:li:", value, count=1) if _URN_PREFIX.match(value) else value
    return value if _ID_CHARS.fullmatch(value) else None


def conversation_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = percent_decoded(value.strip()).strip()
    m = _CONVERSATION_URN.fullmatch(value)
    if m:
        value = (m.group(1) or m.group(2)).strip()
    return value if _ID_CHARS.fullmatch(value) else None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadDMRequest(f"{where} must be a string", 400)
    return sendable(value, where)


def _synthetic(hold_id: str, purpose: str) -> str:
    """A stable id for a held DM."""
    return synthetic_number(hold_id, purpose, low=6 * 10**18, span=2**56, size=7)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            value = value.strip().strip('"')
            return value or None
    return None


# --- the adapter -----------------------------------------------------------------------


class LinkedInPlatform(Platform):
    """LinkedIn's official Messages API and the Voyager messaging calls."""

    name: ClassVar[str] = "linkedin"
    routes: ClassVar[RouteTable] = _ROUTES

    def credential(self, req: RequestView) -> str | None:
        scheme, rest = authorization(req)
        if scheme == "bearer" and rest:
            return rest
        # Voyager: the `li_at` session cookie is the member's login (JSESSIONID is only
        # the CSRF pairing and changes independently).
        return self._li_at(req)

    def _li_at(self, req: RequestView) -> str | None:
        for header in req.headers.getall("Cookie", []):
            value = _cookie(header, "li_at")
            if value:
                return value
        return None

    # account_from_request stays None: neither an OAuth token nor the `li_at` cookie
    # names its member, and a body's `mailboxUrn` is only what the tool claims.

    def whoami(self, call: Classified) -> RequestView | None:
        """`GET /v2/me` (official API: the OAuth token) or `GET /voyager/api/me` (Voyager:
        the session cookies with the CSRF token LinkedIn checks on every call), chosen by
        the DM request's endpoint."""
        req = call.request
        if call.endpoint not in _VOYAGER:
            return identity_view_with_authorization(req, "/v2/me")
        li_at = self._li_at(req)
        if li_at is None or self.credential(req) != li_at:
            return None  # the answer must be about the credential dmgate keys it to
        names = ["Cookie", "csrf-token", "x-restli-protocol-version"]
        names += sorted({k.lower() for k in req.headers if k.lower().startswith("x-li-")})
        # The client's User-Agent too: a session cookie suddenly used by another client
        # is what LinkedIn's abuse checks look for, and it is no secret.
        names.append("User-Agent")
        return identity_view("/voyager/api/me", copy_headers(req, names))

    # --- DM requests --------------------------------------------------------------------

    def _check_content_type(self, req: RequestView, voyager: bool) -> None:
        media = media_type(req)
        if media is None or media == "application/json":
            return
        # Voyager clients send JSON as whatever their HTTP library picks: none, text/plain
        # (fetch with a string body) or LinkedIn's own `application/vnd.linkedin…+json`.
        if voyager and (media == "text/plain" or "json" in media):
            return
        raise BadDMRequest(f"LinkedIn message sends must be JSON, got {media!r}", 415)

    def parse_dm(self, call: Classified, body: bytes) -> ParsedDM:
        endpoint = call.dm_endpoint("a LinkedIn message send")
        official = endpoint in (OFFICIAL_SEND, OFFICIAL_INVITE)
        self._check_content_type(call.request, voyager=not official)
        doc = load_json_object(body)
        check_json_request(call.request, doc)
        if endpoint == OFFICIAL_SEND:
            return self._parse_official(doc)
        if endpoint == OFFICIAL_INVITE:
            return _parse_official_invitation(doc)
        if endpoint == VOYAGER_DASH_SEND:
            return _parse_dash(doc)
        if endpoint in _INVITATIONS:
            return _parse_invitation(endpoint, doc)
        if endpoint == SALES_MESSAGE:
            return _parse_sales_message(doc)
        if endpoint == VOYAGER_CREATE:
            create = json_object(doc, "conversationCreate", "")
            recipients = _recipients(create.get("recipients"), "conversationCreate.recipients")
            text = _voyager_text(json_object(create, "eventCreate", "conversationCreate."))
            return ParsedDM(recipients, text)
        path_id = call.params["id"]
        conversation = conversation_id(path_id)
        if conversation is None:
            raise BadDMRequest(f"conversation id {path_id!r} is not valid", 400)
        text = _voyager_text(json_object(doc, "eventCreate", ""))
        return ParsedDM((), text, conversation_id=conversation)

    def _parse_official(self, doc: dict[str, Any]) -> ParsedDM:
        body = doc.get("body")
        if body is None:
            if not doc.get("attachments"):
                raise BadDMRequest("body is required", 400)
            body = ""
        text = with_subject(doc, _text(body, "body"), "subject")
        has_recipients = "recipients" in doc
        thread = doc.get("thread")
        if has_recipients == (thread is not None):
            raise BadDMRequest("exactly one of recipients and thread is required", 400)
        if has_recipients:
            return ParsedDM(_recipients(doc["recipients"], "recipients"), text)
        conversation = conversation_id(thread)
        if conversation is None:
            raise BadDMRequest(f"thread must be a thread URN, got {thread!r}", 400)
        return ParsedDM((), text, conversation_id=conversation)

    def replace_text(self, call: Classified, body: bytes, text: str) -> bytes:
        self.parse_dm(call, body)  # the same validation, so the edit lands in a sane body
        endpoint = call.endpoint
        doc = load_json_object(body)
        if endpoint in _INVITATIONS:
            note = _NOTE_FIELDS[endpoint]
            key = next((k for k in note if k in doc), note[0])
            doc[key] = text  # "" sends the invitation without a note
            return dump_json(doc)
        if endpoint == OFFICIAL_INVITE:
            if text:
                doc["message"] = {INVITATION_MESSAGE: {"body": text}}
            else:
                doc.pop("message", None)  # "" sends the invitation without a note
            return dump_json(doc)
        if endpoint == SALES_MESSAGE:
            request = doc["createMessageRequest"]
            request["body"] = split_subject(request, text, "createMessageRequest.")
            return dump_json(doc)
        if endpoint == OFFICIAL_SEND:
            body_text = split_subject(doc, text, "")
            if not body_text and not doc.get("attachments"):
                raise BadDMRequest(
                    "the edited text is empty and the message has no attachment", 422
                )
            doc["body"] = body_text
            return dump_json(doc)
        if endpoint == VOYAGER_DASH_SEND:
            body = doc["message"]["body"]
            text = split_subject(doc["message"], text, "message.")
            if not text and not doc["message"].get("renderContentUnions"):
                raise BadDMRequest(
                    "the edited text is empty and the message has no attachment", 422
                )
            body["text"] = text
            body["attributes"] = []  # they index into the old text
            return dump_json(doc)
        holder = doc["conversationCreate"] if endpoint == VOYAGER_CREATE else doc
        create = holder["eventCreate"]["value"][MESSAGE_CREATE]
        text = split_subject(create, text, "MessageCreate.")
        if not text and not create.get("attachments"):
            raise BadDMRequest("the edited text is empty and the message has no attachment", 422)
        if isinstance(create.get("attributedBody"), dict):
            create["attributedBody"]["text"] = text
            # Attributes (mentions, bold) index into the old text: they would point at
            # arbitrary spans of the edit.
            create["attributedBody"]["attributes"] = []
        else:
            create["body"] = text
        return dump_json(doc)

    # --- answers on LinkedIn's behalf ---------------------------------------------------

    def hold_response(
        self, call: Classified, dm: ParsedDM, account: str, hold_id: str
    ) -> PlatformResponse:
        marker = {"hold_id": hold_id, "status": "pending"}
        if call.endpoint not in _VOYAGER:
            # Rest.li create: 201, the new entity's id in `x-restli-id` (and the older
            # `x-linkedin-id`). The body is empty on LinkedIn; clients read the header, so
            # a JSON body carrying the id and the marker is tolerated.
            message_id = f"2-{_synthetic(hold_id, 'message')}"
            return PlatformResponse(
                201,
                {"id": message_id, "dmgate": marker},
                headers={"x-restli-id": message_id, "x-linkedin-id": message_id},
            )
        if call.endpoint == VOYAGER_DASH_SEND:
            return self._dash_hold(dm, account, hold_id, marker)
        if call.endpoint in _INVITATIONS:
            return _invitation_hold(call, hold_id, marker)
        if call.endpoint == SALES_MESSAGE:
            # Sales Navigator answers the action 200 with the message and thread ids in
            # `value` (what automation code reads back); clients check the status.
            thread = dm.conversation_id or f"2-{_synthetic(hold_id, 'conversation')}"
            value = {"messageId": f"2-{_synthetic(hold_id, 'message')}", "threadId": thread}
            return PlatformResponse(200, {"value": value, "dmgate": marker})
        # Voyager's create answer (`{"value": {...}}`); tomquirk/linkedin-api checks the
        # status only (`res.status_code != 201`), bridges read `value`'s URNs.
        conversation = dm.conversation_id or f"2-{_synthetic(hold_id, 'conversation')}"
        event = f"5-{_synthetic(hold_id, 'event')}"
        value = {
            "eventUrn": f"urn:li:fs_event:({conversation},{event})",
            "backendEventUrn": f"urn:li:messagingMessage:{event}",
            "conversationUrn": f"urn:li:fs_conversation:{conversation}",
            "backendConversationUrn": f"urn:li:messagingThread:{conversation}",
            "createdAt": int(time.time() * 1000),
        }
        return PlatformResponse(201, {"value": value, "dmgate": marker})

    def _dash_hold(
        self, dm: ParsedDM, account: str, hold_id: str, marker: dict[str, str]
    ) -> PlatformResponse:
        # The messenger endpoint answers 200 with the created message in `value`
        # (clients check `response.ok` and `value.entityUrn`).
        conversation = dm.conversation_id or f"2-{_synthetic(hold_id, 'conversation')}"
        mailbox = f"urn:li:fsd_profile:{account}"
        value = {
            "entityUrn": f"urn:li:msg_message:({mailbox},2-{_synthetic(hold_id, 'message')})",
            "conversationUrn": f"urn:li:msg_conversation:({mailbox},{conversation})",
            "deliveredAt": int(time.time() * 1000),
            "body": {"text": dm.text, "attributes": []},
        }
        return PlatformResponse(200, {"value": value, "dmgate": marker})

    def block_response(self, call: Classified, reason: str) -> PlatformResponse:
        # Rest.li's error shape, as api.linkedin.com answers a missing permission
        # (`serviceErrorCode` 100, "Not enough permissions to access: …"). Voyager answers
        # errors in the same Rest.li shape; tomquirk/linkedin-api reads `status`/`message`.
        body = {
            "status": 403,
            "serviceErrorCode": 100,
            "code": "ACCESS_DENIED",
            "message": reason,
            "dmgate": {"decision": "block", "reason": reason},
        }
        return PlatformResponse(403, body)

    # --- signals ------------------------------------------------------------------------

    def learn_from(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        if not isinstance(doc, dict):
            return []
        endpoint = call.endpoint
        if endpoint == OFFICIAL_ME:
            return _learn_official_me(doc, "id")
        if endpoint == OFFICIAL_USERINFO:
            return _learn_official_me(doc, "sub")
        if endpoint == VOYAGER_ME:
            return _learn_voyager_me(doc)
        if endpoint in (VOYAGER_CONVERSATIONS, VOYAGER_CONVERSATION):
            return _learn_conversations(doc, account, conversation_id(call.params.get("id")))
        return _learn_events(doc, account)


# --- parsing pieces --------------------------------------------------------------------


def _recipients(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BadDMRequest(f"{where} must be a non-empty array", 400)
    out: list[str] = []
    for item in value:
        rid = member_id(item)
        if rid is None:
            raise BadDMRequest(f"{where}[] must be member ids or URNs, got {item!r}", 400)
        out.append(rid)
    return tuple(dict.fromkeys(out))


def _parse_dash(doc: dict[str, Any]) -> ParsedDM:
    """`voyagerMessagingDashMessengerMessages?action=createMessage`, what LinkedIn's own web
    client sends: `{"message": {"body": {"text", "attributes"}, "renderContentUnions",
    "conversationUrn"?}, "mailboxUrn", "hostRecipientUrns"?}`. A new conversation names
    `hostRecipientUrns`; a reply names `message.conversationUrn`."""
    message = json_object(doc, "message", "")
    body = json_object(message, "body", "message.")
    text = body.get("text")
    if text is None or text == "":
        if not message.get("renderContentUnions"):
            raise BadDMRequest("message.body.text or message.renderContentUnions is required", 400)
        text = ""
    text = with_subject(message, _text(text, "message.body.text"), "message.subject")
    if doc.get("hostRecipientUrns") is not None:
        return ParsedDM(_recipients(doc["hostRecipientUrns"], "hostRecipientUrns"), text)
    conversation = conversation_id(message.get("conversationUrn"))
    if conversation is None:
        raise BadDMRequest("hostRecipientUrns or message.conversationUrn is required", 400)
    return ParsedDM((), text, conversation_id=conversation)


def _voyager_text(event_create: dict[str, Any]) -> str:
    value = json_object(event_create, "value", "eventCreate.")
    create = json_object(value, MESSAGE_CREATE, "eventCreate.value.")
    where = f"eventCreate.value[{MESSAGE_CREATE!r}]."
    attributed = create.get("attributedBody")
    if attributed is not None:
        if not isinstance(attributed, dict):
            raise BadDMRequest(f"{where}attributedBody must be an object", 400)
        text = attributed.get("text")
        field = "attributedBody.text"
    else:
        text = create.get("body")  # the older MessageCreate shape
        field = "body"
    if text is None or text == "":
        if not create.get("attachments"):
            raise BadDMRequest(f"{where}{field} or {where}attachments is required", 400)
        return with_subject(create, "", where + "subject")
    return with_subject(create, _text(text, where + field), where + "subject")


# --- subjects, invitations, Sales Navigator --------------------------------------------

SUBJECT_SEPARATOR = "\n\n"


def with_subject(holder: dict[str, Any], body: str, where: str) -> str:
    """The text a recipient reads: the `subject` (official messages, InMail, Sales
    Navigator), a blank line, then the body. Without a subject, the body alone."""
    subject = holder.get("subject")
    if subject is None or subject == "":
        return body
    subject = _text(subject, where)
    return subject + SUBJECT_SEPARATOR + body if body else subject


def split_subject(holder: dict[str, Any], text: str, where: str) -> str:
    """A reviewer's edit of a text `with_subject` made, written back: the first paragraph
    becomes the subject (unchanged if the edit kept it), the rest the body, which is
    returned. An edit with no paragraph break where a subject was is refused (422)."""
    subject = holder.get("subject")
    if subject is None or subject == "":
        return text
    if text.startswith(subject + SUBJECT_SEPARATOR):
        return text[len(subject) + len(SUBJECT_SEPARATOR) :]
    if text == subject:
        return ""
    new_subject, sep, body = text.partition(SUBJECT_SEPARATOR)
    if not sep or not new_subject.strip():
        raise BadDMRequest(
            f"this message has a subject ({where}subject): keep it as the edit's first "
            "paragraph (subject, a blank line, then the body)",
            422,
        )
    holder["subject"] = new_subject
    return body


def _note(doc: dict[str, Any], keys: tuple[str, ...]) -> str:
    """An invitation's note: "" when there is none (still a first contact)."""
    present = [k for k in keys if k in doc and doc[k] is not None]
    if len(present) > 1:
        raise BadDMRequest(
            f"the invitation carries a note in both {' and '.join(present)}: which one "
            "LinkedIn reads is not documented",
            400,
        )
    return _text(doc[present[0]], present[0]) if present else ""


def _one_invitee(candidates: list[tuple[str, Any]]) -> tuple[str, ...]:
    """The invitee, named in exactly one of the body's places."""
    named = [(where, value) for where, value in candidates if value is not None]
    if len(named) != 1:
        places = ", ".join(where for where, _ in candidates)
        raise BadDMRequest(f"an invitation must name its invitee in exactly one of {places}", 400)
    where, value = named[0]
    rid = member_id(value)
    if rid is None:
        raise BadDMRequest(f"{where} must be a member id or URN, got {value!r}", 400)
    return (rid,)


def _union(doc: dict[str, Any], key: str, member: str, where: str) -> Any:
    """`doc[key][member]` of a Rest.li union (`{"inviteeUnion": {"memberProfile": …}}`),
    None without `key`; a union naming anything else (an email invitee) is refused."""
    union = doc.get(key)
    if union is None:
        return None
    if not isinstance(union, dict) or set(union) != {member}:
        raise BadDMRequest(f"{where}{key} must name only {member}", 400)
    return union[member]


def _parse_invitation(endpoint: str, doc: dict[str, Any]) -> ParsedDM:
    """A connection request: recipient the invitee, text the note ("" without one).

    - `voyagerRelationshipsDashMemberRelationships?action=verifyQuotaAndCreateV2`
      (LinkedIn's web client, tomquirk/linkedin-api's `add_connection`):
      `{"invitee": {"inviteeUnion": {"memberProfile": "urn:li:fsd_profile:…"}},
      "customMessage"}`, or `{"inviteeProfileUrn", "customMessage"}` in older tools;
    - `growth/normInvitations`: `{"invitee": {"com.linkedin.voyager.growth.invitation.
      InviteeProfile": {"profileId"}}, "trackingId", "message", "invitations": []}`
      (or `inviteeUrn`); a non-empty `invitations` list, which dmgate cannot read, is
      refused;
    - Sales Navigator `salesApiConnection?action=connectV2`: `{"member", "message"}`.
    """
    if endpoint == SALES_CONNECT:
        recipients = _one_invitee([("member", doc.get("member"))])
    elif endpoint == VOYAGER_INVITE:
        invitee = doc.get("invitee")
        if invitee is not None and not isinstance(invitee, dict):
            raise BadDMRequest("invitee must be an object", 400)
        union = _union(invitee or {}, "inviteeUnion", "memberProfile", "invitee.")
        recipients = _one_invitee(
            [
                ("invitee.inviteeUnion.memberProfile", union),
                ("inviteeProfileUrn", doc.get("inviteeProfileUrn")),
            ]
        )
    else:
        if doc.get("invitations"):
            raise BadDMRequest("invitations must be empty: dmgate judges one invitee", 400)
        invitee = doc.get("invitee")
        if invitee is not None and not isinstance(invitee, dict):
            raise BadDMRequest("invitee must be an object", 400)
        profile = _union({"invitee": invitee} if invitee else {}, "invitee", INVITEE_PROFILE, "")
        if profile is not None and (not isinstance(profile, dict) or set(profile) != {"profileId"}):
            raise BadDMRequest(f"invitee[{INVITEE_PROFILE!r}] must name only profileId", 400)
        recipients = _one_invitee(
            [
                (f"invitee[{INVITEE_PROFILE!r}].profileId", profile and profile["profileId"]),
                ("inviteeUrn", doc.get("inviteeUrn")),
            ]
        )
    return ParsedDM(recipients, _note(doc, _NOTE_FIELDS[endpoint]))


INVITATION_MESSAGE = "com.linkedin.invitations.InvitationMessage"


def _parse_official_invitation(doc: dict[str, Any]) -> ParsedDM:
    """The partner API's connection request (`POST /v2/invitations`): recipient the
    `invitee` URN, text the note in `message[InvitationMessage].body` ("" without one)."""
    recipients = _one_invitee([("invitee", doc.get("invitee"))])
    message = _union(doc, "message", INVITATION_MESSAGE, "")
    if message is None:
        return ParsedDM(recipients, "")
    if not isinstance(message, dict) or set(message) - {"body"}:
        raise BadDMRequest(f"message[{INVITATION_MESSAGE!r}] must name only body", 400)
    body = message.get("body")
    return ParsedDM(recipients, "" if body is None else _text(body, "message.body"))


def _parse_sales_message(doc: dict[str, Any]) -> ParsedDM:
    """Sales Navigator messages and InMail, `salesApiMessageActions?action=createMessage`:
    `{"createMessageRequest": {"subject"?, "body", "recipients": [fs_salesProfile URNs]
    | "threadId", "copyToCrm", "trackingId"}}`."""
    request = json_object(doc, "createMessageRequest", "")
    where = "createMessageRequest."
    body = request.get("body")
    text = "" if body is None else _text(body, where + "body")
    text = with_subject(request, text, where + "subject")
    if not text and not request.get("attachments"):
        raise BadDMRequest(f"{where}body is required", 400)
    recipients, thread = request.get("recipients"), request.get("threadId")
    if (recipients is None) == (thread is None):
        raise BadDMRequest(f"exactly one of {where}recipients and {where}threadId", 400)
    if recipients is not None:
        return ParsedDM(_recipients(recipients, where + "recipients"), text)
    conversation = conversation_id(thread)
    if conversation is None:
        raise BadDMRequest(f"{where}threadId is not valid: {thread!r}", 400)
    return ParsedDM((), text, conversation_id=conversation)


def _invitation_hold(call: Classified, hold_id: str, marker: dict[str, str]) -> PlatformResponse:
    """What LinkedIn answers a sent invitation. `verifyQuotaAndCreateV2` is a Rest.li
    action: 200 with the `InvitationCreationResult` (normalized, `data` + `included`, when
    the client asks for it, as the web client and linkedin-api do); linkedin-api treats any
    other status as a failure. `growth/normInvitations` is a Rest.li create: 201 (what
    linkedin-api's older `add_connection` checks). Sales Navigator's `connectV2`: 200."""
    number = _synthetic(hold_id, "invitation")
    if call.endpoint == VOYAGER_NORM_INVITE:
        urn = f"urn:li:fs_relInvitation:{number}"
        return PlatformResponse(
            201, {"dmgate": marker}, headers={"x-restli-id": urn, "x-linkedin-id": urn}
        )
    if call.endpoint == SALES_CONNECT:
        return PlatformResponse(200, {"dmgate": marker})
    urn = f"urn:li:fsd_invitation:{number}"
    value = {
        "invitationUrn": urn,
        "*invitation": urn,
        "$type": "com.linkedin.voyager.dash.relationships.invitation.InvitationCreationResult",
    }
    if "normalized" in call.request.headers.get("Accept", ""):
        invitation = {
            "entityUrn": urn,
            "$type": "com.linkedin.voyager.dash.relationships.invitation.Invitation",
        }
        data = {"value": value, "$type": "com.linkedin.restli.common.ActionResponse"}
        return PlatformResponse(200, {"data": data, "included": [invitation], "dmgate": marker})
    return PlatformResponse(200, {"value": value, "dmgate": marker})


# --- learning pieces -------------------------------------------------------------------


def _names(first: Any, last: Any, *others: Any) -> tuple[str, ...]:
    """How a member is addressed: "First Last", then handles."""
    full = " ".join(p for p in (first, last) if isinstance(p, str) and p)
    names = [full] if full else []
    names.extend(p for p in others if isinstance(p, str) and p)
    return tuple(dict.fromkeys(names))


def _learn_official_me(doc: dict[str, Any], key: str) -> list[Fact]:
    uid = member_id(doc.get(key))
    if uid is None:
        return []
    facts: list[Fact] = [Identity(uid)]
    names = _names(
        doc.get("localizedFirstName", doc.get("given_name")),
        doc.get("localizedLastName", doc.get("family_name")),
    )
    if names:
        facts.append(Profile(uid, names))
    return facts


def _mini_profile_facts(mini: Any) -> tuple[str | None, list[Fact]]:
    if not isinstance(mini, dict):
        return None, []
    uid = member_id(mini.get("entityUrn"))
    if uid is None:
        return None, []
    names = _names(mini.get("firstName"), mini.get("lastName"), mini.get("publicIdentifier"))
    if not names:
        return uid, []
    full = _names(mini.get("firstName"), mini.get("lastName"))
    profile = Profile.seen(
        uid,
        names,
        username=mini.get("publicIdentifier"),
        name=full[0] if full else None,
        description=mini.get("occupation"),
    )
    return uid, [profile]


def _included(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The normalized answer's (`application/vnd.linkedin.normalized+json+2.1`) entities,
    by `entityUrn`."""
    items = doc.get("included")
    if not isinstance(items, list):
        return {}
    return {i["entityUrn"]: i for i in items if isinstance(i, dict) and "entityUrn" in i}


def _learn_voyager_me(doc: dict[str, Any]) -> list[Fact]:
    mini = doc.get("miniProfile")
    if mini is None and isinstance(doc.get("data"), dict):
        # Normalized answer: `data["*miniProfile"]` points into `included`.
        mini = _included(doc).get(doc["data"].get("*miniProfile", ""))
    uid, profiles = _mini_profile_facts(mini)
    return [Identity(uid), *profiles] if uid else []


def _member_of(
    participant: Any, included: dict[str, dict[str, Any]]
) -> tuple[str | None, list[Fact]]:
    """A conversation participant or event `from` (legacy `MessagingMember` wrapper)."""
    if isinstance(participant, str):  # normalized: a messagingMember URN
        participant = included.get(participant, {})
        mini = participant.get("miniProfile") or included.get(participant.get("*miniProfile", ""))
        return _mini_profile_facts(mini)
    if not isinstance(participant, dict):
        return None, []
    member = participant.get(MESSAGING_MEMBER, participant)
    if not isinstance(member, dict):
        return None, []
    mini = member.get("miniProfile")
    if isinstance(mini, str):
        mini = included.get(mini)
    return _mini_profile_facts(mini)


def _event_facts(
    event: Any, account: str | None, included: dict[str, dict[str, Any]]
) -> tuple[str | None, list[Fact]]:
    if not isinstance(event, dict):
        return None, []
    if event.get("subtype") == "PARTICIPANT_CHANGE":  # someone added people, not a message
        return None, []
    sender, profiles = _member_of(event.get("from") or event.get("*from"), included)
    if sender is None or account is None or sender == account:
        return sender, profiles
    return sender, [*profiles, InboundMessage(account, sender, epoch_ms(event.get("createdAt")))]


def _learn_conversations(
    doc: dict[str, Any], account: str | None, path_id: str | None
) -> list[Fact]:
    included = _included(doc)
    if isinstance(doc.get("elements"), list):
        conversations = doc["elements"]
    elif "participants" in doc or "entityUrn" in doc:
        conversations = [doc]  # one conversation
    else:  # normalized list
        conversations = [
            i
            for i in included.values()
            if i.get("$type") == "com.linkedin.voyager.messaging.Conversation"
        ]
    facts: list[Fact] = []
    for conv in conversations:
        if not isinstance(conv, dict):
            continue
        cid = conversation_id(conv.get("entityUrn")) or path_id
        participants = conv.get("participants", conv.get("*participants"))
        members: list[str] = []
        for p in participants if isinstance(participants, list) else []:
            uid, profiles = _member_of(p, included)
            if uid:
                members.append(uid)
            facts.extend(profiles)
        if cid and members:
            # Voyager lists the other participants; the caller is added when known so the
            # fact is the whole membership (the sender is dropped again when judging).
            if account and account not in members:
                members.append(account)
            facts.append(ConversationMembers(cid, tuple(dict.fromkeys(members))))
        events = conv.get("events", conv.get("*events"))
        for event in events if isinstance(events, list) else []:
            if isinstance(event, str):  # normalized: an event URN
                event = included.get(event)
            facts.extend(_event_facts(event, account, included)[1])
    return _dedupe(facts)


def _learn_events(doc: dict[str, Any], account: str | None) -> list[Fact]:
    included = _included(doc)
    events = doc.get("elements")
    if not isinstance(events, list):
        events = [i for i in included.values() if i.get("$type", "").endswith("messaging.Event")]
    facts: list[Fact] = []
    for event in events:
        facts.extend(_event_facts(event, account, included)[1])
    return _dedupe(facts)


def _dedupe(facts: list[Fact]) -> list[Fact]:
    """One inbound fact per sender (the earliest), one profile per user."""
    inbound = [f for f in facts if isinstance(f, InboundMessage)]
    rest = dict.fromkeys(f for f in facts if not isinstance(f, InboundMessage))
    return [*rest, *earliest_inbound(inbound)]
