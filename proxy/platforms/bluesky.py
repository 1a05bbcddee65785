"""Bluesky: chat messages (`chat.bsky.convo.*`), sessions, followers, notifications.

Shapes follow the atproto lexicons (bluesky-social/atproto `lexicons/chat/bsky/convo/*.json`,
`lexicons/com/atproto/server/*.json`, `lexicons/app/bsky/graph/getFollowers.json`). Chat
calls reach the user's PDS with `atproto-proxy: did:web:api.bsky.chat#bsky_chat`; that
header is forwarded untouched like every other.

Keys: every user is a DID. A send names only its conversation (`convoId`): `parse_dm`
returns `ParsedDM(recipients=(), conversation_id=convoId)` and the proxy fills in the
members learnt from `getConvoForMembers` / `getConvo` / `listConvos` answers
(`ConversationMembers` facts); `recipients_for` drops the sender. A `sendMessageBatch`
to one conversation is one DM (the recipient reads the items together); to several, each
item is a DM to its own conversation's members, judged on its own, and the batch is
forwarded, held or blocked as a whole by the strictest verdict, which names the item
(`items[1]: template_reuse: …`). A held batch to several conversations cannot be edited.

Text: `message.text`, and an embedded record (`app.bsky.embed.record`, the only embed
chat takes) as the link the recipient sees it as (`https://bsky.app/profile/{did}/post/
{rkey}`): the record's own text is not in the request, so a post embedded in a first
message counts as a link in it (`first_contact_pitch`).

The sender: atproto access tokens are JWTs whose `sub` claim is the account's DID, so
`account_from_request` reads it without a lookup, which also follows token refreshes
(every refreshed token names the same DID). The signature is not checked: the claim only
attributes the DM for policy accounting and never grants anything — the PDS checks the
token before anything is sent, and a tool could name any account with `DMGate-Account`
anyway. A forged `sub` can therefore only make dmgate judge a DM under the wrong
account, exactly as a wrong `DMGate-Account` header can.

Spellings: the path is normalised (`..`, `;params`, empty segments) before its NSID is
read; NSIDs match in any case (the send's and the learnt ones). XRPC procedures are POSTs:
any other method on a send NSID is refused (405). DIDs are judged with the scheme and
method in lower case (`DID:PLC:x` → `did:plc:x`), conversation ids without surrounding
whitespace.

Path prefixes: `@atproto/api` builds request URLs as `new URL("/xrpc/<nsid>", service)`,
which drops any path of the service URL, so it cannot use `http://dmgate/bluesky`. Serve
it from a route named `xrpc` whose upstream ends in `/xrpc` (`{"xrpc": {"upstream":
"https://bsky.social/xrpc", "platform": "bluesky"}}`); this adapter therefore accepts
both `/xrpc/<nsid>` and a bare `/<nsid>` path.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any, ClassVar

from proxy.facts import (
    ConversationMembers,
    Fact,
    Followed,
    FollowerSnapshot,
    Identity,
    InboundMessage,
    Profile,
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
from proxy.platforms.ids import canonical_did
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
    hold_digest,
    iso_now,
    iso_time,
    names_in,
    require_json,
    sendable,
)

# sendMessageBatch `items` maxLength (lexicons/chat/bsky/convo/sendMessageBatch.json).
MAX_BATCH = 100
# Stands in for the sender of a held message when the caller is not known by a DID:
# `messageView.sender.did` must be a DID or clients that validate answers reject it.
UNKNOWN_SENDER_DID = "did:web:dmgate.invalid"

SEND_MESSAGE = "chat.bsky.convo.sendMessage"
SEND_MESSAGE_BATCH = "chat.bsky.convo.sendMessageBatch"
CREATE_SESSION = "com.atproto.server.createSession"
GET_SESSION = "com.atproto.server.getSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
GET_CONVO_FOR_MEMBERS = "chat.bsky.convo.getConvoForMembers"
GET_CONVO = "chat.bsky.convo.getConvo"
LIST_CONVOS = "chat.bsky.convo.listConvos"
GET_MESSAGES = "chat.bsky.convo.getMessages"
GET_FOLLOWERS = "app.bsky.graph.getFollowers"
LIST_NOTIFICATIONS = "app.bsky.notification.listNotifications"

SESSION_METHODS = (CREATE_SESSION, GET_SESSION, REFRESH_SESSION)


def _xrpc(nsid: str, method: str, kind: Kind) -> Route:
    """The method `nsid` at `/xrpc/<nsid>`, or at `/<nsid>` below an `/xrpc` upstream (the
    `xrpc` parameter says which). NSIDs are case-sensitive and the server would not route
    `SendMessage`; judging a send it would refuse is harmless, forwarding one it accepts
    unjudged is not, so they match in any case (and without an extension: NSIDs have
    dots of their own)."""
    pattern = route_pattern(f"/{nsid}", prefix=r"(?P<xrpc>(?i:/xrpc))?", extension=False)
    return Route(nsid, method, kind, pattern)


# XRPC procedures are POSTs, queries GETs. The send procedures have no read: any other
# method on them is refused.
_ROUTES = RouteTable(
    _xrpc(SEND_MESSAGE, "POST", Kind.DM),
    _xrpc(SEND_MESSAGE_BATCH, "POST", Kind.DM),
    _xrpc(CREATE_SESSION, "POST", Kind.SIGNAL),
    _xrpc(REFRESH_SESSION, "POST", Kind.SIGNAL),
    _xrpc(GET_SESSION, "GET", Kind.SIGNAL),
    _xrpc(GET_CONVO_FOR_MEMBERS, "GET", Kind.SIGNAL),
    _xrpc(GET_CONVO, "GET", Kind.SIGNAL),
    _xrpc(LIST_CONVOS, "GET", Kind.SIGNAL),
    _xrpc(GET_MESSAGES, "GET", Kind.SIGNAL),
    _xrpc(GET_FOLLOWERS, "GET", Kind.SIGNAL),
    _xrpc(LIST_NOTIFICATIONS, "GET", Kind.SIGNAL),
)


def _did(value: Any) -> str | None:
    return canonical_did(value)


def jwt_subject(token: str) -> str | None:
    """The `sub` claim of a JWT if it is a DID; the signature is not verified (see the
    module docstring for why that is enough for attribution)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return _did(claims.get("sub")) if isinstance(claims, dict) else None


# --- request bodies --------------------------------------------------------------------


def _load_json(req: RequestView, body: bytes) -> dict[str, Any]:
    require_json(req, "chat messages")
    return load_json_object(body, "message body")


def _item(doc: Any, where: str) -> tuple[str, str]:
    """`convoId` and `message.text` of a sendMessage body or batch item."""
    if not isinstance(doc, dict):
        raise BadDMRequest(f"{where} must be a JSON object", 400)
    convo = doc.get("convoId")
    if not isinstance(convo, str) or not convo.strip():
        raise BadDMRequest(f"{where}convoId must be a non-empty string", 400)
    convo = convo.strip()  # one conversation however it is padded
    message = doc.get("message")
    if not isinstance(message, dict):
        raise BadDMRequest(f"{where}message is missing or not a JSON object", 400)
    text = message.get("text")
    if not isinstance(text, str):
        raise BadDMRequest(f"{where}message.text is required and must be a string", 400)
    text = sendable(text, f"{where}message.text")
    link = embed_link(message, where)
    return convo, (text + "\n" + link if text else link) if link else text


EMBED_RECORD = "app.bsky.embed.record"
_AT_URI = re.compile(r"at://([^/\s]+)/([^/\s]+)/([^/?#\s]+)")
# Where bsky.app shows a record, by collection: what the recipient opens.
_APP_PATHS = {
    "app.bsky.feed.post": "post",
    "app.bsky.graph.list": "lists",
    "app.bsky.feed.generator": "feed",
    "app.bsky.graph.starterpack": "starter-pack",
}


def embed_link(message: dict[str, Any], where: str) -> str:
    """A message's embedded record (`app.bsky.embed.record`, the one embed chat allows) as
    the link the recipient sees it as (`https://bsky.app/profile/{did}/post/{rkey}`), ""
    without one. The record's own text is not in the request (it would take a lookup), so
    the link is what is judged: a post embedded in a first message is a link in it."""
    embed = message.get("embed")
    if embed is None:
        return ""
    if not isinstance(embed, dict) or embed.get("$type") != EMBED_RECORD:
        raise BadDMRequest(f"{where}message.embed must be an {EMBED_RECORD}", 400)
    record = embed.get("record")
    uri = record.get("uri") if isinstance(record, dict) else None
    if not isinstance(uri, str) or not uri.startswith("at://") or not uri[5:].strip():
        raise BadDMRequest(f"{where}message.embed.record.uri must be an at:// URI", 400)
    uri = sendable(uri, f"{where}message.embed.record.uri")
    m = _AT_URI.fullmatch(uri)
    path = _APP_PATHS.get(m.group(2)) if m else None
    return f"https://bsky.app/profile/{m.group(1)}/{path}/{m.group(3)}" if m and path else uri


def _batch_items(doc: dict[str, Any]) -> list[dict[str, Any]]:
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        raise BadDMRequest("items must be a non-empty array", 400)
    if len(items) > MAX_BATCH:
        raise BadDMRequest(f"items holds at most {MAX_BATCH} messages", 400)
    return items


# --- answer helpers --------------------------------------------------------------------

_TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"


def _tid_like(hold_id: str, purpose: str) -> str:
    """A stable 13-character base32-sortable id (the shape of atproto TIDs) for a held
    message, so a retry of the same hold hears the same ids."""
    n = int.from_bytes(hold_digest(hold_id, purpose)[:8]) & ((1 << 63) - 1)
    return "".join(_TID_CHARS[(n >> (5 * i)) & 31] for i in range(12, -1, -1))


def _profiles(users: Any) -> list[Fact]:
    out: list[Fact] = []
    for user in users if isinstance(users, list) else []:
        if not isinstance(user, dict) or not (did := _did(user.get("did"))):
            continue
        names = names_in(user, ("displayName", "handle"))
        if names:
            out.append(
                Profile.seen(
                    did,
                    names,
                    username=user.get("handle"),
                    name=user.get("displayName"),
                    description=user.get("description"),
                )
            )
    return out


def _is_pds_service(service: Any, did: str | None) -> bool:
    """The `#atproto_pds` entry of a DID document, as @atproto/common-web's
    `getServiceEndpoint` finds it (id `#atproto_pds` or `<did>#atproto_pds`)."""
    if not isinstance(service, dict):
        return False
    sid = service.get("id")
    ids = {"#atproto_pds"} | ({f"{did}#atproto_pds"} if did else set())
    return sid in ids and service.get("type") == "AtprotoPersonalDataServer"


# --- the adapter -----------------------------------------------------------------------

Learner = Callable[["BlueskyPlatform", Classified, str | None, Any], list[Fact]]


class BlueskyPlatform(Platform):
    """Bluesky's XRPC API as a PDS serves it (chat proxied to api.bsky.chat)."""

    name: ClassVar[str] = "bluesky"
    routes: ClassVar[RouteTable] = _ROUTES

    def credential(self, req: RequestView) -> str | None:
        scheme, rest = authorization(req)
        # App-password sessions use Bearer; OAuth sessions DPoP-bound tokens.
        if scheme in ("bearer", "dpop"):
            return rest or None
        return None

    def account_from_request(self, call: Classified) -> str | None:
        # The access JWT's `sub`: the PDS checks the token's signature and acts as exactly
        # that DID or refuses, so a forged `sub` only names a sender whose DM never goes.
        token = self.credential(call.request)
        return jwt_subject(token) if token else None

    def whoami(self, call: Classified) -> RequestView | None:
        """`GET com.atproto.server.getSession` with the request's bearer token (below the
        same prefix the request used). None for DPoP-bound tokens: the DPoP proof covers
        the method and URL, so it cannot be replayed on another call, and their `sub`
        names the account already."""
        path = ("/xrpc/" if "xrpc" in call.params else "/") + GET_SESSION
        return identity_view_with_authorization(call.request, path)

    # --- DM requests --------------------------------------------------------------------

    def parse_dm(self, call: Classified, body: bytes) -> ParsedDM:
        method = call.dm_endpoint("a Bluesky chat send")
        doc = _load_json(call.request, body)
        check_json_request(call.request, doc)
        if method == SEND_MESSAGE:
            convo, text = _item(doc, "")
            return ParsedDM((), text, conversation_id=convo)
        items = [_item(item, f"items[{i}].") for i, item in enumerate(_batch_items(doc))]
        convos = tuple(dict.fromkeys(c for c, _ in items))
        texts = [t for _, t in items]
        if len(convos) == 1:
            # Several messages to one conversation: the recipient reads them together.
            return ParsedDM((), "\n\n".join(texts), conversation_id=convos[0])
        # Several conversations: each item is a DM to its conversation's members, judged
        # on its own; the batch goes, is held or is blocked as a whole.
        parts = tuple(
            (f"items[{i}]", ParsedDM((), text, conversation_id=convo))
            for i, (convo, text) in enumerate(items)
        )
        return ParsedDM((), "\n\n".join(texts), parts=parts)

    def replace_text(self, call: Classified, body: bytes, text: str) -> bytes:
        """The edited text in every message; facets are dropped (their byte ranges point
        into the old text). A batch to one conversation becomes one message."""
        dm = self.parse_dm(call, body)
        if not text:
            raise BadDMRequest("the edited text is empty", 422)
        if dm.parts:
            raise BadDMRequest(
                "a batch to several conversations has no single text to edit: approve it "
                "unedited or reject it",
                422,
            )
        doc = _load_json(call.request, body)
        if call.endpoint == SEND_MESSAGE:
            messages = [doc["message"]]
        else:
            if dm.conversation_id is not None:
                doc["items"] = doc["items"][:1]
            messages = [item["message"] for item in doc["items"]]
        for message in messages:
            link = embed_link(message, "")
            if link and (text == link or text.endswith("\n" + link)):
                message["text"] = text[: -len(link)].removesuffix("\n")
            else:
                # The reviewer removed the embedded post's link: the post goes with it.
                message.pop("embed", None)
                message["text"] = text
            message.pop("facets", None)
        return dump_json(doc)

    # --- answers on Bluesky's behalf ------------------------------------------------------

    def _message_view(self, dm: ParsedDM, account: str, hold_id: str, n: int) -> dict[str, Any]:
        return {
            "id": _tid_like(hold_id, f"message:{n}"),
            "rev": _tid_like(hold_id, f"rev:{n}"),
            "text": dm.text,
            "sender": {"did": _did(account) or UNKNOWN_SENDER_DID},
            "sentAt": iso_now(),
        }

    def hold_response(
        self, call: Classified, dm: ParsedDM, account: str, hold_id: str
    ) -> PlatformResponse:
        """`chat.bsky.convo.defs#messageView` (sendMessage), or `{"items": [...]}` of them
        (sendMessageBatch: one per item), with 200. Lexicon objects are open, so
        the extra `dmgate` object passes clients that validate answers."""
        marker = {"hold_id": hold_id, "status": "pending"}
        if call.endpoint == SEND_MESSAGE:
            view = self._message_view(dm, account, hold_id, 0)
            return PlatformResponse(200, {**view, "dmgate": marker}, JSON_CONTENT_TYPE)
        # One messageView per item sent (a batch to one conversation is held as one).
        parts = [part for _, part in dm.parts] or [dm]
        items = [self._message_view(part, account, hold_id, i) for i, part in enumerate(parts)]
        return PlatformResponse(200, {"items": items, "dmgate": marker}, JSON_CONTENT_TYPE)

    def block_response(self, call: Classified, reason: str) -> PlatformResponse:
        # XRPC errors are `{"error": Name, "message": text}`; 403 maps to the generic
        # `Forbidden` (@atproto/xrpc ResponseType.Forbidden), which clients raise as an
        # XRPCError with `error` and `message`.
        body = {
            "error": "Forbidden",
            "message": reason,
            "dmgate": {"decision": "block", "reason": reason},
        }
        return PlatformResponse(403, body, JSON_CONTENT_TYPE)

    # --- keeping the client behind dmgate -------------------------------------------------

    def rewrite_response(self, call: Classified, body: bytes, public_base_url: str) -> bytes | None:
        """Session answers carry the account's DID document, and clients (AtpAgent) switch
        to its `#atproto_pds` endpoint — straight past dmgate. Point it at dmgate instead.

        `public_base_url` is where the client reaches this route (`http://dmgate:8080/
        bluesky`). Below an `/xrpc` route (the path seen here has no `/xrpc`), clients add
        `/xrpc/...` themselves, so the endpoint is that URL without its `/xrpc`. Returns
        the new body, or None to leave the answer untouched."""
        # Any case of the NSID (the route matches any): a session answer left unrewritten
        # leads the client around dmgate.
        if call.endpoint not in SESSION_METHODS:
            return None
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("didDoc"), dict):
            return None
        services = doc["didDoc"].get("service")
        if not isinstance(services, list):
            return None
        endpoint = public_base_url.rstrip("/")
        below_xrpc = "xrpc" not in call.params
        if below_xrpc and endpoint.endswith("/xrpc"):
            endpoint = endpoint[: -len("/xrpc")]
        did = _did(doc.get("did")) or _did(doc["didDoc"].get("id"))
        changed = False
        for service in services:
            if _is_pds_service(service, did) and service.get("serviceEndpoint") != endpoint:
                service["serviceEndpoint"] = endpoint
                changed = True
        if not changed:
            return None
        return dump_json(doc)

    # --- signals --------------------------------------------------------------------------

    def learn_from(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        if not isinstance(doc, dict):
            return []
        return _LEARNERS[call.endpoint](self, call, account, doc)

    def _learn_session(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        did = _did(doc.get("did"))
        if did is None:
            return []
        handle = doc.get("handle")
        names = (handle,) if isinstance(handle, str) and handle else ()
        return [Identity(did), *([Profile(did, names)] if names else [])]

    def _convo_facts(self, convo: Any, account: str | None) -> list[Fact]:
        if not isinstance(convo, dict) or not isinstance(convo.get("id"), str):
            return []
        members = convo.get("members") or []
        dids = tuple(
            dict.fromkeys(d for m in members if isinstance(m, dict) and (d := _did(m.get("did"))))
        )
        facts: list[Fact] = []
        if dids:
            # For group convos `members` is only the important few: still better than the
            # conversation id standing in for everyone.
            facts.append(ConversationMembers(convo["id"].strip(), dids))
        facts.extend(_profiles(members))
        last = convo.get("lastMessage")
        if account is not None and isinstance(last, dict):
            sender = _did((last.get("sender") or {}).get("did"))
            if sender and sender != account:
                facts.append(InboundMessage(account, sender, iso_time(last.get("sentAt"))))
        return facts

    def _learn_convo(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        return self._convo_facts(doc.get("convo"), account)

    def _learn_convos(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        facts: list[Fact] = []
        for convo in doc.get("convos") or []:
            facts.extend(self._convo_facts(convo, account))
        return facts

    def _learn_messages(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        """Messages someone else sent in a conversation of the caller's: they wrote."""
        if account is None:
            return []
        facts: list[InboundMessage] = []
        for message in doc.get("messages") or []:
            if not isinstance(message, dict):
                continue
            # messageView and deletedMessageView both name the sender; system messages
            # have none.
            sender = _did((message.get("sender") or {}).get("did"))
            if sender and sender != account:
                facts.append(InboundMessage(account, sender, iso_time(message.get("sentAt"))))
        return earliest_inbound(facts)

    def _learn_followers(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        subject = _did((doc.get("subject") or {}).get("did"))
        if subject is None:
            return []
        followers = doc.get("followers") or []
        dids = tuple(f for u in followers if isinstance(u, dict) and (f := _did(u.get("did"))))
        first = not call.request.query.get("cursor")  # newest first; `cursor` pages further down
        return [FollowerSnapshot(subject, dids, first_page=first), *_profiles(followers)]

    def _learn_notifications(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        """`reason: follow` notifications: who followed the caller, and when it was
        indexed (the record's own `createdAt` is whatever the follower's client wrote)."""
        facts: list[Fact] = []
        for n in doc.get("notifications") or []:
            if not isinstance(n, dict):
                continue
            author = n.get("author") or {}
            facts.extend(_profiles([author]))
            follower = _did(author.get("did"))
            if account is not None and follower and n.get("reason") == "follow":
                facts.append(Followed(account, follower, iso_time(n.get("indexedAt"))))
        return facts


_LEARNERS: dict[str, Learner] = {
    CREATE_SESSION: BlueskyPlatform._learn_session,
    GET_SESSION: BlueskyPlatform._learn_session,
    REFRESH_SESSION: BlueskyPlatform._learn_session,
    GET_CONVO_FOR_MEMBERS: BlueskyPlatform._learn_convo,
    GET_CONVO: BlueskyPlatform._learn_convo,
    LIST_CONVOS: BlueskyPlatform._learn_convos,
    GET_MESSAGES: BlueskyPlatform._learn_messages,
    GET_FOLLOWERS: BlueskyPlatform._learn_followers,
    LIST_NOTIFICATIONS: BlueskyPlatform._learn_notifications,
}
