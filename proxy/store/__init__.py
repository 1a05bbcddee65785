"""Persistence: SQLite by default, PostgreSQL for several replicas (same code, same
migrations)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.store.database import create_engine, migrate
from proxy.store.holds import HoldStore
from proxy.store.signals import StoreSignals


class Store:
    """The store's parts, sharing one connection pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.signals = StoreSignals(engine)
        self.holds = HoldStore(engine)

    @classmethod
    async def open(cls, url: str, pool_size: int = 10) -> Store:
        engine = create_engine(url, pool_size=pool_size)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
