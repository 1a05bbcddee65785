"""The store's boundary: its operations raise the store's own errors (`StoreUnavailable` when
the database is down or locked), never SQLAlchemy's or a driver's; a hold is stored with its
decision record and notification in one transaction. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from proxy.store import Store, StoreError, StoreUnavailable
from proxy.store import database as store_database
from proxy.store.database import Database
from proxy.store.decisions import DecisionRecord
from proxy.store.holds import NewHold
from proxy.store.outbox import NewNotification
from proxy.store.tables import decisions, holds, outbox
from tests import pg
from tests.support import free_port

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def _hold(hold_id: str, dedupe_key: str = "same-dm") -> NewHold:
    return NewHold(
        id=hold_id,
        platform="x",
        route="x",
        account="100",
        recipients=["200"],
        text="hello",
        policies=[],
        dedupe_key=dedupe_key,
        request_sealed=b"sealed",
        response_status=201,
        response_content_type="application/json",
        response_headers={},
        response_body=b"{}",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )


def _decision(decision_id: str, hold_id: str) -> DecisionRecord:
    return DecisionRecord(
        decision_id, NOW, "x", "x", "100", ["200"], "hold", "hold", [], "v1", hold_id
    )


def _count(table: sa.Table) -> sa.Select[tuple[int]]:
    return sa.select(sa.func.count()).select_from(table)


async def _counts(store: Store) -> list[int]:
    """Rows in holds, decisions and the outbox."""

    def op(conn: sa.Connection) -> list[int]:
        return [conn.execute(_count(t)).scalar_one() for t in (holds, decisions, outbox)]

    return await store.db.read(op)


def test_a_hold_its_decision_and_notification_are_one_transaction(store_url: str) -> None:
    async def scenario() -> None:
        store = await Store.open(store_url)
        try:
            note = NewNotification("n1", "h1", '{"event": "hold.created"}', NOW)
            row, created = await store.create_hold(_hold("h1"), _decision("d1", "h1"), note)
            assert created and row["id"] == "h1" and row["status"] == "pending"
            assert await _counts(store) == [1, 1, 1]
            assert [n["id"] for n in await store.outbox.claim_due(NOW, timedelta(minutes=1))] == [
                "n1"
            ]

            # A retry of the same DM: the same hold, one more decision record, no new
            # notification.
            row, created = await store.create_hold(_hold("h2"), _decision("d2", "h2"), None)
            assert not created and row["id"] == "h1"
            assert await _counts(store) == [1, 2, 1]

            # The notification cannot be written (its id is taken): neither is the hold
            # nor its decision record.
            with pytest.raises(StoreError) as failed:
                await store.create_hold(_hold("h3", "other-dm"), _decision("d3", "h3"), note)
            assert not isinstance(failed.value, StoreUnavailable)
            assert await store.holds.get("h3") is None
            assert await _counts(store) == [1, 2, 1]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_errors_other_than_outages_are_store_errors_too(store_url: str) -> None:
    async def scenario() -> None:
        store = await Store.open(store_url)
        try:
            naive = DecisionRecord(
                "d1", datetime(2026, 1, 31), "x", "x", "1", [], "allow", "allow", [], "v"
            )
            with pytest.raises(StoreError) as bad:  # a bug of dmgate's: not an outage
                await store.decisions.record(naive)
            assert not isinstance(bad.value, StoreUnavailable)
            assert bad.value.cause == "StatementError"
            assert isinstance(bad.value.__cause__, sa.exc.SQLAlchemyError)  # kept for tracebacks
            # A duplicate generated token is refused, not raised.
            assert await store.tokens.add("generated", "a" * 64, NOW)
            assert not await store.tokens.add("generated", "b" * 64, NOW)
            assert await store.tokens.all() == [("generated", "a" * 64)]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_locked_sqlite_store_is_unavailable_for_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_database, "SQLITE_BUSY_TIMEOUT_MS", 100)
    url = f"sqlite:///{tmp_path / 'locked.db'}"

    async def scenario() -> None:
        store = await Store.open(url)
        lock = sqlite3.connect(tmp_path / "locked.db", timeout=1)
        lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            with pytest.raises(StoreUnavailable) as locked:
                await store.decisions.record(_decision("d1", "h1"))
            assert locked.value.cause == "OperationalError"
            assert "locked" not in str(locked.value)  # the driver's message stays inside
            await store.ping()  # WAL readers do not wait for the writer
        finally:
            lock.rollback()
            lock.close()
            await store.close()

    asyncio.run(scenario())


def test_sqlite_inline_operations_survive_a_lock_held_elsewhere_and_see_others_writes(
    tmp_path: Path,
) -> None:
    """Reads and short writes keep one connection on the event loop's thread: a lock held
    by another process sends a write to the pool (where it waits, then lands), after which
    the inline connection is clean again; and a read never sees an older snapshot than the
    newest commit of another connection."""
    path = tmp_path / "held.db"

    async def scenario() -> None:
        store = await Store.open(f"sqlite:///{path}")
        other = sqlite3.connect(path, timeout=5, isolation_level=None)
        try:
            await store.decisions.record(_decision("d1", "h1"))
            assert await _counts(store) == [0, 1, 0]
            other.execute("BEGIN IMMEDIATE")  # another process is writing
            waiting = asyncio.create_task(store.decisions.record(_decision("d2", "h2")))
            await asyncio.sleep(0)  # the inline attempt finds the lock held: to the pool
            assert not waiting.done()
            other.execute("DELETE FROM decisions WHERE id = 'd1'")
            other.execute("COMMIT")
            await waiting
            await store.decisions.record(_decision("d3", "h3"))  # inline again
            assert await _counts(store) == [0, 2, 0]  # d1 deleted elsewhere: seen at once
            ids = await store.db.read(
                lambda conn: conn.execute(sa.select(decisions.c.id)).scalars().all()
            )
            assert sorted(ids) == ["d2", "d3"]
        finally:
            other.close()
            await store.close()

    asyncio.run(scenario())


def test_sqlite_writes_queued_behind_a_lock_held_elsewhere_all_land_once_it_is_released(
    tmp_path: Path,
) -> None:
    """The pool's writers take turns and try the lock themselves (Database._queued), not
    through SQLite's busy handler, whose sleeps grow to 100 ms: its connections never wait
    inside SQLite. Writes queued while another process holds the lock all land after."""
    path = tmp_path / "queued.db"

    async def scenario() -> None:
        store = await Store.open(f"sqlite:///{path}")
        other = sqlite3.connect(path, timeout=5, isolation_level=None)
        try:
            timeouts = await store.db.write(
                lambda conn: conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            )
            assert timeouts == 0
            other.execute("BEGIN IMMEDIATE")
            queued = [
                asyncio.create_task(store.decisions.record(_decision(f"d{i}", f"h{i}")))
                for i in range(6)  # more than the pool's threads
            ]
            await asyncio.sleep(0)
            assert not any(task.done() for task in queued)
            other.execute("COMMIT")
            await asyncio.gather(*queued)
            assert await _counts(store) == [0, 6, 0]
        finally:
            other.close()
            await store.close()

    asyncio.run(scenario())


def test_an_unreachable_postgresql_is_unavailable() -> None:
    async def scenario() -> None:
        store = Store(Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"))
        try:
            follow = lambda: store.signals.followed_at("x", "1", "2")  # noqa: E731
            # The last one runs on the plain asyncpg pool (Database.native), the others
            # through SQLAlchemy: the same error either way.
            for operation in (store.ping, store.holds.count_pending, store.tokens.all, follow):
                with pytest.raises(StoreUnavailable) as down:
                    await operation()
                assert isinstance(down.value.__cause__, OSError)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_native_postgresql_statements_raise_the_stores_errors() -> None:
    """The DM decision's statements bypass SQLAlchemy (`Database.native`): asyncpg's own
    errors still leave the store as its errors — an outage as StoreUnavailable (503), a
    statement that cannot run (here: no schema) as a StoreError, never asyncpg's."""
    pg.require()
    url = pg.create_database()

    async def scenario() -> None:
        store = Store(Database(url))  # not migrated: the follows table is missing
        try:
            with pytest.raises(StoreError) as bad:
                await store.signals.followed_at("x", "1", "2")
            assert not isinstance(bad.value, StoreUnavailable)
            assert bad.value.cause == "UndefinedTableError"
            await store.db.migrate()
            assert await store.signals.followed_at("x", "1", "2") is None

            async def terminated(conn: object) -> None:
                # The server ends this session (as a restart would), then it is used.
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # type: ignore[attr-defined]

            with pytest.raises(StoreUnavailable):
                await store.db.native(terminated)
            # The pool replaces the lost connection: the next decision works.
            assert await store.signals.followed_at("x", "1", "2") is None
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        pg.drop_database(url)
