"""The review inbox's questions about holds: filtered pages in either order (by cursor, so
10,000 pending holds page as fast as 10), counts per filter value, the copies of one
campaign, and decided holds for the audit export."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from proxy.store.database import Database, Row
from proxy.store.holds import PENDING
from proxy.store.tables import holds

# Everything but the sealed request and the tool's answer: what a page of holds shows.
_LISTED = [
    c
    for c in holds.c
    if c.name not in ("request_sealed", "response_body", "response_headers", "dedupe_key")
]


@dataclass(frozen=True)
class HoldFilter:
    status: str | None = None
    platform: str | None = None
    account: str | None = None
    policy: str | None = None
    template: str | None = None

    def where(self) -> list[Any]:
        clauses: list[Any] = []
        if self.status:
            clauses.append(holds.c.status == self.status)
        if self.platform:
            clauses.append(holds.c.platform == self.platform)
        if self.account:
            clauses.append(holds.c.account == self.account)
        if self.policy:
            clauses.append(holds.c.policy_names.contains(f" {self.policy} ", autoescape=True))
        if self.template:
            clauses.append(holds.c.template_id == self.template)
        return clauses


def policy_names(policies: list[dict[str, str]]) -> str:
    """The `policy_names` column of a hold: " follow_timing template_reuse "."""
    names = sorted({p["policy"] for p in policies if p.get("policy")})
    return f" {' '.join(names)} " if names else ""


class InboxQueries:
    """Read-mostly queries on the holds table for the review API and inbox."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self, where: HoldFilter, limit: int, cursor: str | None, oldest_first: bool
    ) -> list[Row]:
        """Up to `limit` holds after `cursor` (the id of the previous page's last hold).
        Ids sort by creation time, so id order is age order."""
        q = sa.select(holds).where(*where.where()).limit(limit)
        if oldest_first:
            q = q.order_by(holds.c.id.asc())
            if cursor:
                q = q.where(holds.c.id > cursor)
        else:
            q = q.order_by(holds.c.id.desc())
            if cursor:
                q = q.where(holds.c.id < cursor)

        def _op(conn: sa.Connection) -> list[Row]:
            return [dict(r._mapping) for r in conn.execute(q)]

        return await self._db.read(_op)

    async def facets(self, status: str) -> dict[str, Counter[str]]:
        """How many holds of `status` each platform, account, policy and campaign has."""

        def _op(conn: sa.Connection) -> dict[str, Counter[str]]:
            out: dict[str, Counter[str]] = {
                "platform": Counter(),
                "account": Counter(),
                "policy": Counter(),
                "template": Counter(),
            }
            q = sa.select(
                holds.c.platform, holds.c.account, holds.c.policy_names, holds.c.template_id
            ).where(holds.c.status == status)
            for platform, account, names, template in conn.execute(q):
                out["platform"][platform] += 1
                out["account"][account] += 1
                for name in (names or "").split():
                    out["policy"][name] += 1
                if template:
                    out["template"][template] += 1
            return out

        return await self._db.read(_op)

    async def version(self) -> str:
        """Changes whenever a hold is added or decided: what live pages poll for."""

        def _op(conn: sa.Connection) -> str:
            newest, decided = conn.execute(
                sa.select(sa.func.max(holds.c.id), sa.func.max(holds.c.decided_at))
            ).one()
            pending = conn.execute(
                sa.select(sa.func.count()).select_from(holds).where(holds.c.status == PENDING)
            ).scalar_one()
            return f"{newest}:{decided.isoformat() if decided else ''}:{pending}"

        return await self._db.read(_op)

    async def pending_since(self, older_than: datetime) -> list[tuple[str, datetime]]:
        """(id, created_at) of pending holds created before `older_than` (reminders)."""

        def _op(conn: sa.Connection) -> list[tuple[str, datetime]]:
            q = sa.select(holds.c.id, holds.c.created_at).where(
                holds.c.status == PENDING, holds.c.created_at <= older_than
            )
            return [(r.id, r.created_at) for r in conn.execute(q)]

        return await self._db.read(_op)

    async def count(self, where: HoldFilter) -> int:
        def _op(conn: sa.Connection) -> int:
            return conn.execute(
                sa.select(sa.func.count()).select_from(holds).where(*where.where())
            ).scalar_one()

        return await self._db.read(_op)

    async def campaign(self, template_id: str, limit: int = 200) -> list[Row]:
        """The copies of one campaign, oldest first (every status: "the 7th recipient of
        this text")."""

        def _op(conn: sa.Connection) -> list[Row]:
            q = (
                sa.select(*_LISTED)
                .where(holds.c.template_id == template_id)
                .order_by(holds.c.id.asc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in conn.execute(q)]

        return await self._db.read(_op)

    async def pending_ids(self, template_id: str) -> list[str]:
        def _op(conn: sa.Connection) -> list[str]:
            q = sa.select(holds.c.id).where(
                holds.c.template_id == template_id,
                holds.c.status == PENDING,
                holds.c.claimed_at.is_(None),
            )
            return list(conn.execute(q.order_by(holds.c.id)).scalars())

        return await self._db.read(_op)

    async def earlier_to(
        self, platform: str, account: str, recipients: list[str], before: str, limit: int = 20
    ) -> list[Row]:
        """Earlier holds from `account` whose recipients include one of `recipients` (the
        conversation so far, as far as dmgate held it): newest first."""

        def _op(conn: sa.Connection) -> list[Row]:
            q = (
                sa.select(*_LISTED)
                .where(
                    holds.c.platform == platform,
                    holds.c.account == account,
                    holds.c.id < before,
                )
                .order_by(holds.c.id.desc())
                .limit(500)
            )
            wanted = set(recipients)
            out = []
            for r in conn.execute(q):
                if wanted & set(r.recipients):
                    out.append(dict(r._mapping))
                    if len(out) >= limit:
                        break
            return out

        return await self._db.read(_op)

    async def decided_since(self, since: datetime, after_id: str | None, limit: int) -> list[Row]:
        """Decided holds (any status but pending) in decision order, from `since`;
        `after_id` continues a batch that ended at the same instant."""

        def _op(conn: sa.Connection) -> list[Row]:
            q = sa.select(*_LISTED).where(holds.c.decided_at.is_not(None))
            if after_id is None:
                q = q.where(holds.c.decided_at >= since)
            else:
                q = q.where(
                    sa.or_(
                        holds.c.decided_at > since,
                        sa.and_(holds.c.decided_at == since, holds.c.id > after_id),
                    )
                )
            q = q.where(holds.c.status != PENDING).order_by(holds.c.decided_at, holds.c.id)
            return [dict(r._mapping) for r in conn.execute(q.limit(limit))]

        return await self._db.read(_op)
