"""The notification outbox: each new hold's announcement to the review endpoint, written in
the hold's own transaction (`Store.create_hold`) so it survives a crash, then delivered at
least once by `proxy.notify`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from proxy.store.database import Database, Row, insert_ignore
from proxy.store.tables import outbox

PENDING, DELIVERED, ABANDONED = "pending", "delivered", "abandoned"
# Notifications leased per claim.
CLAIM_BATCH = 20


@dataclass(frozen=True)
class NewNotification:
    id: str  # also the receiver's idempotency key
    hold_id: str
    payload: str  # the JSON body, as sent
    created_at: datetime  # due at once


# One statement, the values as parameters (see decisions._ADD_DECISION).
_ADD_NOTIFICATION = sa.insert(outbox)


def add_notification(conn: sa.Connection, notification: NewNotification) -> None:
    row = {"status": PENDING, "attempts": 0, "next_attempt_at": notification.created_at}
    conn.execute(_ADD_NOTIFICATION, {**row, **notification.__dict__})


class Outbox:
    """The notification_outbox table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int = CLAIM_BATCH
    ) -> list[Row]:
        """Due notifications, leased to this process for `lease`: another replica skips
        them (SKIP LOCKED, then the pushed-back due time) so each is sent by one replica.
        If this one dies mid-delivery, the lease runs out and another takes over."""

        def _op(conn: sa.Connection) -> list[Row]:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now)
                    .order_by(outbox.c.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ]
            if rows:
                conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id.in_([r["id"] for r in rows]))
                    .values(next_attempt_at=now + lease)
                )
            return rows

        return await self._db.write(_op)

    async def defer(self, notification_id: str, until: datetime) -> None:
        """Not yet (a campaign's copies wait for the rest of their minute); no attempt
        is counted."""

        def _op(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == notification_id, outbox.c.status == PENDING)
                .values(next_attempt_at=until)
            )

        await self._db.write(_op)

    async def add_once(self, notifications: list[NewNotification]) -> int:
        """Add notifications whose ids are not taken yet (a reminder's id names its hold
        and interval, so replicas adding the same reminder add it once); how many were
        new."""
        if not notifications:
            return 0

        def _op(conn: sa.Connection) -> int:
            stmt = insert_ignore(conn, outbox).on_conflict_do_nothing()
            added = 0
            for n in notifications:
                added += conn.execute(
                    stmt.values(
                        status=PENDING, attempts=0, next_attempt_at=n.created_at, **n.__dict__
                    )
                ).rowcount
            return added

        return await self._db.write(_op)

    async def next_due_at(self) -> datetime | None:
        def _op(conn: sa.Connection) -> Any:
            return (
                conn.execute(
                    sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
                        outbox.c.status == PENDING
                    )
                )
            ).scalar_one_or_none()

        return await self._db.read(_op)

    async def delivered(self, notification_id: str, now: datetime) -> None:
        await self._done(notification_id, DELIVERED, now, None)

    async def abandoned(self, notification_id: str, now: datetime, reason: str) -> None:
        """Never to be sent (the hold was decided before anyone was told about it)."""
        await self._done(notification_id, ABANDONED, now, reason)

    async def _done(
        self, notification_id: str, status: str, now: datetime, error: str | None
    ) -> None:
        def _op(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == notification_id)
                .values(
                    status=status,
                    delivered_at=now,
                    last_error=error,
                    attempts=outbox.c.attempts + 1,
                )
            )

        await self._db.write(_op)

    async def retry_at(self, notification_id: str, next_at: datetime, error: str) -> None:
        def _op(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id == notification_id)
                .values(
                    attempts=outbox.c.attempts + 1, next_attempt_at=next_at, last_error=error[:500]
                )
            )

        await self._db.write(_op)
