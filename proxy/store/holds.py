"""Holds: DMs waiting for a reviewer, and their way to `sent`, `send_failed`, `rejected` or
`expired`.

State changes are single conditional UPDATEs (`… WHERE status = 'pending'`), so exactly one
of any number of racing approvals wins, on one process or many.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from proxy.store.database import Database, Row
from proxy.store.tables import holds

PENDING, SENT, SEND_FAILED, REJECTED, EXPIRED = (
    "pending",
    "sent",
    "send_failed",
    "rejected",
    "expired",
)
STATUSES = (PENDING, SENT, SEND_FAILED, REJECTED, EXPIRED)


def overruled(row: Row) -> bool:
    """A reviewer decided this hold's original text must not go out: rejected, or approved
    only with an edit."""
    if row["status"] == REJECTED:
        return True
    return row["status"] in (SENT, SEND_FAILED) and row["sent_text"] not in (None, row["text"])


@dataclass(frozen=True)
class NewHold:
    id: str
    platform: str
    route: str
    account: str
    recipients: list[str]
    text: str
    policies: list[dict[str, str]]
    dedupe_key: str
    request_sealed: bytes
    response_status: int
    response_content_type: str
    response_headers: dict[str, str]
    response_body: bytes
    created_at: datetime
    expires_at: datetime
    # The campaign (template) a template_reuse hold belongs to; the matched policies'
    # names, space-delimited (`proxy.store.inbox.policy_names`).
    template_id: str | None = None
    policy_names: str | None = None

    def as_row(self) -> Row:
        """The row this hold is once stored: pending, undecided (what the review API and
        the hold's announcement show before the store has it)."""
        undecided = {c.name: None for c in holds.c if c.name not in self.__dict__}
        return {**undecided, **self.__dict__, "status": PENDING}


# One statement, the values as parameters (see decisions._ADD_DECISION).
_ADD_HOLD = sa.insert(holds)


def add_hold(conn: sa.Connection, hold: NewHold) -> None:
    """Insert a new pending hold (part of `Store.create_hold`'s transaction)."""
    conn.execute(_ADD_HOLD, {**hold.__dict__, "status": PENDING})


class HoldStore:
    """The holds table. A new hold is stored with its decision record and notification by
    `Store.create_hold`, in one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, hold_id: str) -> Row | None:
        def _op(conn: sa.Connection) -> Row | None:
            row = conn.execute(sa.select(holds).where(holds.c.id == hold_id)).first()
            return dict(row._mapping) if row else None

        return await self._db.read(_op)

    async def pending_by_dedupe(self, dedupe_key: str) -> Row | None:
        def _op(conn: sa.Connection) -> Row | None:
            row = conn.execute(
                sa.select(holds).where(holds.c.dedupe_key == dedupe_key, holds.c.status == PENDING)
            ).first()
            return dict(row._mapping) if row else None

        return await self._db.read(_op)

    async def earlier_for_same_dm(self, dedupe_key: str) -> Row | None:
        """The hold a repeat of this DM answers to, most binding first:
        - a pending hold of the same DM (a retry: the same answer);
        - an approved hold whose release failed, when this is exactly what the reviewer
          approved and no repeat has passed yet (it may pass, once);
        - a hold of the same DM a reviewer decided against: rejected, or approved only
          with an edit (the original text must never go out)."""

        def _op(conn: sa.Connection) -> Row | None:
            rows = conn.execute(
                sa.select(holds)
                .where(sa.or_(holds.c.dedupe_key == dedupe_key, holds.c.release_key == dedupe_key))
                .order_by(holds.c.created_at.desc())
                .limit(20)
            ).all()
            found = [dict(r._mapping) for r in rows]
            for row in found:
                if row["status"] == PENDING and row["dedupe_key"] == dedupe_key:
                    return row
            for row in found:
                if (
                    row["status"] == SEND_FAILED
                    and row["release_key"] == dedupe_key
                    and row["retry_passed_at"] is None
                ):
                    return row
            for row in found:
                if row["dedupe_key"] == dedupe_key and overruled(row):
                    return row
            return None

        return await self._db.read(_op)

    async def take_failed_retry(self, hold_id: str, now: datetime) -> bool:
        """Let one repeat of an approved-but-failed DM through, as approved. Exactly one
        caller gets True."""

        def _op(conn: sa.Connection) -> bool:
            done = conn.execute(
                sa.update(holds)
                .where(
                    holds.c.id == hold_id,
                    holds.c.status == SEND_FAILED,
                    holds.c.release_key.is_not(None),
                    holds.c.retry_passed_at.is_(None),
                )
                .values(retry_passed_at=now)
            )
            return done.rowcount == 1

        return await self._db.write(_op)

    async def list(self, status: str | None, limit: int, cursor: str | None) -> list[Row]:
        """Newest first; `cursor` is the id of the last hold of the previous page."""
        q = sa.select(holds).order_by(holds.c.id.desc()).limit(limit)
        if status:
            q = q.where(holds.c.status == status)
        if cursor:
            q = q.where(holds.c.id < cursor)

        def _op(conn: sa.Connection) -> list[Row]:
            return [dict(r._mapping) for r in conn.execute(q)]

        return await self._db.read(_op)

    async def claim_release(self, hold_id: str, by: str, now: datetime) -> bool:
        """Take the right to send. Exactly one caller gets True."""

        def _op(conn: sa.Connection) -> Any:
            res = conn.execute(
                sa.update(holds)
                .where(
                    holds.c.id == hold_id,
                    holds.c.status == PENDING,
                    holds.c.claimed_at.is_(None),
                    holds.c.expires_at > now,
                )
                .values(claimed_at=now, decided_by=by)
            )
            return res.rowcount == 1

        return await self._db.write(_op)

    async def finish_release(
        self,
        hold_id: str,
        status: str,
        now: datetime,
        note: str | None,
        sent_text: str,
        upstream_status: int | None,
        upstream_body: str | None,
        release_key: str,
    ) -> None:
        """The outcome of a claimed release. `release_key`: the dedupe key of what the
        reviewer approved (after a failed send, only a repeat of exactly that may pass)."""

        def _op(conn: sa.Connection) -> Any:
            conn.execute(
                sa.update(holds)
                .where(holds.c.id == hold_id, holds.c.status == PENDING)
                .values(
                    status=status,
                    decided_at=now,
                    note=note,
                    sent_text=sent_text,
                    release_key=release_key,
                    upstream_status=upstream_status,
                    upstream_body=upstream_body,
                )
            )

        await self._db.write(_op)

    async def reject(
        self, hold_id: str, by: str, reason: str, note: str | None, now: datetime
    ) -> bool:
        def _op(conn: sa.Connection) -> Any:
            res = conn.execute(
                sa.update(holds)
                .where(
                    holds.c.id == hold_id, holds.c.status == PENDING, holds.c.claimed_at.is_(None)
                )
                .values(status=REJECTED, decided_by=by, decided_at=now, reason=reason, note=note)
            )
            return res.rowcount == 1

        return await self._db.write(_op)

    async def expire_due(self, now: datetime) -> list[Row]:
        """Pending holds past their expiry become `expired` (never sent)."""

        def _op(conn: sa.Connection) -> Any:
            due = (
                conn.execute(
                    sa.select(holds.c.id, holds.c.created_at)
                    .where(
                        holds.c.status == PENDING,
                        holds.c.claimed_at.is_(None),
                        holds.c.expires_at <= now,
                    )
                    .limit(500)
                )
            ).all()
            expired = []
            for row in due:
                res = conn.execute(
                    sa.update(holds)
                    .where(
                        holds.c.id == row.id,
                        holds.c.status == PENDING,
                        holds.c.claimed_at.is_(None),
                    )
                    .values(status=EXPIRED, decided_at=now, decided_by="dmgate")
                )
                if res.rowcount == 1:
                    expired.append(dict(row._mapping))
            return expired

        return await self._db.write(_op)

    async def abandon_stale_claims(self, older_than: datetime, now: datetime) -> list[str]:
        """A release whose process died mid-send: its outcome is unknown, so it is never
        sent again (a duplicate DM is worse than a lost one) and ends `send_failed`."""

        def _op(conn: sa.Connection) -> Any:
            ids = list(
                (
                    conn.execute(
                        sa.select(holds.c.id).where(
                            holds.c.status == PENDING, holds.c.claimed_at < older_than
                        )
                    )
                ).scalars()
            )
            if ids:
                conn.execute(
                    sa.update(holds)
                    .where(holds.c.id.in_(ids), holds.c.status == PENDING)
                    .values(
                        status=SEND_FAILED,
                        decided_at=now,
                        upstream_body="release interrupted (dmgate stopped while "
                        "sending); outcome unknown, not retried",
                    )
                )
            return ids

        return await self._db.write(_op)

    async def oldest_pending_created_at(self) -> datetime | None:
        def _op(conn: sa.Connection) -> Any:
            return conn.execute(
                sa.select(sa.func.min(holds.c.created_at)).where(holds.c.status == PENDING)
            ).scalar_one()

        return await self._db.read(_op)

    async def count_pending(self) -> int:
        def _op(conn: sa.Connection) -> Any:
            return (
                conn.execute(
                    sa.select(sa.func.count()).select_from(holds).where(holds.c.status == PENDING)
                )
            ).scalar_one()

        return await self._db.read(_op)
