"""Review API tokens dmgate generated itself (when DMGATE_REVIEW_TOKENS is unset): only
their SHA-256 digests are stored. And review sessions signed out before they expired."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from proxy.store.database import Database
from proxy.store.errors import ConstraintViolation
from proxy.store.tables import review_signouts, review_tokens


class ReviewTokens:
    """The review_tokens table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[tuple[str, str]]:
        """Every stored token as (name, sha256 hex digest)."""

        def _op(conn: sa.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(sa.select(review_tokens.c.name, review_tokens.c.token_sha256))
            return [(r.name, r.token_sha256) for r in rows]

        return await self._db.read(_op)

    async def add(self, name: str, token_sha256: str, now: datetime) -> bool:
        """False if a token of that name exists (another replica generated one first)."""

        def _op(conn: sa.Connection) -> None:
            conn.execute(
                sa.insert(review_tokens).values(
                    name=name, token_sha256=token_sha256, created_at=now
                )
            )

        try:
            await self._db.write(_op)
        except ConstraintViolation:
            return False
        return True


class ReviewSignouts:
    """The review_signouts table: sessions (by digest) signed out before they expire."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, session_sha256: str, expires_at: float, now: float) -> None:
        """Remember a sign-out until `expires_at`; forget those already past."""

        def _op(conn: sa.Connection) -> None:
            conn.execute(sa.delete(review_signouts).where(review_signouts.c.expires_at < now))
            conn.execute(
                sa.insert(review_signouts).values(
                    session_sha256=session_sha256, expires_at=expires_at
                )
            )

        try:
            await self._db.write(_op)
        except ConstraintViolation:
            pass  # signed out already (a second tab, a double click)

    async def signed_out(self, session_sha256: str) -> bool:
        def _op(conn: sa.Connection) -> bool:
            row = conn.execute(
                sa.select(review_signouts.c.session_sha256).where(
                    review_signouts.c.session_sha256 == session_sha256
                )
            ).first()
            return row is not None

        return await self._db.read(_op)
