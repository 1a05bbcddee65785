"""The Alembic migrations build exactly the schema `proxy/store/tables.py` describes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import xxhash
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

    assert asyncio.run(twice()) == "0013"


def test_templates_indexed_before_0007_keep_matching_and_counting(tmp_path: Path) -> None:
    """Upgrading to campaign features loses no count: a template written by 0004 (no
    features, no embedding) still finds its next copy, whose recipients add to it."""
    from alembic import command
    from alembic.config import Config

    from policies.template_reuse import fingerprint, template_scope
    from proxy.store.database import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'm.db'}"
    text = "Hey {}, thanks for the follow! I built Rocketly for founders like you. Join us"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        for recipient in ("a", "b"):  # what 0004's store wrote for two copies
            fp = fingerprint(text.format(recipient), template_scope("x", "acct"))
            assert fp is not None
            conn.execute(sa.text("INSERT OR IGNORE INTO templates VALUES (1, 'x', 'acct', 0)"))
            conn.execute(
                sa.text("INSERT OR IGNORE INTO template_signatures VALUES (1, :k, :s)"),
                {"k": fp.text_key, "s": fp.signature},
            )
            for key in fp.band_keys:
                conn.execute(sa.text("INSERT OR IGNORE INTO lsh_bands VALUES (:k, 1)"), {"k": key})
            conn.execute(
                sa.text("INSERT INTO template_recipients VALUES (1, :r, :t)"),
                {"r": recipient, "t": 1e9},
            )
    engine.dispose()

    async def upgrade_and_send() -> int:
        store = await Store.open(url)
        try:
            fp = fingerprint(text.format("c"), template_scope("x", "acct"))
            assert fp is not None
            at = datetime.fromtimestamp(1e9 + 60, UTC)
            return await store.signals.template_recipients(
                "x", "acct", fp, ("c",), at, at - timedelta(hours=24), 0.45, 10
            )
        finally:
            await store.close()

    assert asyncio.run(upgrade_and_send()) == 3


def test_0008_drops_the_loose_band_keys_no_longer_used_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """A copy indexed by 0007 had 32 loose band keys; after 0008 it keeps the first 16 (the
    ones new DMs look up, still finding it) and the other 16 are gone."""
    from alembic import command
    from alembic.config import Config

    from policies.template_reuse import fingerprint, signature_band_keys, template_scope
    from proxy.store.database import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'm.db'}"
    text = (
        "Hey {}, thanks for the follow! I built Rocketly for founders like you, it books "
        "your sales calls while you sleep. Join the beta today"
    )
    scope = template_scope("x", "acct")
    first = fingerprint(text.format("anna"), scope)
    assert first is not None
    old_loose = signature_band_keys(first.signature, f"{scope}~loose", 32, 2)
    assert old_loose[:16] == first.loose_keys  # the bands kept are computed as before
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
        conn.execute(sa.text("INSERT INTO templates VALUES (1, 'x', 'acct', 0)"))
        conn.execute(
            sa.text("INSERT INTO template_signatures VALUES (1, :k, :s, :f, NULL)"),
            {"k": first.text_key, "s": first.signature, "f": first.features},
        )
        for key in first.band_keys + old_loose:
            conn.execute(sa.text("INSERT OR IGNORE INTO lsh_bands VALUES (:k, 1)"), {"k": key})
        conn.execute(sa.text("INSERT INTO template_recipients VALUES (1, 'anna', 1e9)"))
        command.upgrade(cfg, "0008")
        left = set(conn.execute(sa.text("SELECT key FROM lsh_bands")).scalars())
    engine.dispose()
    assert left == set(first.band_keys + old_loose[:16])


def test_kept_copies_live_in_a_rowid_table_on_sqlite(tmp_path: Path) -> None:
    """0009: a kept copy (~1 KB with its features) fits a rowid table's page; a WITHOUT
    ROWID table would spill every copy into an overflow page of its own."""
    url = f"sqlite:///{tmp_path / 'm.db'}"

    async def migrate() -> None:
        store = await Store.open(url)
        await store.close()

    asyncio.run(migrate())
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ddl = {
            name: sql.upper()
            for name, sql in conn.execute(
                sa.text("SELECT name, sql FROM sqlite_schema WHERE type = 'table'")
            )
        }
    engine.dispose()
    assert "WITHOUT ROWID" not in ddl["template_signatures"]
    assert "WITHOUT ROWID" in ddl["lsh_bands"]  # small rows: the key is the row


def _on(url: str, fn: Callable[[sa.Connection], object]) -> object:
    """Run `fn` in one transaction on `url` (SQLite's driver is sync, asyncpg async)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from proxy.store.database import async_url

    if url.startswith("sqlite"):
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                return fn(conn)
        finally:
            engine.dispose()

    async def run() -> object:
        engine = create_async_engine(async_url(url))
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _migrate_to(revision: str, down: bool = False) -> Callable[[sa.Connection], None]:
    from alembic import command
    from alembic.config import Config

    from proxy.store.database import MIGRATIONS

    def run(conn: sa.Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)

    return run


def test_0011_moves_meaning_keys_under_their_accounts_prefix_and_back(store_url: str) -> None:
    """Meaning keys stored up to 0010 (a hash of account, band and value) become the keys
    new DMs look up, naming the same template; MinHash keys and other accounts' keys stay
    theirs; the downgrade restores the old keys."""
    from policies.template_reuse import fingerprint, template_scope

    text = (
        "Hi {}, saw your talk on scaling Postgres. We built Rocketly to book your sales "
        "calls while you sleep, have a look https://rocketly.example/beta"
    )
    scopes = {1: template_scope("x", "acct"), 2: template_scope("x", "other")}
    fps = {tid: fingerprint(text.format("anna"), scope) for tid, scope in scopes.items()}
    assert all(fp is not None and len(fp.meaning_keys) == 32 for fp in fps.values())

    def before(scope: str, key: int) -> int:
        # The formula up to 0010; a new key's low 11 bits are its band and value.
        band, value = key >> 6 & 31, key & 63
        data = b"e" + len(scope).to_bytes(4, "little") + scope.encode() + bytes((band, value))
        return xxhash.xxh64_intdigest(data) & ((1 << 63) - 1)

    old = {(before(scopes[tid], key), tid) for tid, fp in fps.items() for key in fp.meaning_keys}
    minhash = {(key, tid) for tid, fp in fps.items() for key in fp.band_keys + fp.loose_keys}

    def stored_by_0010(conn: sa.Connection) -> None:
        _migrate_to("0010")(conn)
        for tid, scope in scopes.items():
            conn.execute(
                sa.text("INSERT INTO templates VALUES (:t, 'x', :a, 0)"),
                {"t": tid, "a": scope.split(":", 1)[1]},
            )
        conn.execute(
            sa.text("INSERT INTO lsh_bands (key, template_id) VALUES (:k, :t)"),
            [{"k": k, "t": t} for k, t in old | minhash],
        )

    def index(conn: sa.Connection) -> set[tuple[int, int]]:
        return {(k, t) for k, t in conn.execute(sa.text("SELECT key, template_id FROM lsh_bands"))}

    _on(store_url, stored_by_0010)
    _on(store_url, _migrate_to("0011"))
    now = {(key, tid) for tid, fp in fps.items() for key in fp.meaning_keys}
    assert _on(store_url, index) == now | minhash
    # An account's keys share everything but their low 11 bits (a few index pages).
    assert {key >> 11 for key in fps[1].meaning_keys} == {min(fps[1].meaning_keys) >> 11}
    _on(store_url, _migrate_to("0010", down=True))
    assert _on(store_url, index) == old | minhash
