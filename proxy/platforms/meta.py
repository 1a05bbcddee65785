"""Meta: the Messenger Platform Send API and Instagram messaging, both on the Graph API
(`graph.facebook.com`, `graph.instagram.com`).

A send is `POST /{version}/{page-id|ig-user-id|me}/messages` (version optional, e.g.
`/v21.0/123/messages`) with `recipient`, `messaging_type`, `message` (and `tag`, ...). The
Graph API takes its parameters in any of three forms, and so does this adapter: a JSON body,
a form body (`application/x-www-form-urlencoded`, where `recipient` and `message` are JSON
strings), or the query string (same JSON strings); `multipart/form-data` carries
attachment uploads. A field given twice (in two forms, or twice in one) is refused: which
copy Graph keeps is not documented, and the judged text must be the sent one.

Recipients (developers.facebook.com/docs/messenger-platform/reference/send-api):
`{"id": PSID}` is the person; `{"user_ref": …}` (checkbox plugin), `{"comment_id": …}` and
`{"post_id": …}` (private replies), `{"notification_messages_token": …}` and
`{"phone_number": …}` name a person the page cannot yet name by PSID, so they are kept as
`user_ref:…`, `comment:…`, `post:…`, `notification_token:…`, `phone:…`: distinct people
count as distinct recipients for the template policy; follow timing never matches them.

The judged text is what the recipient reads: `message.text`, then what the attachments show
(button template `text` and button titles; generic/media template elements' `title`,
`subtitle` and button titles; a `caption`), then quick-reply titles. Such a message cannot be
edited on approval (the edit has no single place to go): approve it unedited or reject it.

`sender_action` calls (typing_on, mark_seen) carry no message: `classify` cannot see that
(it has no body), so `parse_dm` raises `NotADirectMessage` and the gateway passes them
through unjudged.

Graph batch requests (`POST /` with `batch`) whose items send messages are judged item by
item (`batch[1]`, each with its own recipient and text; the page in the items' path is the
sender), and the batch is forwarded, held (answered with Graph's batch shape, one
`{code, headers, body}` per item) or blocked (the error names the item) as a whole. Refused
(400): an item whose recipient or text comes from another item's result (`{result=…}`,
`depends_on`), sends mixed with other calls, sends for several pages, an item's parameter
twice or in both its `relative_url` and `body`; and, as everywhere, any key twice in the
query string or a form or multipart body (`batch` twice: a harmless one first, the send
last), `batch` in both the query and the body, and a batch item with a key twice. A held
batch cannot be edited (approve or reject).

The sender is the page (or Instagram account) in the path; for `me`, the account a
`GET /me` answer taught dmgate for the same access token (`access_token` query parameter or
`Authorization: Bearer|OAuth`); `whoami` asks `GET /me?fields=id,name` with that token.

Spellings: path literals (`messages`, the version) match in any case and with an extension;
Graph's `method` parameter, which overrides the HTTP method (`GET /{page}/messages?method=
post&recipient=…`), makes a GET a send, judged like one. GET and HEAD on
`/{id}/messages` otherwise pass (a conversation's messages are read there); other methods
on a send path are refused (405). Numeric recipient and page ids are judged in Graph's
reading (`0042`, ` 42`, 42 → `42`); phone numbers as `+` and digits.

Webhooks (`/webhooks/meta`, Messenger and Instagram messaging subscriptions): the
`hub.challenge` handshake is answered when `hub.verify_token` equals the configured meta
webhook secret, and POSTs must carry `X-Hub-Signature-256: sha256=HMAC-SHA256(app secret,
body)` with that same secret — so the verify token must be set to the app secret (one
secret per platform is all the settings hold). A user's message or postback to the page is
"the recipient wrote first".
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from multidict import CIMultiDictProxy, MultiDictProxy

from proxy.facts import Fact, Identity, InboundMessage, Profile
from proxy.platforms.ambiguity import (
    check_form,
    check_query,
    disposition_params,
    not_in_both,
    part_disposition,
    unique_pairs,
)
from proxy.platforms.base import (
    BadDMRequest,
    Classified,
    Kind,
    NotADirectMessage,
    ParsedDM,
    Platform,
    PlatformResponse,
    RefusedRequest,
    RequestView,
    normalize_path,
)
from proxy.platforms.ids import canonical_number, canonical_phone, number_or_none
from proxy.platforms.jsonbody import dump_json, load_json, load_json_object
from proxy.platforms.routes import (
    SAFE_READS,
    Route,
    RouteTable,
    authorization,
    identity_view,
    identity_view_with_authorization,
    route_pattern,
)
from proxy.platforms.shapes import (
    earliest_inbound,
    hold_digest,
    media_type,
    sendable,
)

_MAX_DIGITS = 25
# A numeric Graph id in its one spelling, or None (learning never raises).
_id_of = partial(number_or_none, max_digits=_MAX_DIGITS)

# The send's own fields: each may come once, from one form.
_FIELDS = ("recipient", "message", "messaging_type", "sender_action", "tag", "persona_id")
RECIPIENT_KINDS = {
    "id": "",
    "user_ref": "user_ref:",
    "comment_id": "comment:",
    "post_id": "post:",
    "notification_messages_token": "notification_token:",
    "phone_number": "phone:",
}
# Fields of a User Profile API read (`GET /{PSID}?fields=first_name,last_name`) worth
# learning from: a name is what a template's "Hi Anna" substitutes.
_NAME_FIELDS = ("name", "first_name", "last_name", "username")


def _asks_for_names(req: RequestView) -> bool:
    fields = req.query.get("fields", "")
    return any(f in fields for f in _NAME_FIELDS)


# --- routes ----------------------------------------------------------------------------

SEND = "send"
BATCH = "batch"
ME = "me"
CONVERSATIONS = "conversations"
NODE = "node"

# Graph's versions are `v21.0`. Any first segment starting with `v` before `{id}/messages`
# is read as one, as a lenient router might (`v21.0.0`, `v.`, `vfoo`): a send spelled so is
# judged, never passed unread (a segment there can be nothing else: Graph paths are
# `{node}/{edge}`, and `{node}/{edge}/messages` names no edge).
_VERSION = r"(?P<version>/[vV][^/]*)?"
_SEND = route_pattern("/{owner}/messages", prefix=_VERSION)
# Other ways Graph has offered to message people that dmgate does not judge: private
# replies to a comment (`/{comment-id}/private_replies`, since replaced by the Send API's
# `recipient.comment_id`, which is judged), broadcasts to every subscriber (`message_
# creatives` + `broadcast_messages`) and WhatsApp marketing messages. Refused (400), never
# forwarded: were Graph to take one, it would reach people no policy saw.
UNJUDGED = "unjudged"
_UNJUDGED = route_pattern(
    "/{node}/{edge}",
    prefix=_VERSION,
    params={"edge": "(?i:private_replies|broadcast_messages|message_creatives|marketing_messages)"},
)

_ROUTES = RouteTable(
    # GET and HEAD read a conversation's messages (`/{conversation-id}/messages`);
    # anything else there is refused.
    Route(SEND, "POST", Kind.DM, _SEND, reads=SAFE_READS),
    Route(
        UNJUDGED,
        "POST",
        Kind.DM,
        _UNJUDGED,
        reads=SAFE_READS,
        refused="private replies, broadcasts and marketing messages; send with /{page-id}/messages",
    ),
    # Batch requests can carry sends: they are opened (and refused if so).
    Route(BATCH, "POST", Kind.DM, re.compile(rf"{_VERSION}/?"), guarded=False),
    Route(ME, "GET", Kind.SIGNAL, route_pattern("/me", prefix=_VERSION)),
    Route(
        CONVERSATIONS,
        "GET",
        Kind.SIGNAL,
        route_pattern("/{owner}/conversations", prefix=_VERSION),
    ),
    Route(
        NODE,
        "GET",
        Kind.SIGNAL,
        route_pattern("/{node}", prefix=_VERSION, params={"node": "[0-9]{1,25}"}),
        when=_asks_for_names,
    ),
)


# --- reading the three (four) request forms --------------------------------------------


class _Form:
    """Where each send field came from, so an edit can write the text back in place."""

    def __init__(self, kind: str, fields: dict[str, Any], pairs: list[tuple[str, str]]):
        self.kind = kind  # json | form | multipart | none
        self.fields = fields  # the body's send fields (values as sent)
        self.pairs = pairs  # form/multipart: every pair in order


def _read_body(req: RequestView, body: bytes) -> _Form:
    media = media_type(req)
    if not body.strip():
        return _Form("none", {}, [])
    if media == "application/json" or (media in (None, "text/plain") and body.lstrip()[:1] == b"{"):
        return _Form("json", load_json_object(body), [])
    if media in (None, "application/x-www-form-urlencoded"):
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadDMRequest(f"DM request body is not a valid form: {exc}", 400) from exc
        return _Form("form", unique_pairs(pairs, "form body"), pairs)
    if media == "multipart/form-data":
        pairs = _multipart_fields(req.headers.get("Content-Type", ""), body)
        return _Form("multipart", unique_pairs(pairs, "multipart body"), pairs)
    raise BadDMRequest(
        f"Graph API sends must be JSON, form or multipart bodies, got {media!r}", 415
    )


def _multipart_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The text fields of a multipart body (file parts such as `filedata` are skipped)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadDMRequest("multipart DM request body has no parts", 400)
    fields: list[tuple[str, str]] = []
    for part in message.iter_parts():
        # Two Content-Disposition headers, or two `name=` in one: which name is meant?
        disposition = part_disposition(part.raw_items())
        if disposition is not None:
            disposition_params(str(disposition))
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename():
            continue
        payload = part.get_payload(decode=True) or b""
        try:
            fields.append((name, payload.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise BadDMRequest(f"multipart field {name!r} is not UTF-8", 400) from exc
    return fields


def _json_field(value: Any, name: str) -> dict[str, Any]:
    """`recipient`/`message`: an object, or (form and query forms) a JSON string of one."""
    if isinstance(value, str):
        try:
            value = load_json_object(value.encode("utf-8"))
        except BadDMRequest as exc:
            raise BadDMRequest(f"{name} must be a JSON object: {exc}", 400) from None
    if not isinstance(value, dict):
        raise BadDMRequest(f"{name} must be a JSON object", 400)
    return value


def _send_fields(req: RequestView, form: _Form) -> tuple[dict[str, Any], dict[str, str]]:
    """Every send field with its value, and which form ("query" or the body's) held it."""
    query = check_query(req)
    fields: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name in _FIELDS:
        in_body, in_query = name in form.fields, name in query
        if in_body and in_query:
            raise BadDMRequest(f"{name} is given both in the query string and the body", 400)
        if in_body:
            fields[name], source[name] = form.fields[name], form.kind
        elif in_query:
            fields[name], source[name] = query[name], "query"
    return fields, source


def _recipient(value: Any) -> str:
    recipient = _json_field(value, "recipient")
    kinds = [k for k in RECIPIENT_KINDS if k in recipient]
    if len(kinds) != 1:
        wanted = ", ".join(RECIPIENT_KINDS)
        raise BadDMRequest(f"recipient must have exactly one of {wanted}", 400)
    kind = kinds[0]
    raw = recipient[kind]
    if kind == "id":
        # A PSID/IGSID: one person however it is spelled (`0042`, " 42", 42).
        return canonical_number(raw, "recipient.id", _MAX_DIGITS)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise BadDMRequest(f"recipient.{kind} must be a non-empty string", 400)
    if kind == "phone_number":
        return RECIPIENT_KINDS[kind] + canonical_phone(raw, "recipient.phone_number")
    return RECIPIENT_KINDS[kind] + raw.strip()


def _text(message: dict[str, Any]) -> str:
    """What the recipient reads, top to bottom: the text, then what attachments show
    (template text, elements' titles and subtitles, button titles, captions), then the
    quick-reply titles. A bot builder's pitch lives in a button template as often as in
    `text`."""
    text = message.get("text")
    if text is not None and not isinstance(text, str):
        raise BadDMRequest("message.text must be a string", 400)
    if not text and not (message.get("attachment") or message.get("attachments")):
        raise BadDMRequest("message.text or message.attachment is required", 400)
    parts = [text] if text else []
    parts += _shown_text(message)
    return sendable("\n".join(parts), "message")


def _shown_text(message: dict[str, Any]) -> list[str]:
    """The text a recipient sees outside `message.text` (empty for a plain message)."""
    attachments = message.get("attachments")
    if attachments is not None and not isinstance(attachments, list):
        raise BadDMRequest("message.attachments must be an array", 400)
    parts: list[str] = []
    for i, attachment in enumerate([message.get("attachment"), *(attachments or [])]):
        if attachment is None:
            continue
        where = "message.attachment" if i == 0 else f"message.attachments[{i - 1}]"
        if not isinstance(attachment, dict):
            raise BadDMRequest(f"{where} must be an object", 400)
        payload = attachment.get("payload")
        if isinstance(payload, dict):
            parts += _payload_text(payload, where + ".payload")
    replies = message.get("quick_replies")
    if replies is not None and not isinstance(replies, list):
        raise BadDMRequest("message.quick_replies must be an array", 400)
    for i, reply in enumerate(replies or []):
        parts += _strings(reply, ("title",), f"message.quick_replies[{i}]")
    return parts


def _payload_text(payload: dict[str, Any], where: str) -> list[str]:
    """Button template (`text`, `buttons`), generic/media templates (`elements` with
    `title`, `subtitle`, `buttons`), and a media `caption`."""
    parts = _strings(payload, ("text", "caption"), where)
    elements = payload.get("elements")
    if elements is not None and not isinstance(elements, list):
        raise BadDMRequest(f"{where}.elements must be an array", 400)
    for i, element in enumerate(elements or []):
        parts += _strings(element, ("title", "subtitle"), f"{where}.elements[{i}]")
        parts += _buttons(element, f"{where}.elements[{i}]")
    return parts + _buttons(payload, where)


def _buttons(holder: dict[str, Any], where: str) -> list[str]:
    buttons = holder.get("buttons")
    if buttons is not None and not isinstance(buttons, list):
        raise BadDMRequest(f"{where}.buttons must be an array", 400)
    parts: list[str] = []
    for i, button in enumerate(buttons or []):
        parts += _strings(button, ("title",), f"{where}.buttons[{i}]")
    return parts


def _strings(holder: Any, keys: tuple[str, ...], where: str) -> list[str]:
    """The non-empty `keys` of an object, each a string or refused."""
    if not isinstance(holder, dict):
        raise BadDMRequest(f"{where} must be an object", 400)
    parts: list[str] = []
    for key in keys:
        value = holder.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise BadDMRequest(f"{where}.{key} must be a string", 400)
        parts.append(value)
    return parts


def _overrides(query: MultiDictProxy[str] | list[tuple[str, str]]) -> set[str]:
    """The methods Graph's `method` parameter asks for (upper case)."""
    items = query.items() if isinstance(query, MultiDictProxy) else query
    return {v.strip().upper() for k, v in items if k.lower() == "method"}


def _batch_sends(value: Any) -> list[tuple[int, str, dict[str, Any]]] | None:
    """The message sends of a Graph batch, as (index, owner, send fields); None when no
    item touches a send path with anything but a plain read. Refused (400): items that are
    not objects, a send whose recipient or text comes from another item's result
    (`{result=…}`, `depends_on`: unknown until Graph runs the batch), sends mixed with other
    calls (a held batch could not answer them), sends for several pages, and an item's
    parameter twice or in both its `relative_url` and its `body`."""
    if isinstance(value, str):
        # Strict: a batch item naming `relative_url` or `method` twice is refused.
        value = load_json(value.encode("utf-8"), "batch")
    if not isinstance(value, list):
        raise BadDMRequest("batch must be a JSON array", 400)
    sends: list[tuple[int, str, dict[str, Any]]] = []
    others = 0
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadDMRequest(f"batch[{i}] must be a JSON object", 400)
        url = urlsplit(str(item.get("relative_url", "")))
        path = normalize_path("/" + unquote(url.path).lstrip("/"))
        match = _SEND.fullmatch(path)
        methods = {str(item.get("method", "GET")).strip().upper()}
        methods |= _overrides(parse_qsl(url.query, keep_blank_values=True))
        if _UNJUDGED.fullmatch(path) and methods - SAFE_READS:
            raise BadDMRequest(
                f"batch[{i}] messages people in a way dmgate does not judge (private "
                "replies, broadcasts, marketing messages)",
                400,
            )
        if match is None or not methods - SAFE_READS:
            others += 1
            continue
        if "depends_on" in item or "{result=" in json.dumps(item):
            raise BadDMRequest(
                f"batch[{i}] takes a value from another item's result: its recipient or text "
                "is unknown until Graph runs the batch, so dmgate cannot judge it",
                400,
            )
        body = item.get("body", "")
        if not isinstance(body, str):
            raise BadDMRequest(f"batch[{i}].body must be a URL-encoded string", 400)
        where = f"batch[{i}]"
        if ";" in url.query:
            raise BadDMRequest(f"';' in {where}.relative_url's query is refused", 400)
        query = unique_pairs(parse_qsl(url.query, keep_blank_values=True), f"{where} query")
        fields = unique_pairs(check_form(body.encode("utf-8"), f"{where} body"), f"{where} body")
        not_in_both(query, fields)
        sends.append((i, match.group("owner"), {**query, **fields}))
    if not sends:
        return None
    if others:
        raise BadDMRequest(
            "a Graph batch mixing message sends with other calls is refused: send the "
            "messages in a batch of their own",
            400,
        )
    if len({owner.strip().lower() for _, owner, _ in sends}) > 1:
        raise BadDMRequest("a Graph batch sending as several pages is refused", 400)
    return sends


# --- the adapter -----------------------------------------------------------------------


class MetaPlatform(Platform):
    """Messenger and Instagram messaging through the Graph API."""

    name: ClassVar[str] = "meta"
    routes: ClassVar[RouteTable] = _ROUTES

    def classify(self, req: RequestView) -> Classified:
        # Graph's `method` parameter overrides a GET's (or HEAD's) method: `method=post`
        # makes it a send, judged like one. A real POST is judged whatever `method` says:
        # which one Graph obeys on a POST is not documented, and a judged read is harmless.
        method = req.method.upper()
        overrides = _overrides(req.query) if method in SAFE_READS else set()
        if "POST" in overrides:
            method = "POST"
        elif overrides - SAFE_READS and _SEND.fullmatch(normalize_path(req.path)):
            raise RefusedRequest(
                f"{method} {req.path} with method={','.join(sorted(overrides))} refused: "
                "DM-send paths accept only POST (the send, which dmgate judges)",
                405,
            )
        return _ROUTES.classify(req, method)

    def credential(self, req: RequestView) -> str | None:
        token = req.query.get("access_token")
        if token:
            return token
        scheme, rest = authorization(req)
        if scheme in ("bearer", "oauth") and rest:
            return rest
        return None

    def account_from_request(self, call: Classified) -> str | None:
        # The page (or Instagram account) in a `/{id}/messages` path: Graph sends as that
        # page only with a token that may act for it, or refuses, so the path is proof.
        return _id_of(call.params["owner"]) if call.endpoint == SEND else None

    def whoami(self, call: Classified) -> RequestView | None:
        """`GET /me?fields=id,name` (same API version) with the request's token, where it
        was: the `access_token` query parameter (with `appsecret_proof`/`appsecret_time`,
        which apps that require them send with every call) or the Authorization header."""
        req = call.request
        path = call.params.get("version", "") + "/me"
        fields = ("fields", "id,name")
        token = req.query.get("access_token")
        if token:
            proof = [
                (name, value)
                for name in ("appsecret_proof", "appsecret_time")
                if (value := req.query.get(name))
            ]
            return identity_view(path, query=[fields, ("access_token", token), *proof])
        return identity_view_with_authorization(req, path, ("bearer", "oauth"), [fields])

    # --- DM requests --------------------------------------------------------------------

    def parse_dm(self, call: Classified, body: bytes) -> ParsedDM:
        endpoint, req = call.dm_endpoint("a Graph API send"), call.request
        form = _read_body(req, body)
        if endpoint == BATCH:
            return self._parse_batch(req, form)
        fields, _ = _send_fields(req, form)
        if "message" not in fields:
            if "sender_action" in fields:
                return _not_a_dm("a sender_action (typing_on, mark_seen) is not a message")
            raise BadDMRequest("message is required", 400)
        if "recipient" not in fields:
            raise BadDMRequest("recipient is required", 400)
        recipient = _recipient(fields["recipient"])
        text = _text(_json_field(fields["message"], "message"))
        return ParsedDM((recipient,), text, account_hint=self.account_from_request(call))

    def _parse_batch(self, req: RequestView, form: _Form) -> ParsedDM:
        """A Graph batch of message sends: each item judged on its own (`batch[1]`), the
        batch forwarded, held or blocked as a whole."""
        query = check_query(req)
        if "batch" in form.fields and "batch" in query:
            raise BadDMRequest("batch is given both in the query string and the body", 400)
        batch = form.fields["batch"] if "batch" in form.fields else query.get("batch")
        sends = _batch_sends(batch) if batch is not None else None
        if sends is None:
            return _not_a_dm("a Graph batch without message sends")
        parts = []
        for i, _, fields in sends:
            if "message" not in fields or "recipient" not in fields:
                raise BadDMRequest(f"batch[{i}] must carry recipient and message", 400)
            recipient = _recipient(fields["recipient"])
            text = _text(_json_field(fields["message"], f"batch[{i}].message"))
            parts.append((f"batch[{i}]", ParsedDM((recipient,), text)))
        # The page in the items' path proves the sender, as for a single send.
        hint = _id_of(sends[0][1])
        return ParsedDM((), "\n\n".join(p.text for _, p in parts), hint, parts=tuple(parts))

    def replace_text(self, call: Classified, body: bytes, text: str) -> bytes:
        if call.endpoint == BATCH:
            raise BadDMRequest(
                "a Graph batch has no single text to edit: approve it unedited or reject it",
                422,
            )
        self.parse_dm(call, body)
        form = _read_body(call.request, body)
        fields, source = _send_fields(call.request, form)
        if "message" not in fields:
            raise BadDMRequest("this request carries no message to edit", 422)
        where = source["message"]
        if where in ("query", "multipart"):
            raise BadDMRequest(
                f"the message travels in the {'URL' if where == 'query' else 'multipart body'}"
                ", which dmgate cannot edit: approve it unedited or reject it",
                422,
            )
        message = _json_field(fields["message"], "message")
        if _shown_text(message):
            raise BadDMRequest(
                "the message shows text in a template or quick replies, which dmgate cannot "
                "edit in place: approve it unedited or reject it",
                422,
            )
        if not text and not (message.get("attachment") or message.get("attachments")):
            raise BadDMRequest("the edited text is empty and the message has no attachment", 422)
        if text:
            message["text"] = text
        else:
            message.pop("text", None)
        if where == "json":
            doc = dict(form.fields)
            # Keep the form the field came in: an object stays an object, a string a string.
            doc["message"] = (
                dump_json(message).decode() if isinstance(form.fields["message"], str) else message
            )
            return dump_json(doc)
        encoded = dump_json(message).decode()
        pairs = [(k, encoded if k == "message" else v) for k, v in form.pairs]
        return urlencode(pairs).encode()

    # --- answers on Meta's behalf -------------------------------------------------------

    def hold_response(
        self, call: Classified, dm: ParsedDM, account: str, hold_id: str
    ) -> PlatformResponse:
        if call.endpoint == BATCH:
            # Graph answers a batch with one `{code, headers, body}` per item, each body
            # the JSON string the call alone would have answered.
            items = [
                {
                    "code": 200,
                    "headers": [{"name": "Content-Type", "value": "application/json"}],
                    "body": json.dumps(self._sent_answer(part, f"{hold_id}:{label}")),
                }
                for label, part in dm.parts
            ]
            return PlatformResponse(200, json.dumps(items).encode())
        return PlatformResponse(200, {**self._sent_answer(dm, hold_id), "dmgate": _marker(hold_id)})

    def _sent_answer(self, dm: ParsedDM, hold_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        recipient = dm.recipients[0] if dm.recipients else ""
        if recipient and ":" not in recipient:
            # The Send API answers `recipient_id` for PSID sends; for user_ref and private
            # replies the PSID is not known here, so the field is left out.
            body["recipient_id"] = recipient
        body["message_id"] = "m_" + hold_digest(hold_id, "message").hex()[:40]
        return body

    def block_response(self, call: Classified, reason: str) -> PlatformResponse:
        # Graph error code 10 is "Permission Denied" (OAuthException) in Graph's error
        # reference; messages follow Graph's "(#code) text" form.
        error = {
            "message": f"(#10) {reason}",
            "type": "OAuthException",
            "code": 10,
            "fbtrace_id": "dmgate" + hashlib.sha256(reason.encode()).hexdigest()[:16],
        }
        return PlatformResponse(
            403, {"error": error, "dmgate": {"decision": "block", "reason": reason}}
        )

    # --- webhooks -----------------------------------------------------------------------

    def webhook_challenge(
        self, query: MultiDictProxy[str], secret: str | None
    ) -> PlatformResponse | None:
        if query.get("hub.mode") != "subscribe" or "hub.challenge" not in query:
            return None
        if secret is None:
            return PlatformResponse(
                503,
                {"error": {"message": "dmgate: the meta webhook secret is not configured"}},
            )
        token = query.get("hub.verify_token", "")
        if not hmac.compare_digest(token.encode(), secret.encode()):
            return PlatformResponse(403, {"error": {"message": "verify token mismatch"}})
        return PlatformResponse(200, query["hub.challenge"].encode(), content_type="text/plain")

    def webhook_signature_valid(
        self, headers: CIMultiDictProxy[str], body: bytes, secret: str | None
    ) -> bool:
        values = headers.getall("X-Hub-Signature-256", [])
        if not secret or len(values) != 1:
            return False
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(values[0].strip().lower().encode(), expected.encode())

    def webhook_facts(self, body: bytes, received_at: datetime) -> list[Fact]:
        try:
            doc = json.loads(body)
            return _webhook_inbound(doc, received_at) if isinstance(doc, dict) else []
        except Exception:  # an unexpected payload teaches nothing; never fail the webhook
            return []

    # --- signals ------------------------------------------------------------------------

    def learn_from(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        if not isinstance(doc, dict):
            return []
        if call.endpoint == ME:
            # Instagram API with Instagram Login: `user_id` (when asked for) is the
            # professional account id that sends and webhooks use; `id` is app-scoped.
            uid = _id_of(doc.get("user_id")) or _id_of(doc.get("id"))
            return [Identity(uid), *_profile(doc)] if uid else []
        if call.endpoint == CONVERSATIONS:
            owner = _id_of(call.params["owner"]) or account
            return _learn_conversations(doc, owner)
        return _profile(doc)  # NODE: a User Profile API read


def _marker(hold_id: str) -> dict[str, str]:
    return {"hold_id": hold_id, "status": "pending"}


def _not_a_dm(why: str) -> ParsedDM:
    """Forward this request as it is, unjudged (the gateway passes it through)."""
    raise NotADirectMessage(why)


def _profile(user: Any) -> list[Fact]:
    if not isinstance(user, dict) or not (uid := _id_of(user.get("id"))):
        return []
    first, last = user.get("first_name"), user.get("last_name")
    names = [user.get("name"), " ".join(p for p in (first, last) if isinstance(p, str) and p)]
    names += [first, user.get("username")]
    kept = tuple(dict.fromkeys(n for n in names if isinstance(n, str) and n))
    if not kept:
        return []
    return [Profile.seen(uid, kept, username=user.get("username"), name=kept[0])]


def _time(value: Any) -> datetime | None:
    # Graph's `created_time`: "2024-05-01T10:00:00+0000".
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _learn_conversations(doc: dict[str, Any], owner: str | None) -> list[Fact]:
    """Conversations API (`GET /{page-id}/conversations?fields=participants,messages{…}`):
    participants' names, and who wrote to the page."""
    facts: list[Fact] = []
    inbound: list[InboundMessage] = []
    for conv in doc.get("data") or []:
        if not isinstance(conv, dict):
            continue
        for person in (conv.get("participants") or {}).get("data") or []:
            if _id_of((person or {}).get("id")) != owner:
                facts.extend(_profile(person))
        for message in (conv.get("messages") or {}).get("data") or []:
            sender = _id_of(((message or {}).get("from") or {}).get("id"))
            if owner is None or sender is None or sender == owner:
                continue
            inbound.append(InboundMessage(owner, sender, _time(message.get("created_time"))))
    return [*facts, *earliest_inbound(inbound)]


def _webhook_inbound(doc: dict[str, Any], received_at: datetime) -> list[Fact]:
    """`{"object": "page"|"instagram", "entry": [{"id": PAGE, "messaging": [{"sender",
    "recipient", "timestamp", "message"|"postback"}]}]}`: a person writing to the page.
    Echoes (`message.is_echo`, the page's own sends) are not inbound."""
    facts: list[Fact] = []
    for entry in doc.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        for event in entry.get("messaging") or []:
            if not isinstance(event, dict):
                continue
            message = event.get("message")
            if not (isinstance(message, dict) or isinstance(event.get("postback"), dict)):
                continue
            if isinstance(message, dict) and message.get("is_echo"):
                continue
            sender = _id_of((event.get("sender") or {}).get("id"))
            page = _id_of((event.get("recipient") or {}).get("id")) or _id_of(entry.get("id"))
            if sender is None or page is None or sender == page:
                continue
            at = received_at
            stamp = event.get("timestamp")
            if isinstance(stamp, int) and not isinstance(stamp, bool):
                at = datetime.fromtimestamp(stamp / 1000, tz=UTC)
            facts.append(InboundMessage(page, sender, at))
    return facts
