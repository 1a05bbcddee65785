"""Announcing new holds to the review endpoint, from the durable outbox.

Each notification is a row written in the same transaction as its hold, so it survives a
crash; this worker POSTs it, signed (`DMGate-Signature: sha256=<hex HMAC of the body>`) and
with `Idempotency-Key` (the row id) so a receiver can drop the duplicates that at-least-once
delivery can produce. Failures retry with exponential backoff until delivered, or until the
hold is no longer pending (then nobody needs the announcement).

`DMGATE_REVIEW_NOTIFY=slack` sends Slack incoming-webhook messages instead
(`proxy.inbox.slack`): the copies of one campaign that arrive in the same minute wait for
the minute's end and go out as one message. Holds pending longer than
`DMGATE_REVIEW_REMINDER` are announced again (`hold.reminder`), once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from proxy.context import Context
from proxy.inbox import slack, views
from proxy.store.database import Row
from proxy.store.holds import PENDING
from proxy.store.outbox import NewNotification

log = structlog.get_logger("dmgate.notify")

BACKOFF_START = 1.0
BACKOFF_MAX = 600.0
# Other replicas add rows too: look now and then even without a wake-up.
_IDLE_POLL = 30.0
# Longer than one delivery attempt can take (the client timeout below is 15 s).
DELIVERY_LEASE = timedelta(seconds=60)
CREATED, REMINDER = "hold.created", "hold.reminder"
# Slack: a campaign's copies arriving in one wall-clock minute are one message.
BATCH_WINDOW = timedelta(minutes=1)
SLACK_CLAIM_BATCH = 500
# Reminders are added during this long after a hold crosses an interval: each sweep then
# touches only the holds that just crossed one, not every old pending hold.
REMINDER_CATCH_UP = timedelta(minutes=10)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_START * 2 ** max(0, attempts - 1))


async def deliver_once(
    ctx: Context, session: aiohttp.ClientSession, now: datetime | None = None
) -> None:
    """Send every due notification once (`now`: the clock, for tests)."""
    now = now or datetime.now(UTC)
    if ctx.settings.review_notify == "slack":
        await _deliver_slack(ctx, session, now)
        return
    url = ctx.settings.review_webhook_url
    assert url is not None
    secret = ctx.settings.review_webhook_secret
    for row in await ctx.store.outbox.claim_due(now, DELIVERY_LEASE):
        hold = await ctx.store.holds.get(row["hold_id"])
        if hold is None or hold["status"] != PENDING:
            await ctx.store.outbox.abandoned(row["id"], now, "hold no longer pending")
            ctx.metrics.review_notifications.labels("abandoned").inc()
            continue
        body = row["payload"].encode()
        if _event(row) == REMINDER:  # the hold as it is now
            [shown] = await views.detailed(ctx, [hold])
            body = json.dumps({"event": REMINDER, "hold": shown}).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row["id"],
            "DMGate-Event": _event(row),
            "User-Agent": "dmgate",
        }
        if secret is not None:
            headers["DMGate-Signature"] = signature(secret.get_secret_value(), body)
        error = await _post(session, url, body, headers)
        if error is None:
            await ctx.store.outbox.delivered(row["id"], datetime.now(UTC))
            ctx.metrics.review_notifications.labels("delivered").inc()
            log.info("review_notified", hold_id=row["hold_id"])
        else:
            await _failed(ctx, [row], error)


def _event(row: Row) -> str:
    try:
        event = json.loads(row["payload"]).get("event")
    except (ValueError, AttributeError):
        event = None
    return event if isinstance(event, str) else CREATED


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> str | None:
    """None when delivered, else what went wrong."""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if 200 <= resp.status < 300:
                return None
            return f"HTTP {resp.status}"
    except (TimeoutError, aiohttp.ClientError) as exc:
        return type(exc).__name__


async def _failed(ctx: Context, rows: list[Row], error: str) -> None:
    for row in rows:
        attempts = row["attempts"] + 1
        delay = backoff(attempts)
        await ctx.store.outbox.retry_at(
            row["id"], datetime.now(UTC) + timedelta(seconds=delay), error
        )
        ctx.metrics.review_notifications.labels("failed").inc()
        log.warning(
            "review_notification_failed",
            hold_id=row["hold_id"],
            error=error,
            attempts=attempts,
            retry_in_s=delay,
        )


def minute_end(at: datetime) -> datetime:
    """The end of `at`'s wall-clock minute: a campaign's copies of one minute share it."""
    return at.replace(second=0, microsecond=0) + BATCH_WINDOW


async def _deliver_slack(ctx: Context, session: aiohttp.ClientSession, now: datetime) -> None:
    """Slack: one Block Kit message per campaign per minute, per other hold, and per
    sweep of reminders."""
    url = ctx.settings.review_webhook_url
    assert url is not None
    groups: dict[tuple[str, str], list[tuple[Row, Row]]] = {}
    for row in await ctx.store.outbox.claim_due(now, DELIVERY_LEASE, limit=SLACK_CLAIM_BATCH):
        hold = await ctx.store.holds.get(row["hold_id"])
        if hold is None or hold["status"] != PENDING:
            await ctx.store.outbox.abandoned(row["id"], now, "hold no longer pending")
            ctx.metrics.review_notifications.labels("abandoned").inc()
            continue
        if _event(row) == REMINDER:
            key = (REMINDER, "")
        elif hold.get("template_id"):
            due = minute_end(row["created_at"])
            if due > now:  # the rest of this minute's copies may still come
                await ctx.store.outbox.defer(row["id"], due)
                continue
            key = ("campaign", hold["template_id"])
        else:
            key = ("hold", hold["id"])
        groups.setdefault(key, []).append((row, hold))
    for (kind, _), items in groups.items():
        items.sort(key=lambda item: item[1]["id"])  # oldest hold first
        shown = await views.detailed(ctx, [hold for _, hold in items])
        payload = slack.message(shown, ctx.settings.public_url, reminder=kind == REMINDER)
        rows = [row for row, _ in items]
        problems = slack.check_limits(payload)
        if problems:  # a bug in slack.message: never worth a retry
            for row in rows:
                await ctx.store.outbox.abandoned(row["id"], now, "; ".join(problems)[:500])
                ctx.metrics.review_notifications.labels("abandoned").inc()
            log.error("slack_message_invalid", problems=problems)
            continue
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "dmgate"}
        error = await _post(session, url, body, headers)
        if error is None:
            done = datetime.now(UTC)
            for row in rows:
                await ctx.store.outbox.delivered(row["id"], done)
                ctx.metrics.review_notifications.labels("delivered").inc()
            log.info("review_notified", format="slack", holds=len(rows), kind=kind)
        else:
            await _failed(ctx, rows, error)


async def schedule_reminders(ctx: Context, now: datetime | None = None) -> int:
    """A reminder for every hold pending longer than DMGATE_REVIEW_REMINDER, once per
    hold per interval: its outbox id names the hold and the interval, so however many
    replicas run this, one row is added, and the outbox lease delivers it once."""
    now = now or datetime.now(UTC)
    every = ctx.settings.review_reminder
    if every <= timedelta(0):
        return 0
    due = []
    for hold_id, created in await ctx.store.inbox.pending_since(now - every):
        interval = int((now - created) / every)
        if now - created - interval * every > REMINDER_CATCH_UP:
            continue  # announced already (or missed while no replica ran): next interval

        material = f"{hold_id}:reminder:{interval}".encode()
        due.append(
            NewNotification(
                id=hashlib.sha256(material).hexdigest()[:32],
                hold_id=hold_id,
                created_at=now,
                payload=json.dumps({"event": REMINDER, "hold_id": hold_id, "interval": interval}),
            )
        )
    added = 0
    for i in range(0, len(due), 500):
        added += await ctx.store.outbox.add_once(due[i : i + 500])
    if added:
        log.info("review_reminders_scheduled", reminders=added)
    return added


async def notify_loop(ctx: Context) -> None:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            ctx.notify_wakeup.clear()
            wait = _IDLE_POLL
            try:
                await schedule_reminders(ctx)
                await deliver_once(ctx, session)
                nxt = await ctx.store.outbox.next_due_at()
                if nxt is not None:
                    wait = max(0.05, min(wait, (nxt - datetime.now(UTC)).total_seconds()))
            except Exception as exc:  # the store may be down: try again later
                log.warning("notification_sweep_failed", error=type(exc).__name__)
                wait = 5.0
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ctx.notify_wakeup.wait(), timeout=wait)
