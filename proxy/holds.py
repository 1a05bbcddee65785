"""The hold state machine.

    pending ──approve──▶ sent | send_failed        (sent upstream exactly once)
       │ ──reject───▶ rejected                    (a reason is required)
       └──expiry───▶ expired                      (never sent)

A hold is written to the store — request, sealed credentials, the answer given to the
tool — before the tool hears anything, so an acknowledged hold survives `kill -9`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from policies.model import Decision, OutboundMessage
from proxy.context import Context
from proxy.crypto import StoredRequest
from proxy.errors import Conflict, DMGateError, NotFound, Unprocessable
from proxy.ids import new_id
from proxy.inbox.campaigns import template_id_for
from proxy.inbox.profiles import keep_recipient_profiles
from proxy.platforms.base import BadDMRequest, Classified, ParsedDM, Platform, RequestView
from proxy.relay import request_headers_for_upstream
from proxy.routing import Target
from proxy.store import StoreError
from proxy.store.decisions import DecisionRecord
from proxy.store.holds import PENDING, SEND_FAILED, SENT, NewHold
from proxy.store.inbox import policy_names
from proxy.store.outbox import NewNotification

log = structlog.get_logger("dmgate.holds")

DECISION_HEADER = "DMGate-Decision"
HOLD_ID_HEADER = "DMGate-Hold-Id"
# How much of the upstream's answer to a release is kept for the reviewer to read.
_UPSTREAM_BODY_KEEP = 4096
# A claimed release older than this belongs to a process that died mid-send.
STALE_CLAIM = timedelta(minutes=5)


def dedupe_key(platform: str, account: str, recipients: tuple[str, ...], text: str) -> str:
    """One DM, whoever repeats it: same account, recipients and text."""
    material = json.dumps([platform, account, sorted(recipients), text]).encode()
    return hashlib.sha256(material).hexdigest()


def hold_view(row: dict[str, Any]) -> dict[str, Any]:
    """The review API's `Hold`: never credentials, never the stored request."""

    def ts(v: datetime | None) -> str | None:
        return v.isoformat().replace("+00:00", "Z") if v else None

    return {
        "id": row["id"],
        "status": row["status"],
        "platform": row["platform"],
        "route": row["route"],
        "account": row["account"],
        "recipients": row["recipients"],
        "text": row["text"],
        "policies": row["policies"],
        "created_at": ts(row["created_at"]),
        "expires_at": ts(row["expires_at"]),
        "decided_at": ts(row["decided_at"]),
        "decided_by": row["decided_by"],
        "note": row["note"],
        "reason": row["reason"],
        "sent_text": row["sent_text"],
        "upstream_status": row["upstream_status"],
        "upstream_body": row["upstream_body"],
    }


def hold_answer(ctx: Context, row: dict[str, Any]) -> web.Response:
    """What the tool hears: the platform's own success answer (or 202), the truth in
    headers. A retry of the same DM hears exactly the same."""
    status = 202 if ctx.settings.hold_status == "202" else row["response_status"]
    return web.Response(
        status=status,
        body=row["response_body"],
        headers={
            "Content-Type": row["response_content_type"],
            **row["response_headers"],
            DECISION_HEADER: "hold",
            HOLD_ID_HEADER: row["id"],
        },
    )


async def create_hold(
    ctx: Context,
    request: web.Request,
    target: Target,
    platform: Platform,
    call: Classified,
    dm: ParsedDM,
    message: OutboundMessage,
    body: bytes,
    dedupe_key: str,
    decision: Decision,
    record: DecisionRecord,
    now: datetime,
) -> dict[str, Any]:
    hold_id = new_id()
    answer = platform.hold_response(call, dm, message.account, hold_id)
    headers = request_headers_for_upstream(request.headers)
    headers.popall("Content-Length", None)
    # `body` is the decoded copy the policies judged (and a reviewer may edit): released
    # as it is, so without the coding it arrived in.
    headers.popall("Content-Encoding", None)
    # Shadow matches too: the reviewer sees every policy that had an opinion.
    policies = [m.as_dict() for m in decision.matches]
    new = NewHold(
        id=hold_id,
        platform=platform.name,
        route=target.route_name,
        account=message.account,
        recipients=list(message.recipients),
        text=message.text,
        policies=policies,
        dedupe_key=dedupe_key,
        request_sealed=ctx.keyring.seal_request(
            StoredRequest(request.method, str(target.url), list(headers.items()), body, target.host)
        ),
        response_status=answer.status,
        response_content_type=answer.content_type,
        response_headers=dict(answer.headers),
        response_body=answer.body_bytes(),
        created_at=now,
        expires_at=now + ctx.settings.hold_ttl,
        template_id=template_id_for(message, decision),
        policy_names=policy_names(policies),
    )
    notification = None
    if ctx.settings.review_webhook_url:
        notification = NewNotification(
            id=new_id(),
            hold_id=hold_id,
            created_at=now,
            payload=json.dumps(
                {
                    "event": "hold.created",
                    "hold": hold_view(
                        {
                            **new.__dict__,
                            "status": PENDING,
                            "decided_at": None,
                            "decided_by": None,
                            "note": None,
                            "reason": None,
                            "sent_text": None,
                            "upstream_status": None,
                            "upstream_body": None,
                        }
                    ),
                }
            ),
        )
    row, created = await ctx.store.create_hold(
        new, DecisionRecord(**{**record.__dict__, "hold_id": hold_id}), notification
    )
    if created:
        ctx.metrics.holds_pending.inc()
        if notification is not None:
            ctx.notify_wakeup.set()
        await keep_recipient_profiles(ctx, platform.name, message.recipients, now)
    return row


async def approve(
    ctx: Context, hold_id: str, by: str, text: str | None, note: str | None
) -> dict[str, Any]:
    row = await _pending(ctx, hold_id)
    platform = ctx.platforms[row["platform"]]
    stored = ctx.keyring.open_request(row["request_sealed"])
    body = stored.body
    sent_text = row["text"]
    if text is not None and text != row["text"]:
        try:
            # Classified again as when it arrived: the adapter edits the send it judged.
            held = platform.classify(_stored_view(ctx, row["route"], stored))
            body = platform.replace_text(held, body, text)
        except BadDMRequest as exc:
            raise Unprocessable(f"the edited text cannot be sent: {exc}") from None
        sent_text = text
    now = datetime.now(UTC)
    if not await ctx.store.holds.claim_release(hold_id, by, now):
        raise _conflict(await ctx.store.holds.get(hold_id) or row, "approve")
    headers = [(k, v) for k, v in stored.headers if k.lower() != "content-length"]
    status, upstream_status, upstream_body = SEND_FAILED, None, None
    try:
        async with await ctx.relay.send(
            row["route"],
            stored.method,
            URL(stored.url, encoded=True),
            headers,
            body,
            stored.host,
        ) as resp:
            upstream_status = resp.status
            raw = await resp.content.read()  # an API answer to one send: small
            upstream_body = raw[:_UPSTREAM_BODY_KEEP].decode("utf-8", "replace")
            status = SENT if 200 <= resp.status < 300 else SEND_FAILED
    except (TimeoutError, DMGateError, aiohttp.ClientError) as exc:
        upstream_body = getattr(exc, "detail", None) or type(exc).__name__
    done = datetime.now(UTC)
    # What a retry must repeat to be let through after a failed send: what was approved.
    release_key = (
        row["dedupe_key"]
        if sent_text == row["text"]
        else dedupe_key(row["platform"], row["account"], tuple(row["recipients"]), sent_text)
    )
    await ctx.store.holds.finish_release(
        hold_id, status, done, note, sent_text, upstream_status, upstream_body, release_key
    )
    _resolved(ctx, status, row["created_at"], done)
    log.info(
        "hold_released",
        hold_id=hold_id,
        outcome=status,
        decided_by=by,
        upstream_status=upstream_status,
        edited=sent_text != row["text"],
    )
    return await _get(ctx, hold_id)


async def reject(
    ctx: Context, hold_id: str, by: str, reason: str, note: str | None
) -> dict[str, Any]:
    row = await _pending(ctx, hold_id)
    now = datetime.now(UTC)
    if not await ctx.store.holds.reject(hold_id, by, reason, note, now):
        raise _conflict(await ctx.store.holds.get(hold_id) or row, "reject")
    _resolved(ctx, "rejected", row["created_at"], now)
    log.info("hold_rejected", hold_id=hold_id, decided_by=by)
    return await _get(ctx, hold_id)


async def expire_loop(ctx: Context) -> None:
    """Expire overdue holds, end releases orphaned by a crash, and keep the pending gauge
    true to the store (other replicas change it too)."""
    while True:
        try:
            now = datetime.now(UTC)
            for row in await ctx.store.holds.expire_due(now):
                ctx.metrics.holds_resolved.labels("expired").inc()
                log.info("hold_expired", hold_id=row["id"])
            for hid in await ctx.store.holds.abandon_stale_claims(now - STALE_CLAIM, now):
                ctx.metrics.holds_resolved.labels(SEND_FAILED).inc()
                log.warning("hold_release_interrupted", hold_id=hid)
            ctx.metrics.holds_pending.set(await ctx.store.holds.count_pending())
            oldest = await ctx.store.holds.oldest_pending_created_at()
            ctx.metrics.oldest_pending_hold_age.set(
                (now - oldest).total_seconds() if oldest is not None else 0
            )
        except Exception as exc:  # keep the loop alive through store outages
            log.warning("expiry_sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(ctx.settings.expiry_interval.total_seconds())


async def note_reached(
    ctx: Context, platform: str, account: str, recipients: tuple[str, ...]
) -> None:
    """first_contact_pitch / burst: a DM reached these recipients (forwarded, or released
    on approval), so the next one is no first contact. Best effort: the DM is already
    sent; if the store fails, the next DM to them is judged as a first message again
    (the stricter side)."""
    if not ctx.policies.engine.tracks_contacts:
        return
    try:
        await ctx.store.signals.contacts_reached(platform, account, recipients, datetime.now(UTC))
    except StoreError as exc:
        log.warning("contacts_not_recorded", platform=platform, error=exc.cause)


def _resolved(ctx: Context, outcome: str, created: datetime, decided: datetime) -> None:
    ctx.metrics.holds_resolved.labels(outcome).inc()
    ctx.metrics.holds_pending.dec()
    ctx.metrics.hold_review_seconds.observe((decided - created).total_seconds())


def _stored_view(ctx: Context, route: str, stored: StoredRequest) -> RequestView:
    """The adapter's view of a held request, as when it arrived."""
    url = URL(stored.url, encoded=True)
    base = URL(ctx.settings.routes[route].upstream).path.rstrip("/")
    path = url.path[len(base) :] if base and url.path.startswith(base) else url.path
    headers = CIMultiDictProxy(CIMultiDict(stored.headers))
    return RequestView(stored.method, path, MultiDictProxy(MultiDict(url.query)), headers)


async def _pending(ctx: Context, hold_id: str) -> dict[str, Any]:
    row = await _get(ctx, hold_id, raw=True)
    if row["status"] != PENDING:
        raise _conflict(row, "decide")
    if row["expires_at"] <= datetime.now(UTC):
        raise Conflict(f"hold {hold_id} has expired", hold=hold_view({**row, "status": "expired"}))
    return row


async def _get(ctx: Context, hold_id: str, raw: bool = False) -> dict[str, Any]:
    row = await ctx.store.holds.get(hold_id)
    if row is None:
        raise NotFound(f"no hold with id {hold_id!r}")
    return row if raw else hold_view(row)


def _conflict(row: dict[str, Any], verb: str) -> Conflict:
    state = "being released" if row["status"] == PENDING else row["status"]
    return Conflict(f"cannot {verb} hold {row['id']}: it is {state}", hold=hold_view(row))
