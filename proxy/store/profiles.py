"""What dmgate saw of recipients in traffic, as a reviewer reads it: handle, display name,
bio, location (from `profiles`), when they followed the account (`follows`) and whether
they ever wrote to it (`inbound_messages`).

Profiles are kept as long as a policy window or a pending hold may need them: a new hold
marks its recipients' profiles as used (`touch`), and retention drops those neither seen
nor used since its cutoff (`proxy.store.retention`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from proxy.store.database import Database
from proxy.store.tables import follows, inbound, profiles


def _ts(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


class ProfileStore:
    """Recipient profiles for the review API and inbox."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_holds(self, holds: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Each hold's `recipient_profiles` (by hold id), in its recipients' order: one
        query per table for the whole page."""
        rows = list(holds)
        wanted = {(r["platform"], u) for r in rows for u in r["recipients"]}
        if not rows:
            return {}

        def _op(conn: sa.Connection) -> tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any]]:
            users = sorted({u for _, u in wanted})
            found: dict[Any, Any] = {}
            followed: dict[Any, Any] = {}
            wrote: dict[Any, Any] = {}
            for chunk in _chunks(users, 500):
                for p in conn.execute(sa.select(profiles).where(profiles.c.user_id.in_(chunk))):
                    found[(p.platform, p.user_id)] = p
                for f in conn.execute(
                    sa.select(
                        follows.c.platform,
                        follows.c.account,
                        follows.c.follower,
                        follows.c.followed_at,
                    ).where(follows.c.follower.in_(chunk))
                ):
                    followed[(f.platform, f.account, f.follower)] = f.followed_at
                for i in conn.execute(
                    sa.select(
                        inbound.c.platform, inbound.c.account, inbound.c.peer, inbound.c.first_at
                    ).where(inbound.c.peer.in_(chunk))
                ):
                    wrote[(i.platform, i.account, i.peer)] = i.first_at
            return found, followed, wrote

        found, followed, wrote = await self._db.read(_op)
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            views = []
            for user in r["recipients"]:
                p = found.get((r["platform"], user))
                key = (r["platform"], r["account"], user)
                views.append(
                    {
                        "id": user,
                        "username": p.username if p is not None else None,
                        "name": p.name if p is not None else None,
                        "names": list(p.names) if p is not None else [],
                        "description": p.description if p is not None else None,
                        "location": p.location if p is not None else None,
                        "followed_at": _ts(followed.get(key)),
                        "follows": key in followed,
                        "wrote_first": key in wrote,
                        "wrote_at": _ts(wrote.get(key)),
                    }
                )
            out[r["id"]] = views
        return out

    async def accounts(self, accounts: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The profiles of sending accounts (from their `users/me` answers), by id."""
        ids = sorted(set(accounts))[:500]
        if not ids:
            return {}

        def _op(conn: sa.Connection) -> dict[str, dict[str, Any]]:
            q = sa.select(profiles).where(profiles.c.user_id.in_(ids))
            return {
                p.user_id: {
                    "id": p.user_id,
                    "username": p.username,
                    "name": p.name,
                    "names": list(p.names),
                }
                for p in conn.execute(q)
            }

        return await self._db.read(_op)

    async def touch(self, platform: str, users: Iterable[str], now: datetime) -> None:
        """These recipients are named by a new hold: keep their profiles while it waits."""
        ids = sorted(set(users))
        if not ids:
            return

        def _op(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(profiles)
                .where(profiles.c.platform == platform, profiles.c.user_id.in_(ids))
                .values(updated_at=now)
            )

        await self._db.write(_op)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
