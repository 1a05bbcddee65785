"""Announcing new holds to the review endpoint, from the durable outbox.

Each notification is a row written in the same transaction as its hold, so it survives a
crash; this worker POSTs it, signed (`DMGate-Signature: sha256=<hex HMAC of the body>`) and
with `Idempotency-Key` (the row id) so a receiver can drop the duplicates that at-least-once
delivery can produce. Failures retry with exponential backoff until delivered, or until the
hold is no longer pending (then nobody needs the announcement).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from proxy.context import Context
from proxy.store.holds import PENDING

log = structlog.get_logger("dmgate.notify")

BACKOFF_START = 1.0
BACKOFF_MAX = 600.0
# Other replicas add rows too: look now and then even without a wake-up.
_IDLE_POLL = 30.0
# Longer than one delivery attempt can take (the client timeout below is 15 s).
DELIVERY_LEASE = timedelta(seconds=60)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_START * 2 ** max(0, attempts - 1))


async def deliver_once(ctx: Context, session: aiohttp.ClientSession) -> None:
    """Send every due notification once."""
    url = ctx.settings.review_webhook_url
    assert url is not None
    secret = ctx.settings.review_webhook_secret
    now = datetime.now(UTC)
    for row in await ctx.store.outbox.claim_due(now, DELIVERY_LEASE):
        hold = await ctx.store.holds.get(row["hold_id"])
        if hold is None or hold["status"] != PENDING:
            await ctx.store.outbox.abandoned(row["id"], now, "hold no longer pending")
            ctx.metrics.review_notifications.labels("abandoned").inc()
            continue
        body = row["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row["id"],
            "DMGate-Event": "hold.created",
            "User-Agent": "dmgate",
        }
        if secret is not None:
            headers["DMGate-Signature"] = signature(secret.get_secret_value(), body)
        error = None
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                if 200 <= resp.status < 300:
                    await ctx.store.outbox.delivered(row["id"], datetime.now(UTC))
                    ctx.metrics.review_notifications.labels("delivered").inc()
                    log.info("review_notified", hold_id=row["hold_id"], status=resp.status)
                    continue
                error = f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = type(exc).__name__
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


async def notify_loop(ctx: Context) -> None:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            ctx.notify_wakeup.clear()
            wait = _IDLE_POLL
            try:
                await deliver_once(ctx, session)
                nxt = await ctx.store.outbox.next_due_at()
                if nxt is not None:
                    wait = max(0.05, min(wait, (nxt - datetime.now(UTC)).total_seconds()))
            except Exception as exc:  # the store may be down: try again later
                log.warning("notification_sweep_failed", error=type(exc).__name__)
                wait = 5.0
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ctx.notify_wakeup.wait(), timeout=wait)
