"""The seam between dmgate and one social network.

An adapter is pure: it looks at a request (and, for signals, the upstream's answer) and
says what it is, what it means, and how to answer on the network's behalf. It never does
I/O: `proxy.gateway`, `proxy.identity` and `proxy.holds` do that around it.

The gateway asks `classify` once per request and hands the `Classified` it returns to
every later call, so an adapter reads a path once. Webhooks are a separate, optional
interface (`WebhookPlatform`). The checklist for adding a network is in
`proxy/platforms/__init__.py`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from multidict import CIMultiDictProxy, MultiDictProxy

from proxy.facts import Fact

if TYPE_CHECKING:
    from proxy.platforms.routes import RouteTable


class Kind(StrEnum):
    DM = "dm"
    SIGNAL = "signal"
    PASSTHROUGH = "passthrough"


@dataclass(frozen=True)
class RequestView:
    """What an adapter sees of a request. `path` is the path below the route prefix,
    percent-decoded, starting with `/` (`/2/users/me` for `/x/2/users/me`).
    `query_string` is the query as sent (still encoded), for what parsing hides (`;`)."""

    method: str
    path: str
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    query_string: str = ""


@dataclass(frozen=True)
class Classified:
    """A request and what its adapter made of it: the `kind`, the adapter's name for the
    `endpoint` (one of its route names; "" for passthrough) and the path `params` that
    route captured. `classify` makes it; every later adapter call gets it."""

    request: RequestView
    kind: Kind
    endpoint: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    refused: str = ""  # the route's `Route.refused`

    def dm_endpoint(self, what: str) -> str:
        """The endpoint of a DM send, or `BadDMRequest` naming `what` it is not (`"an X DM
        send"`), or why dmgate refuses this send (`Route.refused`)."""
        where = f"{self.request.method} {self.request.path}"
        if self.kind is not Kind.DM:
            raise BadDMRequest(f"{where} is not {what}", 400)
        if self.refused:
            raise BadDMRequest(f"{where} is a DM send dmgate does not judge: {self.refused}", 400)
        return self.endpoint


def normalize_path(path: str) -> str:
    """The path a platform's router would see, for classification only (what is forwarded
    is untouched): no empty or `.` segments, `..` applied, no `;params` (some servers drop
    them), no trailing slash. A trick path must never be missed as a DM send."""
    segments: list[str] = []
    for raw in path.split("/"):
        segment = raw.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


class BadDMRequest(Exception):
    """A DM request dmgate cannot judge (malformed JSON, no recipient, wrong content type).
    It is answered with `status` and never forwarded."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RefusedRequest(BadDMRequest):
    """Raised by `classify` for a request dmgate will neither judge nor forward: another
    method on a DM-send path (`PUT /2/dm_conversations/with/1/messages`), where the
    platform might act on it as a send. Answered with `status` (405 unless said), never
    forwarded."""

    def __init__(self, message: str, status: int = 405) -> None:
        super().__init__(message, status)


class NotADirectMessage(Exception):
    """Raised by `parse_dm` when the body shows the request is no DM after all (a public
    Mastodon status: `classify` cannot see the body). It is forwarded untouched and
    unjudged, like a passthrough."""


@dataclass(frozen=True)
class ParsedDM:
    """The parts of a DM send request the policies need. `recipients` may be empty when
    the request names only `conversation_id`: the proxy then uses the members it learnt
    for that conversation (a `ConversationMembers` fact), or the conversation id itself."""

    recipients: tuple[str, ...]
    text: str
    # The sending account when the request itself names it (e.g. the OAuth 1.0a token).
    account_hint: str | None = None
    conversation_id: str | None = None
    recipient_names: tuple[str, ...] = ()
    # The platform carries the text end-to-end encrypted (XChat): `text` is "" and only
    # the policies that need no text can judge it.
    opaque: bool = False
    # The send edits the platform's message `edit_of` (a Mastodon status edit): it is a DM
    # only if that message was one, to its recipients as well as `recipients`. The
    # pipeline finds out (`proxy.edits`); `Platform.edited_lookup` asks the platform.
    edit_of: str | None = None
    # A batch of messages (Bluesky `sendMessageBatch` items): each part is judged on its
    # own, with its own recipients, under its label (`items[1]`); the batch is forwarded,
    # held or blocked as a whole, by the strictest verdict, which names the part. `text`
    # is all the parts' texts, `recipients` stays empty (the parts' together are judged).
    parts: tuple[tuple[str, ParsedDM], ...] = ()


@dataclass(frozen=True)
class PlatformResponse:
    """An answer dmgate gives in the platform's own shape. `body` is JSON-encoded unless
    it is already bytes."""

    status: int
    body: dict[str, Any] | bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


class Platform(ABC):
    """One social network's request shapes and answer shapes."""

    name: ClassVar[str]
    # The endpoints dmgate tells apart; `classify` reads the path against them.
    routes: ClassVar[RouteTable]

    def classify(self, req: RequestView) -> Classified:
        """dm, signal or passthrough, with the endpoint and its path parameters. Any
        spelling the platform's router would take as a DM send (path case,
        percent-encoding, a `.json` suffix, a trailing slash) is a DM; another method on a
        DM-send path raises `RefusedRequest`."""
        return self.routes.classify(req)

    @abstractmethod
    def credential(self, req: RequestView) -> str | None:
        """The secret that identifies the calling user (bearer token, session cookie), or
        None. dmgate keeps only a keyed hash of it."""

    def account_from_request(self, call: Classified) -> str | None:
        """The sending account when the request itself proves it without a lookup: the
        platform acts as that account or refuses (an OAuth 1.0a token's user id, a JWT's
        `sub`, the page id in a Graph send path). Never a value the tool merely asserts."""
        return None

    def whoami(self, call: Classified) -> RequestView | None:
        """The platform's own "who am I" request carrying this request's credential (and
        nothing else of it), for a sender dmgate has never identified: the gateway sends it
        upstream once per credential and reads the answer with `learn`, which must yield an
        `Identity`. `path` is below the route prefix. None: the platform has none."""
        return None

    @abstractmethod
    def parse_dm(self, call: Classified, body: bytes) -> ParsedDM:
        """Extract recipients and text; raise `BadDMRequest` when that is impossible."""

    def recipients_for(self, dm: ParsedDM, account: str) -> tuple[str, ...]:
        """The recipients of `dm` once the sending `account` is known. `parse_dm` cannot
        always tell the sender from the other participants (an X conversation id names
        both); the sender is dropped here. Never empty: a DM to oneself keeps its one
        recipient."""
        others = tuple(r for r in dm.recipients if r != account)
        return others or dm.recipients

    @abstractmethod
    def replace_text(self, call: Classified, body: bytes, text: str) -> bytes:
        """The same request body with the message text replaced (a reviewer's edit)."""

    def learn(self, call: Classified, account: str | None, status: int, body: bytes) -> list[Fact]:
        """Facts from a signal request's upstream answer. `account` is the caller's account
        if known. Only signals teach; a failed answer teaches nothing, and an odd one (not
        JSON, unexpected shapes) must not break the request it came with."""
        if call.kind is not Kind.SIGNAL or not 200 <= status < 300:
            return []
        try:
            return self.learn_from(call, account, json.loads(body))
        except Exception:
            return []

    @abstractmethod
    def learn_from(self, call: Classified, account: str | None, doc: Any) -> list[Fact]:
        """Facts from a successful signal answer's decoded JSON `doc` (see `learn`)."""

    @abstractmethod
    def hold_response(
        self, call: Classified, dm: ParsedDM, account: str, hold_id: str
    ) -> PlatformResponse:
        """The platform's own success answer for a send, so the tool moves on."""

    @abstractmethod
    def block_response(self, call: Classified, reason: str) -> PlatformResponse:
        """A 403 in the platform's own error shape, naming `reason`."""

    def learn_sent(self, call: Classified, account: str, status: int, body: bytes) -> list[Fact]:
        """Facts from the platform's answer to a DM send dmgate forwarded or released (the
        id of a direct status, so an edit of it is judged). A failed or odd answer teaches
        nothing; never raises."""
        if not self.learns_from_sends or not 200 <= status < 300:
            return []
        try:
            return self.learn_sent_from(call, account, json.loads(body))
        except Exception:
            return []

    def learn_sent_from(self, call: Classified, account: str, doc: Any) -> list[Fact]:
        """`learn_sent` on the decoded JSON answer; nothing by default."""
        return []

    @property
    def learns_from_sends(self) -> bool:
        """Whether answers to sends teach anything (`learn_sent_from` is overridden): the
        others are not decoded at all."""
        return type(self).learn_sent_from is not Platform.learn_sent_from

    def edited_lookup(self, call: Classified, message_id: str) -> RequestView | None:
        """The platform's read of the message an edit (`ParsedDM.edit_of`) changes, with
        this request's credential and nothing else of it, for a message dmgate never saw
        sent: its answer, read with `learn`, must yield a `SentMessage` saying whether it
        is direct. None: the platform has none (the edit is then refused)."""
        return None

    def rewrite_response(self, call: Classified, body: bytes, public_base_url: str) -> bytes | None:
        """A signal answer as the tool should see it, or None to relay it untouched: for
        answers that would lead the client around dmgate (a Bluesky session's DID
        document). `public_base_url` is where the client reaches this route
        (`http://dmgate:8080/bluesky`)."""
        return None


@runtime_checkable
class WebhookPlatform(Protocol):
    """What an adapter implements when its network pushes events to
    `/webhooks/{platform}` (X's Account Activity API, Meta's subscriptions)."""

    name: ClassVar[str]

    def webhook_challenge(
        self, query: MultiDictProxy[str], secret: str | None
    ) -> PlatformResponse | None:
        """Answer a webhook registration handshake (GET), or None if this is not one."""

    def webhook_signature_valid(
        self, headers: CIMultiDictProxy[str], body: bytes, secret: str | None
    ) -> bool:
        """Whether a webhook POST is authentic."""

    def webhook_facts(self, body: bytes, received_at: datetime) -> list[Fact]:
        """Facts carried by a webhook POST; an odd payload teaches nothing (never raises)."""
