"""The Alembic migrations build exactly the schema `proxy/store/tables.py` describes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from proxy.store import Store
from proxy.store.tables import metadata


def test_migrations_match_the_table_definitions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"

    async def migrate() -> None:
        store = await Store.open(url)
        await store.close()

    asyncio.run(migrate())
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], diff


def test_migrations_are_idempotent_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"

    async def twice() -> str:
        for _ in range(2):
            store = await Store.open(url)
            version = await store.db.read(
                lambda c: c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            )
            await store.close()
        return version

    assert asyncio.run(twice()) == "0005"
