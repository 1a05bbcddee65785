"""Announcing new holds to the review endpoint, from the durable outbox.

Each notification is a row written in the same transaction as its hold, so it survives a
crash; this worker POSTs it, signed (`DMGate-Signature: sha256=<hex HMAC of the body>`) and
with `Idempotency-Key` (the row id) so a receiver can drop the duplicates that at-least-once
delivery can produce. Failures retry with exponential backoff until delivered, or until the
hold is no longer pending (then nobody needs the announcement).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

import aiohttp
import structlog
from pydantic import SecretStr

from proxy.clock import Clock
from proxy.metrics import Metrics
from proxy.store import Store
from proxy.store.database import Row
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


class Notifier:
    """Delivers the outbox to the review endpoint; `wakeup` is set when a hold is new."""

    def __init__(
        self,
        store: Store,
        url: str,
        secret: SecretStr | None,
        metrics: Metrics,
        clock: Clock,
        wakeup: asyncio.Event,
    ) -> None:
        self._store = store
        self._url = url
        self._secret = secret
        self._metrics = metrics
        self._clock = clock
        self.wakeup = wakeup

    async def deliver_once(self, session: aiohttp.ClientSession) -> None:
        """Send every due notification once."""
        now = self._clock.now()
        for row in await self._store.outbox.claim_due(now, DELIVERY_LEASE):
            hold = await self._store.holds.get(row["hold_id"])
            if hold is None or hold["status"] != PENDING:
                await self._store.outbox.abandoned(row["id"], now, "hold no longer pending")
                self._metrics.review_notifications.labels("abandoned").inc()
                continue
            error = await self._post(session, row)
            if error is None:
                await self._store.outbox.delivered(row["id"], self._clock.now())
                self._metrics.review_notifications.labels("delivered").inc()
                log.info("review_notified", hold_id=row["hold_id"])
                continue
            attempts = row["attempts"] + 1
            delay = backoff(attempts)
            await self._store.outbox.retry_at(
                row["id"], self._clock.now() + timedelta(seconds=delay), error
            )
            self._metrics.review_notifications.labels("failed").inc()
            log.warning(
                "review_notification_failed",
                hold_id=row["hold_id"],
                error=error,
                attempts=attempts,
                retry_in_s=delay,
            )

    async def _post(self, session: aiohttp.ClientSession, row: Row) -> str | None:
        """POST one notification; None when the endpoint took it, else what went wrong."""
        body = row["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row["id"],
            "DMGate-Event": "hold.created",
            "User-Agent": "dmgate",
        }
        if self._secret is not None:
            headers["DMGate-Signature"] = signature(self._secret.get_secret_value(), body)
        try:
            async with session.post(self._url, data=body, headers=headers) as resp:
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return type(exc).__name__

    async def loop(self) -> None:
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                self.wakeup.clear()
                started, now = self._clock.monotonic(), self._clock.now()
                wait = _IDLE_POLL
                try:
                    await self.deliver_once(session)
                    nxt = await self._store.outbox.next_due_at()
                    if nxt is not None:
                        wait = max(0.05, min(wait, (nxt - now).total_seconds()))
                except Exception as exc:  # the store may be down: try again later
                    log.warning("notification_sweep_failed", error=type(exc).__name__)
                    wait = 5.0
                await self._clock.wait_until(self.wakeup, started + wait)
