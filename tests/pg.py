"""Fresh PostgreSQL databases for tests, on the server at DMGATE_TEST_PG_DSN (default: the
local trust-auth server these machines run). Unreachable → skipped locally, failed in CI."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import asyncpg
import pytest

T = TypeVar("T")

ADMIN_DSN = os.environ.get("DMGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def available() -> bool:
    try:
        _run(_admin("SELECT 1"))
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    return True


def require() -> None:
    if not available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN} (CI needs it)")
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_DSN}")


def create_database() -> str:
    """A new empty database; returns its URL (DMGATE_DATABASE_URL form)."""
    name = f"dmgate_test_{uuid.uuid4().hex[:12]}"
    _run(_admin(f'CREATE DATABASE "{name}"'))
    base = ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    try:
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except (TimeoutError, OSError, asyncpg.PostgresError):
        pass  # the server may be down on purpose (outage tests): CI starts fresh anyway


def fresh_database() -> Iterator[str]:
    """A fixture's body: a new database's URL for the test, dropped after it (skipped or
    failed as `require` says when no server answers)."""
    require()
    url = create_database()
    yield url
    drop_database(url)
