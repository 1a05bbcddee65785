"""Persistence: SQLite by default, PostgreSQL for several replicas (same code, same
migrations)."""

from __future__ import annotations

import sqlalchemy as sa

from proxy.store.database import Database
from proxy.store.holds import HoldStore
from proxy.store.signals import StoreSignals


class Store:
    """The store's parts, sharing one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.signals = StoreSignals(db)
        self.holds = HoldStore(db)

    @classmethod
    async def open(cls, url: str, pool_size: int = 10) -> Store:
        """Connect and apply pending migrations."""
        db = Database(url, pool_size=pool_size)
        try:
            await db.migrate()
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute(sa.text("SELECT 1")))

    async def close(self) -> None:
        await self.db.close()
