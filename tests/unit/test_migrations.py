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

    assert asyncio.run(twice()) == "0002"


def test_concurrent_copies_of_a_template_land_in_one_template(tmp_path: Path) -> None:
    """Many copies judged at the same instant must count as one template: the N-th
    distinct recipient is caught however the operations interleave."""
    from datetime import UTC, datetime

    from policies.template_reuse import fingerprint

    url = f"sqlite:///{tmp_path / 'c.db'}"
    fp = fingerprint("Hey there, join my amazing program today at the link below", "x:1")
    assert fp is not None

    async def burst() -> list[int]:
        store = await Store.open(url)
        now = datetime.now(UTC)
        try:
            return await asyncio.gather(
                *(
                    store.signals.template_recipients("x", "1", fp, (str(i),), now, now, 0.5, 100)
                    for i in range(40)
                )
            )
        finally:
            await store.close()

    assert sorted(asyncio.run(burst())) == list(range(1, 41))
