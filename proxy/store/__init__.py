"""Persistence: SQLite by default, PostgreSQL for several replicas (same code, same
migrations).

One part per concern, all on one `Database`: `signals` (the facts policies ask about),
`holds`, `decisions` (one record per judged DM), `outbox` (review notifications) and
`tokens` (generated review tokens). Every operation raises the store's own errors
(`proxy.store.errors`: `StoreUnavailable` when the database is down or locked), never
SQLAlchemy's or a driver's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa

from proxy.store.database import Database, Row
from proxy.store.decisions import DecisionLog, DecisionRecord, add_decision
from proxy.store.errors import ConstraintViolation, StoreError, StoreUnavailable, UnstorableValue
from proxy.store.holds import HoldStore, NewHold, add_hold
from proxy.store.inbox import InboxQueries
from proxy.store.outbox import NewNotification, Outbox, add_notification
from proxy.store.profiles import ProfileStore
from proxy.store.retention import prune
from proxy.store.signals import StoreSignals
from proxy.store.tokens import ReviewSignouts, ReviewTokens

__all__ = ["Store", "StoreError", "StoreUnavailable", "UnstorableValue"]


class Store:
    """The store's parts, sharing one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.signals = StoreSignals(db)
        self.holds = HoldStore(db)
        self.decisions = DecisionLog(db)
        self.outbox = Outbox(db)
        self.tokens = ReviewTokens(db)
        self.signouts = ReviewSignouts(db)
        self.profiles = ProfileStore(db)
        self.inbox = InboxQueries(db)

    @classmethod
    async def open(cls, url: str, pool_size: int = 10) -> Store:
        """Connect and apply pending migrations."""
        store = cls(Database(url, pool_size=pool_size))
        await store.start()
        return store

    async def start(self) -> None:
        """Apply pending migrations (connecting on the way); a store that cannot start is
        closed again."""
        try:
            await self.db.migrate()
        except BaseException:
            await self.db.close()
            raise

    async def create_hold(
        self, hold: NewHold, decision: DecisionRecord, notification: NewNotification | None
    ) -> tuple[Row, bool]:
        """Store a new hold with its decision record and its review notification (if holds
        are announced) in one transaction: an acknowledged hold is never unannounced.

        Returns (hold row, created). If a pending hold for the same DM exists (a retry),
        that one is returned and nothing is written but the decision record.
        """

        def _op(conn: sa.Connection) -> None:
            add_hold(conn, hold)
            add_decision(conn, decision)
            if notification is not None:
                add_notification(conn, notification)

        try:
            await self.db.write(_op)
        except ConstraintViolation:
            existing = await self.holds.pending_by_dedupe(hold.dedupe_key)
            if existing is None:
                raise
            await self.decisions.record(replace(decision, hold_id=existing["id"]))
            return existing, False
        row = await self.holds.get(hold.id)
        assert row is not None
        return row, True

    async def prune(
        self, cutoff: datetime, profiles_cutoff: datetime | None = None
    ) -> dict[str, int]:
        """One retention pass over facts older than `cutoff`, and profiles neither seen nor
        used by a hold since `profiles_cutoff` (`proxy.store.retention`)."""
        return await prune(self.db, cutoff, profiles_cutoff)

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute(sa.text("SELECT 1")))

    async def close(self) -> None:
        await self.db.close()
