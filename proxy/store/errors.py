"""What the store raises: nothing from SQLAlchemy or the database drivers leaves it.

`Database.read` and `Database.write` — the one place every store operation passes — turn
the drivers' errors into these (`translated`), so the rest of dmgate knows one boundary:
`StoreUnavailable` is answered 503 `store_unavailable` (`proxy.errors.answering_errors`),
and best-effort writes catch `StoreError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType

import aiohttp
from sqlalchemy import exc as sa_exc


class StoreError(Exception):
    """A store operation failed and changed nothing. `cause` names the driver's error type,
    never its message: that can carry SQL, parameters or a connection string."""

    def __init__(self, cause: str, message: str = "") -> None:
        super().__init__(message or f"store operation failed ({cause})")
        self.cause = cause


class StoreUnavailable(StoreError):
    """The store cannot be reached or stays locked (PostgreSQL down or restarting, SQLite's
    write lock held by another process, no pooled connection free in time): try again
    shortly. DMs fail closed rather than pass unjudged."""

    def __init__(
        self, cause: str, message: str = "dmgate's store is unreachable; try again shortly"
    ) -> None:
        super().__init__(cause, message)


class UnstorableValue(StoreError):
    """The store refused a value itself (PostgreSQL: a NUL character, a string longer than
    its column), not the statement or the connection."""


class ConstraintViolation(StoreError):
    """A row broke a constraint: usually a unique key a concurrent writer took first."""


# SQLSTATE classes that mean "the database is not there right now", not "this statement is
# wrong": connection exception, insufficient resources, operator intervention (shutdown,
# starting up), system error.
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
# Where an OSError must have been raised to be the store's: asyncpg connects through the
# event loop's sockets and raises plain OSErrors (refused, reset, timed out) that SQLAlchemy
# passes on unwrapped. (A client hanging up on a streamed response raises them too, and that
# is no store outage; inside `translated` only the store's own code runs.)
_STORE_MODULES = ("asyncpg", "sqlalchemy", "proxy.store", "sqlite3", "aiosqlite")


def is_store_outage(exc: BaseException) -> bool:
    """Whether `exc` means the store is unreachable or locked (retry later: 503), as opposed
    to a bug in dmgate (a constraint or statement dmgate got wrong: 500)."""
    if isinstance(
        exc,
        sa_exc.OperationalError  # SQLite locked or unwritable, PostgreSQL gone
        | sa_exc.InterfaceError  # connection closed under us
        | sa_exc.TimeoutError  # no pooled connection came free in time
        | sa_exc.DisconnectionError,
    ):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    if _from_asyncpg(exc):
        # `Database.native`: asyncpg's own errors, not wrapped by SQLAlchemy. Its
        # InterfaceErrors say the connection is closed or unusable. (Its pool's wait for a
        # free connection ends in a TimeoutError, an OSError: below.)
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
        return True
    if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError):
        return _raised_in(exc.__traceback__, _STORE_MODULES)
    return False


def _from_asyncpg(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("asyncpg.")


def _native_sqlstate(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None) if _from_asyncpg(exc) else None
    return sqlstate if isinstance(sqlstate, str) else ""


def is_unstorable_value(exc: BaseException) -> bool:
    """Whether the store refused a value itself (SQLSTATE class 22: PostgreSQL's NUL
    characters, strings longer than their column), not the statement or the connection.
    asyncpg's are plain DBAPIErrors with the SQLSTATE, not DataErrors."""
    if isinstance(exc, sa_exc.DataError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and sqlstate.startswith("22")
    return _native_sqlstate(exc).startswith("22")


def _raised_in(tb: TracebackType | None, modules: tuple[str, ...]) -> bool:
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(name, str) and name.startswith(modules):
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """The store's errors for whatever a store operation raises from SQLAlchemy or a
    driver; the original stays chained (`__cause__`) for tracebacks."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        cause = type(exc).__name__
        if is_store_outage(exc):
            raise StoreUnavailable(cause) from exc
        if is_unstorable_value(exc):
            raise UnstorableValue(cause) from exc
        if isinstance(exc, sa_exc.IntegrityError) or _native_sqlstate(exc).startswith("23"):
            raise ConstraintViolation(cause) from exc
        if isinstance(exc, sa_exc.SQLAlchemyError) or _from_asyncpg(exc):
            raise StoreError(cause) from exc
        raise
