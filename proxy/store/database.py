"""Connecting to the store, applying migrations, and the few dialect differences."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from proxy.store.errors import StoreUnavailable, translated

MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")
# One row of a store table, by column name.
Row = dict[str, Any]


def async_url(url: str) -> str:
    """`sqlite:///x.db` / `postgresql://…` → the async driver's URL."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        return url
    raise ValueError(
        f"unsupported DMGATE_DATABASE_URL scheme in {url.split(':', 1)[0]!r}: "
        "use sqlite:///PATH or postgresql://…"
    )


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or other backends)."""
    if not url.startswith("sqlite"):
        return None
    path = sa.engine.make_url(async_url(url)).database
    return Path(path) if path and path != ":memory:" else None


def _private_file(path: Path) -> None:
    """The database holds sealed requests and contact history: owner-only (0600). SQLite
    gives its -wal and -shm files the database file's mode, so creating the file here
    (and tightening an existing one) covers all three."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


class Database:
    """Runs store operations: plain functions over a SQLAlchemy `Connection`, one
    transaction each.

    SQLite runs them on a synchronous connection in a small thread pool: one thread hop per
    operation instead of one per statement (aiosqlite), which is most of a DM decision's
    cost. PostgreSQL runs the same functions on asyncpg through `run_sync`. Either way the
    operation's code is written once.
    """

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        full = async_url(url)
        self.dialect_name = "postgresql" if full.startswith("postgresql") else "sqlite"
        self._async: AsyncEngine | None = None
        self._async_read: AsyncEngine | None = None  # same pool, autocommit: no BEGIN
        self._write_engine: sa.Engine | None = None  # SQLite writes: BEGIN IMMEDIATE
        self._read_engine: sa.Engine | None = None  # SQLite reads: no transaction
        self._inline_engine: sa.Engine | None = None  # SQLite short writes, never waiting
        self._pool: ThreadPoolExecutor | None = None
        # SQLite: per engine, the connection kept by the thread that runs operations inline.
        self._held: dict[sa.Engine, tuple[int, sa.Connection]] = {}
        # SQLite: the pool's writers wait for the write lock one at a time (see _queued).
        self._write_gate = threading.Lock()
        # PostgreSQL: plain asyncpg connections for the DM decision's statements (`native`).
        self._native: Any = None
        self._native_size = max(1, pool_size // 2)
        self._native_starting = asyncio.Lock()
        self._native_stale = False  # a connection was lost: renew the others before use
        # How every operation's errors become the store's (`translated`); on PostgreSQL
        # also noting lost connections for the native pool (`_watching`).
        self._errors: Callable[[], contextlib.AbstractContextManager[None]] = translated
        if self.dialect_name == "postgresql":
            # No pre-ping (a round trip per operation): a connection broken by a database
            # restart fails one operation (a DM fails closed, 503), SQLAlchemy then
            # discards the whole pool and the next operation reconnects.
            # hide_parameters: a failed statement's message must not carry DM text or
            # sealed requests into a log.
            # Together with `native`'s pool: at most 2 x pool_size connections, as before.
            self._async = create_async_engine(
                full,
                pool_size=pool_size,
                max_overflow=max(0, pool_size - self._native_size),
                hide_parameters=True,
            )
            self._async_read = self._async.execution_options(isolation_level="AUTOCOMMIT")
            self._errors = self._watching
        else:
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                _private_file(path)
            sync_url = sa.engine.make_url(full).set(drivername="sqlite+pysqlite")
            self._write_engine, self._read_engine = (
                sa.create_engine(
                    sync_url,
                    pool_size=SQLITE_THREADS,
                    max_overflow=0,
                    pool_timeout=30,
                    hide_parameters=True,
                )
                for _ in range(2)
            )
            # One connection, used only on the event loop's thread (see `write`'s `inline`).
            self._inline_engine = sa.create_engine(
                sync_url, pool_size=1, max_overflow=0, pool_timeout=0, hide_parameters=True
            )
            for engine in (self._write_engine, self._read_engine, self._inline_engine):
                event.listen(engine, "connect", _sqlite_pragmas)
            for engine in (self._write_engine, self._inline_engine):
                event.listen(engine, "connect", _never_wait)
            # A write operation reads then writes (the template index looks up candidates,
            # then inserts): it takes the write lock up front, so two operations can never
            # both decide on stale reads. pysqlite's own BEGIN would come only at the first
            # INSERT, after the read.
            for engine in (self._write_engine, self._inline_engine):
                event.listen(engine, "begin", _begin_immediate)
            self._pool = ThreadPoolExecutor(SQLITE_THREADS, thread_name_prefix="dmgate-sqlite")

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """`fn(conn, *args)` in a transaction that commits. Raises the store's errors
        (`proxy.store.errors`), never SQLAlchemy's or a driver's.

        `inline`: `fn` is short (a DM decision's few indexed statements, ~1 ms) and may run
        again from the start. On SQLite it then runs right here when the write lock is free,
        as reads do: the hop to a pool thread and back costs more than the operation (two
        thread wake-ups, ~0.7 ms at the median and tens of ms at the tail on a busy machine,
        measured). When another connection holds the lock it goes to the pool and waits
        there: the event loop never waits for a lock."""
        with self._errors():
            if self._async is not None:
                async with self._async.begin() as conn:
                    return await conn.run_sync(fn, *args)
            if inline and self._inline_engine is not None:
                conn = self._held_connection(self._inline_engine)
                if conn is not None:
                    try:
                        done, result = _without_waiting(conn, fn, args)
                    except BaseException:
                        self._release(self._inline_engine)
                        raise
                    if done:
                        return result
                    self._release(self._inline_engine)
            assert self._write_engine is not None
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, _queued, self._write_gate, self._write_engine, fn, args
            )

    async def native(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """PostgreSQL: `await fn(conn)` on a plain asyncpg connection, for the statements
        every DM decision runs (the template index, the follow lookup). Through SQLAlchemy's
        async layer an operation costs ~0.5 ms of CPU besides its round trips (pool
        checkout, greenlet, execution context; `bench/decision.py`), more than the server's
        work. `fn` opens its own transaction when it needs one. Errors are the store's, as
        from `write`."""
        assert self._async is not None, "native() is for PostgreSQL"
        with self._errors():
            pool = self._native or await self._start_native()
            if self._native_stale:
                self._native_stale = False
                await pool.expire_connections()
            async with pool.acquire(timeout=NATIVE_ACQUIRE_TIMEOUT) as conn:
                return await fn(conn)

    @contextlib.contextmanager
    def _watching(self) -> Iterator[None]:
        """PostgreSQL's `translated`: once a connection is found lost, the native pool's
        others may be too (a network cut leaves them open but dead): they are replaced on
        their next use, so an outage fails one operation, as with SQLAlchemy's pool alone
        (which discards its own connections)."""
        try:
            with translated():
                yield
        except StoreUnavailable as exc:
            busy = isinstance(exc.__cause__, TimeoutError | sa.exc.TimeoutError)
            self._native_stale = self._native_stale or not busy
            raise

    async def _start_native(self) -> Any:
        import asyncpg

        async with self._native_starting:
            if self._native is None:
                assert self._async is not None
                # The connect arguments SQLAlchemy's asyncpg dialect would use (host, TLS,
                # credentials from the same URL), less its own options.
                _, kwargs = self._async.dialect.create_connect_args(self._async.url)
                kwargs.pop("prepared_statement_name_func", None)
                cache = kwargs.pop("prepared_statement_cache_size", None)
                if cache is not None:
                    kwargs["statement_cache_size"] = cache
                self._native = await asyncpg.create_pool(
                    min_size=0, max_size=self._native_size, **kwargs
                )
        return self._native

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` without a write transaction. Raises the store's errors, as
        `write` does."""
        with self._errors():
            if self._async_read is not None:
                async with self._async_read.connect() as conn:
                    return await conn.run_sync(fn, *args)
            assert self._read_engine is not None
            # SQLite reads are indexed lookups of well under a millisecond that never wait
            # for a lock (WAL readers don't), so they run right here: a thread hop would
            # cost more than the read.
            conn = self._held_connection(self._read_engine)
            if conn is None:
                return _read_only(self._read_engine, fn, args)
            try:
                result = fn(conn, *args)
                if conn.in_transaction():
                    # SQLAlchemy's autobegun transaction: bookkeeping only, SQLite has
                    # none open (statements autocommit), so each read sees the newest rows.
                    conn.rollback()
            except BaseException:
                self._release(self._read_engine)
                raise
            return result

    def _held_connection(self, engine: sa.Engine) -> sa.Connection | None:
        """`engine`'s connection kept checked out for the thread that runs operations
        inline (the event loop's; None on any other thread): a pool checkout and return per
        operation cost more than an indexed read or a DM's index write (~60 of ~100 µs for
        a read, measured)."""
        ident = threading.get_ident()
        held = self._held.get(engine)
        if held is None:
            conn = engine.connect()
            self._held[engine] = (ident, conn)
            return conn
        return held[1] if held[0] == ident else None

    def _release(self, engine: sa.Engine) -> None:
        """Back to the pool, reset, after an error or a lock held elsewhere: the next
        operation checks out a clean connection."""
        held = self._held.pop(engine, None)
        if held is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                held[1].close()

    async def checkpoint_loop(self) -> None:
        """SQLite: copy the WAL back into the database file off the request path. Left to
        SQLite, every ~1000th page written stalls one request for the checkpoint's fsync
        (measured: a 5-7 ms stall every ~400 DM decisions)."""
        if self._read_engine is None:
            return
        loop = asyncio.get_running_loop()
        pause, frames = CHECKPOINT_BUSY_INTERVAL, -1
        while True:
            await asyncio.sleep(pause)
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                last = frames
                # In the pool, not inline like other reads: a checkpoint waits for fsync.
                frames = await loop.run_in_executor(
                    self._pool, _read_only, self._read_engine, _checkpoint, ()
                )
                # While DMs are written, often: under a steady stream the WAL never
                # restarts behind a PASSIVE checkpoint, so the commit that crosses
                # wal_autocheckpoint runs one itself, on the event loop, copying whatever
                # this loop has not (bench/decision.py's loop at 100k indexed: decision
                # p99.9 83-91 ms with a checkpoint every second, 54-64 ms every 0.1 s;
                # bench/README.md). Idle, once a second.
                pause = CHECKPOINT_BUSY_INTERVAL if frames != last else CHECKPOINT_INTERVAL

    async def migrate(self) -> None:
        """Bring the schema to the newest revision."""
        await self.write(_upgrade)

    async def close(self) -> None:
        if self._native is not None:
            await self._native.close()
            self._native = None
        for engine in list(self._held):
            self._release(engine)
        if self._async is not None:
            await self._async.dispose()
        for engine in (self._write_engine, self._read_engine, self._inline_engine):
            if engine is not None:
                engine.dispose()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


SQLITE_THREADS = 4
# Seconds a DM decision waits for a free PostgreSQL connection (SQLAlchemy's pool waits as
# long) before it fails closed (503).
NATIVE_ACQUIRE_TIMEOUT = 30.0
# Seconds between WAL checkpoints (SQLite): idle, and while the WAL grows.
CHECKPOINT_INTERVAL = 1.0
CHECKPOINT_BUSY_INTERVAL = 0.1
# How long a write waits for a lock held by another process before the store counts as
# unavailable (and DMs fail closed).
SQLITE_BUSY_TIMEOUT_MS = 5000


def _in_transaction(engine: sa.Engine, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with engine.begin() as conn:
        return fn(conn, *args)


# Seconds between a pool writer's attempts at a write lock held elsewhere.
SQLITE_RETRY_PAUSE = 0.0005


def _queued(
    gate: threading.Lock, engine: sa.Engine, fn: Callable[..., T], args: tuple[Any, ...]
) -> T:
    """`fn` in a write transaction on a pool thread, once the lock is free. The pool's
    writers take turns on `gate`; the one whose turn it is tries SQLite's lock every
    SQLITE_RETRY_PAUSE until SQLITE_BUSY_TIMEOUT_MS. SQLite's own busy handler sleeps 1, 2,
    5, … up to 100 ms between tries, and the event loop's inline writes took the lock in
    between: under 16 concurrent senders some DMs waited 0.3-1.7 s for their hold's write
    (measured)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    with gate, engine.connect() as conn:
        while time.monotonic() < deadline:
            done, result = _without_waiting(conn, fn, args)
            if done:
                return cast(T, result)
            time.sleep(SQLITE_RETRY_PAUSE)
    return _in_transaction(engine, fn, args)  # the lock still held: SQLite's error


# SQLite's primary result codes for "another connection holds the lock".
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _without_waiting(
    conn: sa.Connection, fn: Callable[..., T], args: tuple[Any, ...]
) -> tuple[bool, T | None]:
    """`fn` in a transaction on `conn`, which never waits for a lock: (False, None) when
    the lock was held, having changed nothing, so the caller runs `fn` where waiting is
    harmless."""
    try:
        with conn.begin():
            return True, fn(conn, *args)
    except sa.exc.OperationalError as exc:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return False, None
        raise


def _read_only(engine: sa.Engine, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with engine.connect() as conn:
        return fn(conn, *args)


def _checkpoint(conn: sa.Connection) -> int:
    """The WAL's size in frames, once copied back as far as it can be. PASSIVE: never
    waits for readers or writers; whatever cannot be copied now is next."""
    row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return int(row[1])


def sqlite_runner(conn: sa.Connection) -> Callable[[str, tuple[Any, ...]], sqlite3.Cursor]:
    """Statements straight on the sqlite3 connection, for the statements every DM runs
    (the template index, the follow lookup, BEGIN IMMEDIATE): SQLAlchemy's per-statement
    work (~30 µs) was a tenth of a replayed DM's CPU (bench/simulate.py, py-spy). Driver
    errors are raised as SQLAlchemy would raise them, so `Database` translates them as
    before."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)

    def run(sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return raw.execute(sql, params)
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc

    return run


def _begin_immediate(conn: sa.Connection) -> None:
    # On the driver's connection: through SQLAlchemy's execution, BEGIN cost ~18 of an
    # empty write transaction's ~41 µs (measured). A lock held elsewhere is still raised
    # as SQLAlchemy's OperationalError (see _without_waiting).
    sqlite_runner(conn)("BEGIN IMMEDIATE")


def _never_wait(dbapi_conn: Any, _record: Any) -> None:
    # A lock held elsewhere fails at once (and the operation goes to the pool) instead of
    # stalling the event loop for up to SQLITE_BUSY_TIMEOUT_MS.
    dbapi_conn.execute("PRAGMA busy_timeout=0")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Transactions are begun explicitly (BEGIN IMMEDIATE for writes), never implicitly.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer. synchronous=NORMAL: a committed transaction
    # survives the process being killed (kill -9); only an OS crash or power loss can
    # lose the last commits.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Checkpoints run in the background (Database.checkpoint_loop); this is only a safety
    # net that bounds the WAL (~40 MiB) if that loop is not running.
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


# Any fixed number: the advisory lock replicas queue on while one of them migrates.
_MIGRATION_LOCK = 0x646D67617465  # "dmgate"


def _upgrade(sync_conn: sa.Connection) -> None:
    if sync_conn.dialect.name == "postgresql":
        # Replicas starting together: one applies the migrations, the others wait here and
        # then find the schema current. (SQLite: BEGIN IMMEDIATE already serialises.)
        sync_conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


def insert_ignore(conn: sa.Connection, table: sa.Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
