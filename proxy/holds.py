"""The hold service: the hold state machine and everything that moves a hold along it.

    pending ──approve──▶ sent | send_failed        (sent upstream exactly once)
       │ ──reject───▶ rejected                    (a reason is required)
       └──expiry───▶ expired                      (never sent)

A hold is written to the store — request, sealed credentials, the answer given to the
tool, its decision record and its announcement — in one transaction before the tool hears
anything, so an acknowledged hold survives `kill -9` and is never unannounced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import aiohttp
import structlog
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from policies.model import Decision, OutboundMessage
from proxy.clock import Clock
from proxy.contacts import Contacts
from proxy.crypto import Keyring, StoredRequest
from proxy.edits import SentMessages
from proxy.errors import DMGateError, NotFound, Unprocessable
from proxy.ids import new_id
from proxy.inbox.campaigns import template_id_for
from proxy.metrics import Metrics
from proxy.platforms.base import BadDMRequest, Classified, ParsedDM, Platform, RequestView
from proxy.relay import Relay
from proxy.settings import Route
from proxy.store import Store, StoreError
from proxy.store.database import Row
from proxy.store.decisions import DecisionRecord
from proxy.store.holds import PENDING, SEND_FAILED, SENT, NewHold
from proxy.store.inbox import policy_names
from proxy.store.outbox import NewNotification

log = structlog.get_logger("dmgate.holds")

# How much of the upstream's answer to a release is kept for the reviewer to read.
_UPSTREAM_BODY_KEEP = 4096
# A claimed release older than this belongs to a process that died mid-send.
STALE_CLAIM = timedelta(minutes=5)


def dedupe_key(platform: str, account: str, recipients: tuple[str, ...], text: str) -> str:
    """One DM, whoever repeats it: same account, recipients and text."""
    material = json.dumps([platform, account, sorted(recipients), text]).encode()
    return hashlib.sha256(material).hexdigest()


class HoldNotPending(Exception):
    """A decision on a hold that is no longer (or not yet again) pending."""

    def __init__(self, row: Row, verb: str) -> None:
        state = "being released" if row["status"] == PENDING else row["status"]
        message = (
            f"hold {row['id']} has expired"
            if state == "expired"
            else f"cannot {verb} hold {row['id']}: it is {state}"
        )
        super().__init__(message)
        self.row = row


@dataclass(frozen=True)
class HeldDM:
    """What a hold keeps of a DM the policies held."""

    route: str
    platform: Platform
    call: Classified
    dm: ParsedDM
    message: OutboundMessage
    key: str  # dedupe_key
    request: StoredRequest  # as it will be released (the judged, decoded body)


# A hold's announcement to the review endpoint, from its row (the review API's view).
Announcement = Callable[[Row], str]


class HoldService:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        relay: Relay,
        platforms: Mapping[str, Platform],
        routes: Mapping[str, Route],
        contacts: Contacts,
        metrics: Metrics,
        clock: Clock,
        ttl: timedelta,
        announce: Announcement | None,
        on_announce: Callable[[], None] = lambda: None,
        sent: SentMessages | None = None,
    ) -> None:
        self._sent = sent
        self._store = store
        self._keyring = keyring
        self._relay = relay
        self._platforms = platforms
        self._routes = routes
        self._contacts = contacts
        self._metrics = metrics
        self._clock = clock
        self._ttl = ttl
        self._announce = announce
        self._on_announce = on_announce

    async def create(self, held: HeldDM, decision: Decision, record: DecisionRecord) -> Row:
        """Store a hold (or find the pending one for the same DM: a retry) and return its
        row, whose stored answer is what the tool hears."""
        hold_id = new_id()
        message, now = held.message, record.created_at
        answer = held.platform.hold_response(held.call, held.dm, message.account, hold_id)
        new = NewHold(
            id=hold_id,
            platform=message.platform,
            route=held.route,
            account=message.account,
            recipients=list(message.recipients),
            text=message.text,
            # Shadow matches too: the reviewer sees every policy that had an opinion.
            policies=[m.as_dict() for m in decision.matches],
            dedupe_key=held.key,
            request_sealed=self._keyring.seal_request(held.request),
            response_status=answer.status,
            response_content_type=answer.content_type,
            response_headers=dict(answer.headers),
            response_body=answer.body_bytes(),
            created_at=now,
            expires_at=now + self._ttl,
            template_id=template_id_for(message, decision),
            policy_names=policy_names([m.as_dict() for m in decision.matches]),
        )
        notification = None
        if self._announce is not None:
            notification = NewNotification(
                id=new_id(), hold_id=hold_id, created_at=now, payload=self._announce(new.as_row())
            )
        row, created = await self._store.create_hold(
            new, replace(record, hold_id=hold_id), notification
        )
        if created:
            await self._count_pending()
            if notification is not None:
                self._on_announce()
            await self._keep_profiles(message.platform, message.recipients)
        return row

    async def _keep_profiles(self, platform: str, recipients: tuple[str, ...]) -> None:
        """The recipients' profiles stay while the hold waits for a reviewer. Best effort:
        the hold is stored; a failure only shortens how long they can be read."""
        try:
            await self._store.profiles.touch(platform, recipients, self._clock.now())
        except StoreError as exc:
            log.warning("profiles_not_kept", platform=platform, error=exc.cause)

    async def get(self, hold_id: str) -> Row:
        row = await self._store.holds.get(hold_id)
        if row is None:
            raise NotFound(f"no hold with id {hold_id!r}")
        return row

    async def approve(self, hold_id: str, by: str, text: str | None, note: str | None) -> Row:
        """Send the held DM (with `text` instead of its own, if given) exactly once."""
        row = await self._pending(hold_id)
        stored = self._keyring.open_request(row["request_sealed"])
        sent_text = row["text"] if text is None else text
        body = self._edited(row, stored, sent_text)
        if not await self._store.holds.claim_release(hold_id, by, self._clock.now()):
            raise HoldNotPending(await self._store.holds.get(hold_id) or row, "approve")
        status, upstream_status, upstream_body = await self._release(
            row, stored, body, self._learn_sent
        )
        done = self._clock.now()
        # What a retry must repeat to be let through after a failed send: what was approved.
        release_key = (
            row["dedupe_key"]
            if sent_text == row["text"]
            else dedupe_key(row["platform"], row["account"], tuple(row["recipients"]), sent_text)
        )
        await self._store.holds.finish_release(
            hold_id, status, done, note, sent_text, upstream_status, upstream_body, release_key
        )
        await self._resolved(status, row["created_at"], done)
        if status == SENT:
            await self._contacts.reached(row["platform"], row["account"], tuple(row["recipients"]))
        log.info(
            "hold_released",
            hold_id=hold_id,
            outcome=status,
            decided_by=by,
            upstream_status=upstream_status,
            edited=sent_text != row["text"],
        )
        return await self.get(hold_id)

    async def reject(self, hold_id: str, by: str, reason: str, note: str | None) -> Row:
        row = await self._pending(hold_id)
        now = self._clock.now()
        if not await self._store.holds.reject(hold_id, by, reason, note, now):
            raise HoldNotPending(await self._store.holds.get(hold_id) or row, "reject")
        await self._resolved("rejected", row["created_at"], now)
        log.info("hold_rejected", hold_id=hold_id, decided_by=by)
        return await self.get(hold_id)

    async def sweep(self) -> None:
        """Expire overdue holds, end releases orphaned by a crash, and keep the pending
        gauges true to the store (other replicas change it too)."""
        now = self._clock.now()
        for row in await self._store.holds.expire_due(now):
            self._metrics.holds_resolved.labels("expired").inc()
            log.info("hold_expired", hold_id=row["id"])
        for hid in await self._store.holds.abandon_stale_claims(now - STALE_CLAIM, now):
            self._metrics.holds_resolved.labels(SEND_FAILED).inc()
            log.warning("hold_release_interrupted", hold_id=hid)
        await self._count_pending()
        oldest = await self._store.holds.oldest_pending_created_at()
        self._metrics.oldest_pending_hold_age.set(
            (now - oldest).total_seconds() if oldest is not None else 0
        )

    async def expire_loop(self, interval: timedelta) -> None:
        while True:
            started = self._clock.monotonic()
            try:
                await self.sweep()
            except Exception as exc:  # keep the loop alive through store outages
                log.warning("expiry_sweep_failed", error=type(exc).__name__)
            await self._clock.sleep_until(started + interval.total_seconds())

    def _edited(self, row: Row, stored: StoredRequest, text: str) -> bytes:
        """The held request's body carrying `text`: the adapter edits the send it judged,
        classified again as when it arrived."""
        if text == row["text"]:
            return stored.body
        platform = self._platforms[row["platform"]]
        try:
            held = platform.classify(self._stored_view(row["route"], stored))
            return platform.replace_text(held, stored.body, text)
        except BadDMRequest as exc:
            raise Unprocessable(f"the edited text cannot be sent: {exc}") from None

    async def _release(
        self,
        row: Row,
        stored: StoredRequest,
        body: bytes,
        learn: Callable[[Row, StoredRequest, int, bytes, str | None], Awaitable[None]],
    ) -> tuple[str, int | None, str | None]:
        """Send a released DM: (status, upstream status, the start of its answer)."""
        headers = [(k, v) for k, v in stored.headers if k.lower() != "content-length"]
        url = URL(stored.url, encoded=True)
        try:
            async with await self._relay.send(
                row["route"], stored.method, url, headers, body, stored.host
            ) as resp:
                raw = await resp.content.read()  # an API answer to one send: small
                status, encoding = resp.status, resp.headers.get("Content-Encoding")
        except (TimeoutError, DMGateError, aiohttp.ClientError, ConnectionError) as exc:
            return SEND_FAILED, None, getattr(exc, "detail", None) or type(exc).__name__
        await learn(row, stored, status, raw, encoding)
        text = raw[:_UPSTREAM_BODY_KEEP].decode("utf-8", "replace")
        return (SENT if 200 <= status < 300 else SEND_FAILED), status, text

    async def _learn_sent(
        self, row: Row, stored: StoredRequest, status: int, raw: bytes, encoding: str | None
    ) -> None:
        """What the platform's answer to a released send teaches (a direct status's id)."""
        if self._sent is None or not 200 <= status < 300:
            return
        platform = self._platforms[row["platform"]]
        try:
            call = platform.classify(self._stored_view(row["route"], stored))
        except BadDMRequest:
            return
        await self._sent.learn_sent(platform, call, row["account"], status, raw, encoding)

    async def _resolved(self, outcome: str, created: datetime, decided: datetime) -> None:
        self._metrics.holds_resolved.labels(outcome).inc()
        self._metrics.hold_review_seconds.observe((decided - created).total_seconds())
        await self._count_pending()

    async def _count_pending(self) -> None:
        """The pending gauge, from the store: other workers and replicas change it too
        (an indexed count; holds are rare next to pass-through traffic)."""
        try:
            self._metrics.holds_pending.set(await self._store.holds.count_pending())
        except StoreError as exc:  # the next sweep sets it
            log.warning("pending_holds_not_counted", error=exc.cause)

    def _stored_view(self, route: str, stored: StoredRequest) -> RequestView:
        """The adapter's view of a held request, as when it arrived."""
        url = URL(stored.url, encoded=True)
        base = URL(self._routes[route].upstream).path.rstrip("/")
        path = url.path[len(base) :] if base and url.path.startswith(base) else url.path
        headers = CIMultiDictProxy(CIMultiDict(stored.headers))
        return RequestView(stored.method, path, MultiDictProxy(MultiDict(url.query)), headers)

    async def _pending(self, hold_id: str) -> Row:
        row = await self.get(hold_id)
        if row["status"] != PENDING:
            raise HoldNotPending(row, "decide")
        if row["expires_at"] <= self._clock.now():
            raise HoldNotPending({**row, "status": "expired"}, "decide")
        return row
