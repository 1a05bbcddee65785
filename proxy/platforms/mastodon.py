"""Mastodon: direct statuses ("private mentions"), follow/mention notifications, identity.

A Mastodon DM is an ordinary `POST /api/v1/statuses` whose `visibility` is `direct`; it
reaches exactly the accounts @mentioned in `status` (mastodon/documentation
`content/en/methods/statuses.md`). Every status post is therefore a DM *candidate*:
`classify` cannot see the body, `parse_dm` reads it and raises `NotADirectMessage` for
public, unlisted and followers-only posts, which the proxy then forwards unjudged.
The judged text is all the recipient reads: the content warning (`spoiler_text`), a blank
line, the status, and a poll's options (a blank line, one a line); a reviewer's edit must
keep the warning and the options as they were and changes only the status.

Edits. `PUT` (or `PATCH`, which Rails routes alike) `/api/v1/statuses/:id` changes a
status's text, warning and poll but never its visibility: `parse_dm` reads it like a post
and sets `edit_of`; the pipeline (`proxy.edits`) judges it as a new DM to the status's
mentions (those it had and those the new text adds) when the status is direct, and
forwards it unjudged otherwise. dmgate knows a status is direct from the answer to its
create (`learn_sent_from`) or to a read of it (`GET /api/v1/statuses/:id`, a signal);
for any other it asks the instance that read with the tool's token (`edited_lookup`).

Parser differentials (`proxy.platforms.ambiguity`): Rails merges the query over the body
and Rack keeps the last of repeated keys and the last `name=` of a multipart part, so a
key twice (but Rails' list keys, `media_ids[]`, `poll[options][]`), two `name=`, `;` in
the query and a parameter in both query and body are refused (400); the text parameters
(`status`, `spoiler_text`, `poll`) must be in the body.

Keys. The sending account is the Mastodon account `id` (what `verify_credentials`
answers, what `DMGate-Account` carries, what `/api/v1/accounts/:id/followers` names).
Everyone else — recipients, followers, people who wrote first — is keyed by their
normalised `acct` (`user` for a local account, `user@domain` for a remote one,
lower-cased), because that is all a status text carries (`@user@domain`) and every
account object in an answer carries it too. So `Followed(account=<id>, follower=<acct>)`
and `InboundMessage(account=<id>, sender=<acct>)` line up with `recipients` of a DM.

Spellings. `/api/v1/statuses` is matched in any case and with any format suffix (`.json`,
`.xml`: Rails routes both to the same action). GET and HEAD there pass (Mastodon serves
`GET /api/v1/statuses?id[]=…`); other methods are refused (405). A mention is keyed the way
Mastodon resolves it: username case-folded, domain lower-cased in its IDNA form
(`@Alice@Example.COM` → `alice@example.com`), and a mention of a local account with the
instance's own domain is the bare username when the adapter is told that domain
(`MastodonPlatform(local_domains=…)`; requests do not carry it). Account ids are numbers
without leading zeros.

The module is pure: it reads the clock for `created_at` in hold answers and nothing else.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote_plus, unquote_plus

from proxy.facts import (
    Fact,
    Followed,
    FollowerSnapshot,
    Identity,
    InboundMessage,
    Profile,
    SentMessage,
)
from proxy.platforms.ambiguity import (
    check_form,
    check_query,
    disposition_params,
    is_list_key,
    not_in_both,
    part_disposition,
)
from proxy.platforms.base import (
    BadDMRequest,
    Classified,
    Kind,
    NotADirectMessage,
    ParsedDM,
    Platform,
    PlatformResponse,
    RequestView,
)
from proxy.platforms.ids import canonical_domain, canonical_number, number_or_none
from proxy.platforms.jsonbody import dump_json, load_json_object
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
    JSON_CONTENT_TYPE,
    earliest_inbound,
    iso_now,
    iso_time,
    media_type,
    names_in,
    synthetic_number,
)

STATUS_FIELDS = ("status", "visibility", "spoiler_text")

# Mentions as Mastodon finds them (mastodon/mastodon app/models/account.rb, main as of
# 2025, scanned by ProcessMentionsService over the status text only):
#   USERNAME_RE = /[a-z0-9_]+([.-]+[a-z0-9_]+)*/i
#   MENTION_RE  = %r{(?<![=/[:word:]])@((#{USERNAME_RE})(?:@[[:word:]]+([.-]+[[:word:]]+)*)?)}
# Onigmo's `[[:word:]]` on a UTF-8 string is Letter, Mark, Decimal_Number and
# Connector_Punctuation, which Python's `\w` is not (it leaves out marks and most
# connectors, and takes other numbers such as `²`): so the word test is by category, and
# the scan is by hand (Python's `re` has no Unicode categories). `[a-z]` under Ruby's /i
# folds like under Python's IGNORECASE (the Kelvin sign is a `k`).
_USERNAME = re.compile(r"[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*", re.IGNORECASE)
_WORD_CATEGORIES = ("Nd", "Pc")


def _ruby_word(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LM" or category in _WORD_CATEGORIES


def _domain_end(text: str, start: int) -> int:
    """The end of `[[:word:]]+([.-]+[[:word:]]+)*` matched greedily at `start` (== start
    if it does not match)."""
    n, end = len(text), start
    while end < n and _ruby_word(text[end]):
        end += 1
    if end == start:
        return start
    while True:
        sep = end
        while sep < n and text[sep] in ".-":
            sep += 1
        if sep == end or sep >= n or not _ruby_word(text[sep]):
            return end
        end = sep
        while end < n and _ruby_word(text[end]):
            end += 1


def _mention_spans(text: str) -> list[tuple[str, str | None]]:
    """(username, domain or None) of every mention, left to right, as `gsub(MENTION_RE)`
    finds them (a match's end is where the next search starts)."""
    found: list[tuple[str, str | None]] = []
    pos = 0
    while (at := text.find("@", pos)) >= 0:
        pos = at + 1
        if at > 0 and (text[at - 1] in "=/" or _ruby_word(text[at - 1])):
            continue
        user = _USERNAME.match(text, at + 1)
        if user is None:
            continue
        domain, pos = None, user.end()
        if text.startswith("@", pos):
            end = _domain_end(text, pos + 1)
            if end > pos + 1:
                domain, pos = text[pos + 1 : end], end
        found.append((user.group(), domain))
    return found


def normalize_acct(value: str, local_domains: Collection[str] = ()) -> str:
    """`@Bob@Example.Social` → `bob@example.social`; `@Bob` → `bob`; `bob@<a local
    domain>` → `bob` (Mastodon finds local accounts by username, case-insensitively)."""
    user, _, domain = value.strip().lstrip("@").partition("@")
    user = user.strip().casefold()
    if not domain.strip():
        return user
    host = canonical_domain(domain)
    return user if host in local_domains else f"{user}@{host}"


def mentions(text: str, local_domains: Collection[str] = ()) -> tuple[str, ...]:
    """The accounts a status text mentions, normalised, in order, without repeats."""
    found = [
        normalize_acct(f"{user}@{domain}" if domain else user, local_domains)
        for user, domain in _mention_spans(text)
    ]
    return tuple(dict.fromkeys(found))


# --- routes ----------------------------------------------------------------------------

STATUSES = "statuses"
STATUS_EDIT = "status_edit"
STATUS = "status"
VERIFY_CREDENTIALS = "verify_credentials"
NOTIFICATIONS = "notifications"
NOTIFICATION = "notification"
FOLLOWERS = "followers"
CONVERSATIONS = "conversations"


VERIFY_CREDENTIALS_PATH = "/api/v1/accounts/verify_credentials"
# Rails routes are case-sensitive, but judging a status Mastodon would 404 is harmless;
# missing one it would accept is not. Every route takes a format suffix (`(.:format)`).
# `GET /api/v1/statuses?id[]=…` reads statuses; other methods there are refused.
# `/api/v1/statuses/:id`: Rails routes PUT and PATCH to `update` (an edit: judged when
# the status is direct), GET reads it (which teaches whether it is direct), DELETE deletes
# it (passes); anything else there is refused. The id is any segment, as for Rails (it is
# read as a number when judged).
_STATUS_PATH = route_pattern("/api/v1/statuses/{id}", params={"id": r"[^/.]+"})
_STATUS_READS = frozenset({*SAFE_READS, "DELETE"})
_ROUTES = RouteTable(
    Route(STATUSES, "POST", Kind.DM, route_pattern("/api/v1/statuses"), reads=SAFE_READS),
    Route(STATUS_EDIT, "PUT", Kind.DM, _STATUS_PATH, reads=_STATUS_READS),
    Route(STATUS_EDIT, "PATCH", Kind.DM, _STATUS_PATH, reads=_STATUS_READS),
    Route(STATUS, "GET", Kind.SIGNAL, _STATUS_PATH),
    Route(VERIFY_CREDENTIALS, "GET", Kind.SIGNAL, route_pattern(VERIFY_CREDENTIALS_PATH)),
    Route(NOTIFICATIONS, "GET", Kind.SIGNAL, route_pattern("/api/v1/notifications")),
    Route(
        NOTIFICATION,
        "GET",
        Kind.SIGNAL,
        route_pattern("/api/v1/notifications/{id}", params={"id": "[0-9]+"}),
    ),
    Route(FOLLOWERS, "GET", Kind.SIGNAL, route_pattern("/api/v1/accounts/{id}/followers")),
    Route(CONVERSATIONS, "GET", Kind.SIGNAL, route_pattern("/api/v1/conversations")),
)


# --- request bodies --------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    value: str
    # multipart: where the value's bytes sit in the body, for an edit in place
    span: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Form:
    """The status parameters of a request body, whatever its encoding."""

    encoding: str  # "json" | "form" | "multipart"
    fields: dict[str, list[_Field]]  # scalar parameters by name (`media_ids[]` too)
    doc: dict[str, Any] | None = None  # the JSON document
    boundary: bytes | None = None

    def one(self, name: str) -> str | None:
        values = self.fields.get(name) or []
        if len(values) > 1:
            # Rails keeps the last of repeated keys; dmgate will not guess which text
            # Mastodon sends.
            raise BadDMRequest(f"the status parameter {name!r} is given more than once", 400)
        return values[0].value if values else None

    def poll_options(self) -> list[str]:
        """A poll's options (JSON `poll.options`, form `poll[options][]`): the recipient
        reads them with the status."""
        if self.doc is not None:
            poll = self.doc.get("poll")
            if poll is None:
                return []
            options = poll.get("options") if isinstance(poll, dict) else None
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                raise BadDMRequest("poll.options must be an array of strings", 400)
            return options
        return [
            f.value
            for name, values in self.fields.items()
            if name.startswith("poll[options]")
            for f in values
        ]

    def has_media(self) -> bool:
        if self.doc is not None:
            return bool(self.doc.get("media_ids"))
        return any(self.fields.get(k) for k in ("media_ids[]", "media_ids"))


def _param(content_type: str, name: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None


def _load_json(body: bytes) -> dict[str, Any]:
    return load_json_object(body, "status request body")


def _json_form(body: bytes) -> _Form:
    doc = _load_json(body)
    fields: dict[str, list[_Field]] = {}
    for name in STATUS_FIELDS:
        if name not in doc or doc[name] is None:
            continue
        if not isinstance(doc[name], str):
            raise BadDMRequest(f"{name} must be a string", 400)
        fields[name] = [_Field(doc[name])]
    return _Form("json", fields, doc=doc)


def _url_form(body: bytes) -> _Form:
    pairs = check_form(body, "status form body", is_list_key)
    fields: dict[str, list[_Field]] = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(_Field(value))
    return _Form("form", fields)


def _multipart_form(req: RequestView, body: bytes) -> _Form:
    boundary = _param(req.headers.get("Content-Type", ""), "boundary")
    if not boundary:
        raise BadDMRequest("multipart/form-data without a boundary", 400)
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, list[_Field]] = {}
    start = body.find(delimiter)
    if start < 0:
        raise BadDMRequest("multipart body has no part", 400)
    pos = start + len(delimiter)
    while True:
        if body[pos : pos + 2] == b"--":
            break  # the closing delimiter
        if body[pos : pos + 2] != b"\r\n":
            raise BadDMRequest("malformed multipart body", 400)
        head_end = body.find(b"\r\n\r\n", pos + 2)
        if head_end < 0:
            raise BadDMRequest("malformed multipart part headers", 400)
        content_start = head_end + 4
        end = body.find(b"\r\n" + delimiter, content_start)
        if end < 0:
            raise BadDMRequest("multipart body is not terminated", 400)
        headers = body[pos + 2 : head_end].decode("latin-1")
        name, filename = _disposition(headers)
        if name is not None and name in fields and not is_list_key(name):
            raise BadDMRequest(
                f"{name!r} is given twice in the multipart body: the platform could read "
                "either copy",
                400,
            )
        if name is not None and filename is None:
            try:
                value = body[content_start:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadDMRequest(f"multipart field {name!r} is not UTF-8", 400) from exc
            fields.setdefault(name, []).append(_Field(value, (content_start, end)))
        pos = end + 2 + len(delimiter)
    return _Form("multipart", fields, boundary=delimiter)


def _disposition(headers: str) -> tuple[str | None, str | None]:
    """A part's field name and file name; 400 for a part with two Content-Disposition
    headers or two `name=` (Rack reads the last, a first-match reader the first), or
    anything else parsers read differently (`ambiguity.part_disposition`)."""
    pairs = [line.partition(":")[::2] for line in headers.split("\r\n")]
    value = part_disposition(pairs)
    if value is None:
        return None, None
    params = disposition_params(value)
    return params.get("name"), params.get("filename")


def _form(req: RequestView, body: bytes) -> _Form:
    media = media_type(req)
    if media == "application/json":
        return _json_form(body)
    # Rack reads a POST without a Content-Type as form data, as Mastodon.py sends it.
    if media in (None, "application/x-www-form-urlencoded"):
        return _url_form(body)
    if media == "multipart/form-data":
        return _multipart_form(req, body)
    raise BadDMRequest(
        "status requests must be form data, multipart/form-data or application/json, "
        f"got {req.headers.get('Content-Type')!r}",
        415,
    )


def _around(spoiler: str | None, options: list[str]) -> tuple[str, str]:
    """What is read before the status (the content warning and a blank line) and after it
    (a blank line and the poll's options, one a line)."""
    prefix = spoiler + "\n\n" if spoiler else ""
    suffix = "\n\n" + "\n".join(options) if options else ""
    return prefix, suffix


def _is_direct(req: RequestView, form: _Form) -> bool:
    # Rails merges query parameters over body parameters; either naming `direct` makes
    # this a DM (judging a status Mastodon posts publicly is harmless, the reverse not).
    values = [form.one("visibility"), *req.query.getall("visibility", [])]
    return any(isinstance(v, str) and v.strip().lower() == "direct" for v in values)


# --- answer helpers --------------------------------------------------------------------


_MAX_ID_DIGITS = 20
# A Mastodon account or status id in its one spelling (no leading zeros), else None.
_id_of = partial(number_or_none, max_digits=_MAX_ID_DIGITS)


def _acct_of(account: Any, local_domains: Collection[str] = ()) -> str | None:
    if not isinstance(account, dict):
        return None
    acct = account.get("acct")
    if not isinstance(acct, str) or not acct.strip("@ "):
        return None
    return normalize_acct(acct, local_domains)


def _profile(account: Any, key: str | None = None, local: Collection[str] = ()) -> list[Fact]:
    """Display name and username of an account object, keyed by its acct (or `key`)."""
    if not isinstance(account, dict):
        return []
    user = key or _acct_of(account, local)
    names = names_in(account, ("display_name", "username"))
    if not user or not names:
        return []
    note = account.get("note")
    return [
        Profile.seen(
            user,
            names,
            username=user,
            name=account.get("display_name"),
            # The bio is HTML: kept as plain text (the page escapes whatever remains).
            description=_plain(note) if isinstance(note, str) else None,
        )
    ]


def _plain(markup: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]*>", " ", markup))).strip()


def _synthetic_id(hold_id: str) -> str:
    """A stable 18-digit id (like Mastodon's snowflake ids) for a held status."""
    return synthetic_number(hold_id, "mastodon-status", low=10**17, span=9 * 10**17)


def _content_html(text: str) -> str:
    """The status text as Mastodon renders plain text: paragraphs, line breaks, escaped."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br />')}</p>" for p in paragraphs)


# --- the adapter -----------------------------------------------------------------------

Learner = Callable[["MastodonPlatform", Classified, str | None, Any], list[Fact]]


class MastodonPlatform(Platform):
    """Mastodon's REST API (and compatible servers' `/api/v1`)."""

    name: ClassVar[str] = "mastodon"
    routes: ClassVar[RouteTable] = _ROUTES

    def __init__(self, local_domains: Collection[str] = ()) -> None:
        # The instance's own domain(s) (LOCAL_DOMAIN, and WEB_DOMAIN if it differs): a
        # mention `@alice@<local>` is the local `alice`. Requests do not say which
        # instance they are for, so this must be told.
        self.local_domains = frozenset(canonical_domain(d) for d in local_domains if d.strip())

    def credential(self, req: RequestView) -> str | None:
        scheme, rest = authorization(req)
        if scheme == "bearer":
            return rest or None
        # Rails' Doorkeeper also takes the token as a parameter.
        return req.query.get("access_token") or None

    # account_from_request stays None: Mastodon tokens are opaque, nothing in a request
    # proves whose they are; `whoami` asks the instance.

    def whoami(self, call: Classified) -> RequestView | None:
        """`GET /api/v1/accounts/verify_credentials` with the request's token, where it
        was (the Authorization header or the `access_token` parameter)."""
        me = identity_view_with_authorization(call.request, VERIFY_CREDENTIALS_PATH)
        token = call.request.query.get("access_token")
        if me is None and token:
            return identity_view(VERIFY_CREDENTIALS_PATH, query=[("access_token", token)])
        return me

    # --- DM requests --------------------------------------------------------------------

    def parse_dm(self, call: Classified, body: bytes) -> ParsedDM:
        """A direct status post, or an edit of a status (`edit_of`: the pipeline finds out
        whether that status is direct; an edit cannot change the visibility)."""
        endpoint = call.dm_endpoint("a Mastodon status post or edit")
        req = call.request
        form = _form(req, body)
        # Rails merges the query over the body: one reading of every parameter, or none.
        query = check_query(req, is_list_key)
        not_in_both(query, form.doc if form.doc is not None else form.fields)
        edit_of = None
        if endpoint == STATUS_EDIT:
            edit_of = canonical_number(call.params["id"], "the status id", _MAX_ID_DIGITS)
        elif not _is_direct(req, form):
            raise NotADirectMessage("not a direct status")
        shown = [k for k in query if k in ("status", "spoiler_text") or k.startswith("poll")]
        if shown:
            # Rails would read the query's text too: what the recipient reads is in the body.
            raise BadDMRequest(f"a direct status must carry `{shown[0]}` in the body", 400)
        text = form.one("status") or ""
        options = form.poll_options()
        if not text.strip() and not form.has_media() and not options:
            raise BadDMRequest("status is required unless media_ids are attached", 400)
        # The mentions (recipients) are the status's own; what the recipient reads is the
        # content warning, the status and the poll's options.
        prefix, suffix = _around(form.one("spoiler_text"), options)
        return ParsedDM(mentions(text, self.local_domains), prefix + text + suffix, edit_of=edit_of)

    def recipients_for(self, dm: ParsedDM, account: str) -> tuple[str, ...]:
        """The mentioned accounts. A direct status mentioning nobody reaches only its
        author: then the account itself is the one recipient. The sender's own mention
        (by acct) cannot be dropped here, the account being keyed by id."""
        others = tuple(r for r in dm.recipients if r != account)
        return others or dm.recipients or (account,)

    def replace_text(self, call: Classified, body: bytes, text: str) -> bytes:
        dm = self.parse_dm(call, body)
        form = _form(call.request, body)
        prefix, suffix = _around(form.one("spoiler_text"), form.poll_options())
        if not (text.startswith(prefix) and text.endswith(suffix)) or len(text) < len(
            prefix + suffix
        ):
            raise BadDMRequest(
                "the edit must keep the content warning (first paragraph) and the poll "
                "options (last paragraph) as they are: only the status itself is edited",
                422,
            )
        text = text[len(prefix) : len(text) - len(suffix)]
        if set(mentions(text, self.local_domains)) != set(dm.recipients):
            # The mentions are the recipients: an edit must not redirect a held DM.
            raise BadDMRequest(
                "the edited text must mention the same accounts as the original "
                f"({', '.join('@' + r for r in dm.recipients) or 'none'})",
                422,
            )
        if not text.strip() and not form.has_media():
            raise BadDMRequest("the edited text is empty and the status has no media", 422)
        if form.encoding == "json":
            assert form.doc is not None
            form.doc["status"] = text
            return dump_json(form.doc)
        if form.encoding == "form":
            pieces = body.decode("utf-8").split("&")
            out = []
            replaced = False
            for piece in pieces:
                key = unquote_plus(piece.partition("=")[0])
                if key == "status":
                    piece = "status=" + quote_plus(text)
                    replaced = True
                out.append(piece)
            if not replaced:
                out.append("status=" + quote_plus(text))
            return "&".join(p for p in out if p).encode("utf-8")
        # multipart: the `status` part's bytes replaced in place
        assert form.boundary is not None
        new = text.encode("utf-8")
        if form.boundary in new:
            raise BadDMRequest("the edited text contains the multipart boundary", 422)
        parts = form.fields.get("status")
        if not parts or parts[0].span is None:
            raise BadDMRequest("the multipart body has no status part to edit", 422)
        start, end = parts[0].span
        return body[:start] + new + body[end:]

    # --- answers on Mastodon's behalf -----------------------------------------------------

    def hold_response(
        self, call: Classified, dm: ParsedDM, account: str, hold_id: str
    ) -> PlatformResponse:
        """A Status entity (mastodon/documentation `content/en/entities/Status.md`), as
        `POST /api/v1/statuses` answers with 200. What dmgate cannot know (the sender's
        username, the mentioned accounts' ids, the instance's URLs) is empty or null."""
        # An edit answers with the edited status (its own id), as `PUT` does.
        status_id = dm.edit_of or _synthetic_id(hold_id)
        mentioned = [
            {
                "id": "",
                "username": acct.split("@", 1)[0],
                "acct": acct,
                "url": f"https://{acct.split('@', 1)[1]}/@{acct.split('@', 1)[0]}"
                if "@" in acct
                else None,
            }
            for acct in dm.recipients
        ]
        status = {
            "id": status_id,
            "created_at": iso_now(),
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": "direct",
            "language": None,
            "uri": f"urn:dmgate:hold:{hold_id}",
            "url": None,
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": iso_now() if dm.edit_of else None,
            "favourited": False,
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "pinned": False,
            "content": _content_html(dm.text),
            "filtered": [],
            "reblog": None,
            "application": None,
            "account": {"id": account, "username": "", "acct": "", "display_name": ""},
            "media_attachments": [],
            "mentions": mentioned,
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
            # Mastodon.py keeps unknown fields (types_base.try_cast ignores what it cannot
            # cast); the truth is also in the headers.
            "dmgate": {"hold_id": hold_id, "status": "pending"},
        }
        return PlatformResponse(200, status, content_type=JSON_CONTENT_TYPE)

    def block_response(self, call: Classified, reason: str) -> PlatformResponse:
        # Mastodon's error entity: `{"error": "..."}` (content/en/entities/Error.md); 403 is
        # what it answers for a forbidden action. Mastodon.py raises MastodonAPIError.
        body = {"error": reason, "dmgate": {"decision": "block", "reason": reason}}
        return PlatformResponse(403, body, content_type=JSON_CONTENT_TYPE)

    # --- signals --------------------------------------------------------------------------

    def learn_from(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        return _LEARNERS[call.endpoint](self, call, account, doc)

    def learn_sent_from(self, call: Classified, account: str, doc: Any) -> list[Fact]:
        """A created direct status's id (and mentions): an edit of it is a new DM."""
        if call.endpoint != STATUSES:
            return []
        return self._sent(doc, account)

    def _sent(self, doc: Any, author: str | None) -> list[Fact]:
        """A Status entity as a `SentMessage` of `author` (its own `account.id` if None)."""
        if not isinstance(doc, dict) or (status_id := _id_of(doc.get("id"))) is None:
            return []
        author = author or _id_of((doc.get("account") or {}).get("id"))
        if author is None:
            return []
        mentioned = tuple(
            dict.fromkeys(
                a for m in doc.get("mentions") or [] if (a := _acct_of(m, self.local_domains))
            )
        )
        return [SentMessage(author, status_id, mentioned, doc.get("visibility") == "direct")]

    def edited_lookup(self, call: Classified, message_id: str) -> RequestView | None:
        """`GET /api/v1/statuses/:id` with the request's token, where it was (the answer's
        `visibility` says whether the status is direct; read by `_learn_status`)."""
        path = f"/api/v1/statuses/{message_id}"
        me = identity_view_with_authorization(call.request, path)
        token = call.request.query.get("access_token")
        if me is None and token:
            return identity_view(path, query=[("access_token", token)])
        return me

    def _learn_status(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        """A status read: whether it is direct, keyed by its author, for its edits."""
        return self._sent(doc, None)

    def _learn_me(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        me = _id_of(doc.get("id"))
        if me is None:
            return []
        names = names_in(doc, ("display_name", "username", "acct"))
        return [Identity(me), *([Profile(me, names)] if names else [])]

    def _learn_notifications(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        """Follows (exact time) and direct mentions (someone wrote first). Notifications
        belong to the caller, so without a known caller only names are learnt."""
        items = doc if isinstance(doc, list) else [doc]
        facts: list[Fact] = []
        inbound: list[InboundMessage] = []
        for n in items:
            if not isinstance(n, dict):
                continue
            facts.extend(_profile(n.get("account"), local=self.local_domains))
            who = _acct_of(n.get("account"), self.local_domains)
            if account is None or who is None:
                continue
            if n.get("type") == "follow":
                facts.append(Followed(account, who, iso_time(n.get("created_at"))))
            elif n.get("type") == "mention":
                status = n.get("status")
                if isinstance(status, dict) and status.get("visibility") == "direct":
                    at = iso_time(status.get("created_at")) or iso_time(n.get("created_at"))
                    inbound.append(InboundMessage(account, who, at))
        return [*facts, *earliest_inbound(inbound)]

    def _learn_followers(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        owner = _id_of(call.params["id"])
        if owner is None or not isinstance(doc, list):
            return []
        followers = tuple(a for u in doc if (a := _acct_of(u, self.local_domains)))
        # Newest first; paging goes down with `max_id` (and up from `min_id`): only a page
        # without either is the top of the list. The Link header is not needed for that.
        query = call.request.query
        first = not (query.get("max_id") or query.get("min_id"))
        profiles = [f for u in doc for f in _profile(u, local=self.local_domains)]
        return [FollowerSnapshot(owner, followers, first_page=first), *profiles]

    def _learn_conversations(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        """Direct conversations: a last status by someone else means they wrote."""
        if account is None or not isinstance(doc, list):
            return []
        facts: list[Fact] = []
        for conversation in doc:
            if not isinstance(conversation, dict):
                continue
            last = conversation.get("last_status")
            if not isinstance(last, dict) or last.get("visibility") != "direct":
                continue
            author = last.get("account")
            who = _acct_of(author, self.local_domains)
            if who is None or _id_of((author or {}).get("id")) == account:
                continue
            facts.append(InboundMessage(account, who, iso_time(last.get("created_at"))))
            facts.extend(_profile(author, local=self.local_domains))
        return facts


_LEARNERS: dict[str, Learner] = {
    STATUS: MastodonPlatform._learn_status,
    VERIFY_CREDENTIALS: MastodonPlatform._learn_me,
    NOTIFICATIONS: MastodonPlatform._learn_notifications,
    NOTIFICATION: MastodonPlatform._learn_notifications,
    FOLLOWERS: MastodonPlatform._learn_followers,
    CONVERSATIONS: MastodonPlatform._learn_conversations,
}
