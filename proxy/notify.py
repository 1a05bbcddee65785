"""Announcing new holds to the review endpoint, from the durable outbox.

Each notification is a row written in the same transaction as its hold, so it survives a
crash; this worker POSTs it, signed (`DMGate-Signature: sha256=<hex HMAC of the body>`) and
with `Idempotency-Key` (the row id) so a receiver can drop the duplicates that at-least-once
delivery can produce. Failures retry with exponential backoff until delivered, or until the
hold is no longer pending (then nobody needs the announcement).

`DMGATE_REVIEW_NOTIFY=slack` sends Slack incoming-webhook messages instead
(`proxy.inbox.slack`): the copies of one campaign that arrive in the same minute wait for
the minute's end and go out as one message. Holds pending longer than
`DMGATE_REVIEW_REMINDER` are announced again (`hold.reminder`), once per interval: a
reminder's outbox id names its hold and interval, so replicas add it once, and the
outbox lease delivers it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime, timedelta

import aiohttp
import structlog
from pydantic import SecretStr

from proxy.clock import Clock
from proxy.inbox import slack, views
from proxy.metrics import Metrics
from proxy.store import Store
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


def minute_end(at: datetime) -> datetime:
    """The end of `at`'s wall-clock minute: a campaign's copies of one minute share it."""
    return at.replace(second=0, microsecond=0) + BATCH_WINDOW


def _event(row: Row) -> str:
    try:
        event = json.loads(row["payload"]).get("event")
    except (ValueError, AttributeError):
        event = None
    return event if isinstance(event, str) else CREATED


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
        slack: bool = False,
        public_url: str | None = None,
        reminder: timedelta | None = None,
    ) -> None:
        self._store = store
        self._url = url
        self._secret = secret
        self._metrics = metrics
        self._clock = clock
        self.wakeup = wakeup
        self._slack = slack
        self._public_url = public_url
        self._reminder = reminder

    async def deliver_once(self, session: aiohttp.ClientSession) -> None:
        """Send every due notification once."""
        if self._slack:
            await self._deliver_slack(session)
            return
        now = self._clock.now()
        for row in await self._store.outbox.claim_due(now, DELIVERY_LEASE):
            hold = await self._store.holds.get(row["hold_id"])
            if hold is None or hold["status"] != PENDING:
                await self._store.outbox.abandoned(row["id"], now, "hold no longer pending")
                self._metrics.review_notifications.labels("abandoned").inc()
                continue
            body = row["payload"].encode()
            if _event(row) == REMINDER:  # the hold as it is now
                [shown] = await views.detailed(self._store, [hold])
                body = json.dumps({"event": REMINDER, "hold": shown}).encode()
            error = await self._post(session, row, body)
            if error is None:
                await self._store.outbox.delivered(row["id"], self._clock.now())
                self._metrics.review_notifications.labels("delivered").inc()
                log.info("review_notified", hold_id=row["hold_id"])
                continue
            await self._failed([row], error)

    async def _failed(self, rows: list[Row], error: str) -> None:
        for row in rows:
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

    async def _post(self, session: aiohttp.ClientSession, row: Row, body: bytes) -> str | None:
        """POST one notification; None when the endpoint took it, else what went wrong."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row["id"],
            "DMGate-Event": _event(row),
            "User-Agent": "dmgate",
        }
        if self._secret is not None:
            headers["DMGate-Signature"] = signature(self._secret.get_secret_value(), body)
        return await self._send(session, body, headers)

    async def _send(
        self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
    ) -> str | None:
        try:
            async with session.post(self._url, data=body, headers=headers) as resp:
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return type(exc).__name__

    async def _deliver_slack(self, session: aiohttp.ClientSession) -> None:
        """Slack: one Block Kit message per campaign per minute, per other hold, and per
        sweep of reminders."""
        now = self._clock.now()
        groups: dict[tuple[str, str], list[tuple[Row, Row]]] = {}
        due = await self._store.outbox.claim_due(now, DELIVERY_LEASE, limit=SLACK_CLAIM_BATCH)
        for row in due:
            hold = await self._store.holds.get(row["hold_id"])
            if hold is None or hold["status"] != PENDING:
                await self._store.outbox.abandoned(row["id"], now, "hold no longer pending")
                self._metrics.review_notifications.labels("abandoned").inc()
                continue
            if _event(row) == REMINDER:
                key = (REMINDER, "")
            elif hold.get("template_id"):
                until = minute_end(row["created_at"])
                if until > now:  # the rest of this minute's copies may still come
                    await self._store.outbox.defer(row["id"], until)
                    continue
                key = ("campaign", hold["template_id"])
            else:
                key = ("hold", hold["id"])
            groups.setdefault(key, []).append((row, hold))
        for (kind, _), items in groups.items():
            items.sort(key=lambda item: item[1]["id"])  # oldest hold first
            shown = await views.detailed(self._store, [hold for _, hold in items])
            payload = slack.message(shown, self._public_url, reminder=kind == REMINDER)
            rows = [row for row, _ in items]
            problems = slack.check_limits(payload)
            if problems:  # a bug in slack.message: never worth a retry
                for row in rows:
                    await self._store.outbox.abandoned(row["id"], now, "; ".join(problems)[:500])
                    self._metrics.review_notifications.labels("abandoned").inc()
                log.error("slack_message_invalid", problems=problems)
                continue
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", "User-Agent": "dmgate"}
            error = await self._send(session, body, headers)
            if error is None:
                done = self._clock.now()
                for row in rows:
                    await self._store.outbox.delivered(row["id"], done)
                    self._metrics.review_notifications.labels("delivered").inc()
                log.info("review_notified", format="slack", holds=len(rows), kind=kind)
            else:
                await self._failed(rows, error)

    async def schedule_reminders(self) -> int:
        """A reminder for every hold pending longer than DMGATE_REVIEW_REMINDER, once per
        hold per interval (see the module's docstring); how many were added."""
        every = self._reminder
        if every is None or every <= timedelta(0):
            return 0
        now = self._clock.now()
        due = []
        for hold_id, created in await self._store.inbox.pending_since(now - every):
            interval = int((now - created) / every)
            if now - created - interval * every > REMINDER_CATCH_UP:
                continue  # announced already (or missed while no replica ran): next interval
            material = f"{hold_id}:reminder:{interval}".encode()
            due.append(
                NewNotification(
                    id=hashlib.sha256(material).hexdigest()[:32],
                    hold_id=hold_id,
                    created_at=now,
                    payload=json.dumps(
                        {"event": REMINDER, "hold_id": hold_id, "interval": interval}
                    ),
                )
            )
        added = 0
        for i in range(0, len(due), 500):
            added += await self._store.outbox.add_once(due[i : i + 500])
        if added:
            log.info("review_reminders_scheduled", reminders=added)
        return added

    async def loop(self) -> None:
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                self.wakeup.clear()
                started, now = self._clock.monotonic(), self._clock.now()
                wait = _IDLE_POLL
                try:
                    await self.schedule_reminders()
                    await self.deliver_once(session)
                    nxt = await self._store.outbox.next_due_at()
                    if nxt is not None:
                        wait = max(0.05, min(wait, (nxt - now).total_seconds()))
                except Exception as exc:  # the store may be down: try again later
                    log.warning("notification_sweep_failed", error=type(exc).__name__)
                    wait = 5.0
                await self._clock.wait_until(self.wakeup, started + wait)
