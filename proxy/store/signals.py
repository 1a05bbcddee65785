"""Facts the policies ask about, kept in the store: follows, who wrote first, whose
credential is whose, and the template index. Implements `policies.model.Signals`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from policies.model import (
    CampaignMatch,
    ContactHistory,
    MatchThresholds,
    TemplateFingerprint,
)
from proxy.facts import (
    ConversationMembers,
    Fact,
    Followed,
    FollowerSnapshot,
    Identity,
    InboundMessage,
    Profile,
    SentMessage,
    Unfollowed,
)
from proxy.store.database import Database, insert_ignore, sqlite_runner
from proxy.store.tables import (
    contacts,
    conversations,
    follower_baselines,
    follows,
    identities,
    inbound,
    profiles,
    sent_messages,
)
from proxy.store.template_index import record_copy, record_copy_pg

# What a reviewer reads about a recipient, besides the names.
PROFILE_DETAILS = ("username", "name", "description", "location")

# Asked for every recipient of every DM (follow_timing): built once.
_FOLLOWED_AT = sa.select(follows.c.followed_at).where(
    follows.c.platform == sa.bindparam("platform"),
    follows.c.account == sa.bindparam("account"),
    follows.c.follower == sa.bindparam("follower"),
)
# The same statement as asyncpg takes it ($1 platform, $2 account, $3 follower), for
# `Database.native`.
_PG_FOLLOWED_AT = str(_FOLLOWED_AT.compile(dialect=pg_asyncpg.dialect()))
# And as sqlite3 takes it (? in the same order), with the conversion SQLAlchemy applies to
# its result, for `sqlite_runner`: through SQLAlchemy the lookup cost ~80 µs of CPU, on the
# driver ~10 (measured).
_SQLITE = sqlite.dialect()
_SQLITE_FOLLOWED_AT = str(_FOLLOWED_AT.compile(dialect=_SQLITE))
_SQLITE_FOLLOWED_AT_VALUE = follows.c.followed_at.type.dialect_impl(_SQLITE).result_processor(
    _SQLITE, None
)
assert _SQLITE_FOLLOWED_AT_VALUE is not None  # UTCDateTime converts every result
_WROTE_FIRST = sa.select(sa.literal(1)).where(
    inbound.c.platform == sa.bindparam("platform"),
    inbound.c.account == sa.bindparam("account"),
    inbound.c.peer == sa.bindparam("peer"),
)


@dataclass(frozen=True)
class _ContactQueries:
    """The contact statements, built once per dialect (run on every DM while
    first_contact_pitch or burst is on)."""

    wrote: Any
    record: Any
    reached: Any
    count_recent: Any
    mark_reached: Any


def _contact_queries(insert: Any) -> _ContactQueries:
    c = contacts
    scope = (c.c.platform == sa.bindparam("platform"), c.c.account == sa.bindparam("account"))
    these = c.c.recipient.in_(sa.bindparam("recipients", expanding=True))
    recent = (
        sa.select(sa.literal(1))
        .where(*scope, c.c.cold.is_(True), c.c.first_at >= sa.bindparam("since"))
        .limit(sa.bindparam("cap"))
        .subquery()
    )
    return _ContactQueries(
        wrote=sa.select(inbound.c.peer).where(
            inbound.c.platform == sa.bindparam("platform"),
            inbound.c.account == sa.bindparam("account"),
            inbound.c.peer.in_(sa.bindparam("recipients", expanding=True)),
        ),
        # The first attempt's row stays: later attempts change nothing.
        record=insert(c).on_conflict_do_nothing(),
        reached=sa.select(c.c.recipient).where(*scope, these, c.c.reached_at.is_not(None)),
        count_recent=sa.select(sa.func.count()).select_from(recent),
        # An UPDATE reserves the column names as parameter names: hence the `b_` ones.
        mark_reached=sa.update(c)
        .where(
            c.c.platform == sa.bindparam("b_platform"),
            c.c.account == sa.bindparam("b_account"),
            c.c.recipient.in_(sa.bindparam("b_recipients", expanding=True)),
            c.c.reached_at.is_(None),
        )
        .values(reached_at=sa.bindparam("b_at", type_=sa.Float)),
    )


_CONTACT_QUERIES = {
    "sqlite": _contact_queries(sqlite.insert),
    "postgresql": _contact_queries(postgresql.insert),
}


@dataclass(frozen=True)
class _FactQueries:
    """Statements for the facts traffic teaches most (every follower page, every inbound
    message; a replay's every follow), built once per dialect."""

    follower: Any  # "is a follower": never erases a known follow time
    followed: Any  # followed at a known time
    inbound: Any


def _fact_queries(insert: Any) -> _FactQueries:
    followed = insert(follows)
    return _FactQueries(
        follower=insert(follows).on_conflict_do_nothing(),
        followed=followed.on_conflict_do_update(
            index_elements=[follows.c.platform, follows.c.account, follows.c.follower],
            set_={
                "followed_at": followed.excluded.followed_at,
                "source": followed.excluded.source,
                "updated_at": followed.excluded.updated_at,
            },
        ),
        inbound=insert(inbound).on_conflict_do_nothing(),
    )


_FACT_QUERIES = {
    "sqlite": _fact_queries(sqlite.insert),
    "postgresql": _fact_queries(postgresql.insert),
}


class StoreSignals:
    """The store-backed `Signals`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- questions the policies ask ----------------------------------------------------

    async def followed_at(self, platform: str, account: str, follower: str) -> datetime | None:
        if self._db.dialect_name == "postgresql":  # every DM asks: no SQLAlchemy in between
            at = await self._db.native(
                lambda conn: conn.fetchval(_PG_FOLLOWED_AT, platform, account, follower)
            )
            return None if at is None else at.astimezone(UTC)
        params = (platform, account, follower)

        def _op(conn: sa.Connection) -> datetime | None:
            row = sqlite_runner(conn)(_SQLITE_FOLLOWED_AT, params).fetchone()
            return None if row is None else _SQLITE_FOLLOWED_AT_VALUE(row[0])

        return await self._db.read(_op)

    async def has_written_to(self, platform: str, peer: str, account: str) -> bool:
        params = {"platform": platform, "account": account, "peer": peer}

        def _op(conn: sa.Connection) -> bool:
            return conn.execute(_WROTE_FIRST, params).first() is not None

        return await self._db.read(_op)

    async def template_recipients(
        self,
        platform: str,
        account: str,
        fingerprint: TemplateFingerprint,
        recipients: tuple[str, ...],
        now: datetime,
        since: datetime,
        threshold: float,
        cap: int,
    ) -> int:
        """template_campaign with the resemblance test alone, answering the count (the
        form earlier versions asked; kept for benchmarks and tests of the count)."""
        found = await self.template_campaign(
            platform, account, fingerprint, recipients, now, since, MatchThresholds(threshold), cap
        )
        return found.recipients

    async def template_campaign(
        self,
        platform: str,
        account: str,
        fingerprint: TemplateFingerprint,
        recipients: tuple[str, ...],
        now: datetime,
        since: datetime,
        thresholds: MatchThresholds,
        cap: int,
    ) -> CampaignMatch:
        if not recipients:  # the proxy never asks: a DM keeps at least one recipient
            raise ValueError("template_campaign needs at least one recipient")
        now_s, since_s = now.timestamp(), since.timestamp()
        args = (platform, account, fingerprint, recipients, now_s, since_s, thresholds, cap)
        if self._db.dialect_name == "postgresql":
            return await self._db.native(lambda conn: record_copy_pg(conn, *args))

        def _op(conn: sa.Connection) -> CampaignMatch:
            return record_copy(conn, *args)

        return await self._db.write(_op, inline=True)

    async def contact_history(
        self,
        platform: str,
        account: str,
        recipients: tuple[str, ...],
        now: datetime,
        since: datetime,
        cap: int,
    ) -> ContactHistory:
        now_s, since_s = now.timestamp(), since.timestamp()
        unique = list(dict.fromkeys(recipients))
        scope = {"platform": platform, "account": account}

        def _op(conn: sa.Connection) -> ContactHistory:
            q = _CONTACT_QUERIES[conn.dialect.name]
            first: list[str] = []
            if unique:
                these = {**scope, "recipients": unique}
                wrote = set(conn.execute(q.wrote, these).scalars())
                conn.execute(
                    q.record,
                    [
                        {**scope, "recipient": r, "first_at": now_s, "cold": r not in wrote}
                        for r in unique
                    ],
                )
                # Reached is only ever set after a forward, never by this operation: asking
                # twice for one DM (two policies, concurrently) answers the same.
                reached = set(conn.execute(q.reached, these).scalars())
                first = [r for r in unique if r not in wrote and r not in reached]
            recent = 0
            if cap > 0:
                recent = conn.execute(
                    q.count_recent, {**scope, "since": since_s, "cap": cap}
                ).scalar_one()
            return ContactHistory(tuple(first), recent)

        return await self._db.write(_op, inline=True)

    async def contacts_reached(
        self, platform: str, account: str, recipients: tuple[str, ...], at: datetime
    ) -> None:
        """A DM from `account` reached `recipients` (forwarded upstream and accepted): they
        are no longer first contacts. Only contacts already recorded (by contact_history,
        while first_contact_pitch or burst is on) are marked."""
        unique = list(dict.fromkeys(recipients))
        if not unique:
            return
        params = {
            "b_platform": platform,
            "b_account": account,
            "b_recipients": unique,
            "b_at": at.timestamp(),
        }

        def _op(conn: sa.Connection) -> None:
            conn.execute(_CONTACT_QUERIES[conn.dialect.name].mark_reached, params)

        await self._db.write(_op, inline=True)

    # --- facts learnt from traffic -----------------------------------------------------

    async def account_for_credential(self, platform: str, credential_hash: str) -> str | None:
        def _op(conn: sa.Connection) -> Any:
            return (
                conn.execute(
                    sa.select(identities.c.account).where(
                        identities.c.platform == platform,
                        identities.c.credential_hash == credential_hash,
                    )
                )
            ).scalar_one_or_none()

        return await self._db.read(_op)

    async def recipient_names(self, platform: str, recipients: tuple[str, ...]) -> tuple[str, ...]:
        """Every known display name and handle of these recipients."""

        def _op(conn: sa.Connection) -> Any:
            rows = conn.execute(
                sa.select(profiles.c.names).where(
                    profiles.c.platform == platform, profiles.c.user_id.in_(recipients)
                )
            )
            return tuple(name for (names,) in rows for name in names)

        return await self._db.read(_op)

    async def conversation_members(
        self, platform: str, conversation_id: str
    ) -> tuple[str, ...] | None:
        def _op(conn: sa.Connection) -> tuple[str, ...] | None:
            members = conn.execute(
                sa.select(conversations.c.members).where(
                    conversations.c.platform == platform,
                    conversations.c.conversation_id == conversation_id,
                )
            ).scalar_one_or_none()
            return tuple(members) if members is not None else None

        return await self._db.read(_op)

    async def sent_direct(
        self, platform: str, account: str, message_id: str
    ) -> tuple[str, ...] | None:
        """The recipients of a direct message `account` was seen sending (`SentMessage`),
        or None if dmgate does not know it as one."""

        def _op(conn: sa.Connection) -> tuple[str, ...] | None:
            recipients = conn.execute(
                sa.select(sent_messages.c.recipients).where(
                    sent_messages.c.platform == platform,
                    sent_messages.c.account == account,
                    sent_messages.c.message_id == message_id,
                )
            ).scalar_one_or_none()
            return tuple(recipients) if recipients is not None else None

        return await self._db.read(_op)

    async def record_facts(
        self,
        platform: str,
        facts: list[Fact],
        now: datetime,
        credential_hash: str | None = None,
        source: str = "traffic",
    ) -> None:
        """Store what an adapter learnt. Idempotent: the same fact twice changes nothing."""
        if not facts:
            return

        def _op(conn: sa.Connection) -> Any:
            names = [f for f in facts if isinstance(f, Profile)]
            if names:
                # A follower page carries up to 1000 of them: one statement.
                stmt = insert_ignore(conn, profiles)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[profiles.c.platform, profiles.c.user_id],
                        set_={
                            "names": stmt.excluded.names,
                            "updated_at": stmt.excluded.updated_at,
                            # A sparser user object (a bare lookup) keeps what a fuller
                            # one taught.
                            **{
                                c: sa.func.coalesce(getattr(stmt.excluded, c), profiles.c[c])
                                for c in PROFILE_DETAILS
                            },
                        },
                    ),
                    [
                        {
                            "platform": platform,
                            "user_id": p.user,
                            "names": list(p.names),
                            "updated_at": now,
                            **{c: getattr(p, c) for c in PROFILE_DETAILS},
                        }
                        for p in {p.user: p for p in names}.values()
                    ],
                )
            for fact in facts:
                if not isinstance(fact, Profile):
                    self._record(conn, platform, fact, now, credential_hash, source)

        return await self._db.write(_op)

    def _record(
        self,
        conn: sa.Connection,
        platform: str,
        fact: Fact,
        now: datetime,
        credential_hash: str | None,
        source: str,
    ) -> None:
        if isinstance(fact, Identity):
            if credential_hash is not None:
                _identity(conn, platform, fact, credential_hash, now)
        elif isinstance(fact, Followed):
            self._follow(conn, platform, fact.account, fact.follower, fact.at, now, source)
        elif isinstance(fact, Unfollowed):
            conn.execute(
                sa.delete(follows).where(
                    follows.c.platform == platform,
                    follows.c.account == fact.account,
                    follows.c.follower == fact.follower,
                )
            )
        elif isinstance(fact, FollowerSnapshot):
            self._snapshot(conn, platform, fact, now)
        elif isinstance(fact, ConversationMembers):
            _members(conn, platform, fact, now)
        elif isinstance(fact, SentMessage):
            if fact.direct:  # only direct messages' edits are judged
                _sent_message(conn, platform, fact, now)
        elif isinstance(fact, InboundMessage):
            conn.execute(
                _FACT_QUERIES[conn.dialect.name].inbound,
                {
                    "platform": platform,
                    "account": fact.account,
                    "peer": fact.sender,
                    "first_at": fact.at or now,
                },
            )

    @staticmethod
    def _follow(
        conn: sa.Connection,
        platform: str,
        account: str,
        follower: str,
        at: datetime | None,
        now: datetime,
        source: str,
    ) -> None:
        q = _FACT_QUERIES[conn.dialect.name]
        row = {
            "platform": platform,
            "account": account,
            "follower": follower,
            "followed_at": at,
            "source": source,
            "updated_at": now,
        }
        # Knowing "is a follower" (no time) must never erase a known follow time.
        conn.execute(q.follower if at is None else q.followed, row)

    def _snapshot(
        self, conn: sa.Connection, platform: str, snap: FollowerSnapshot, now: datetime
    ) -> None:
        has_baseline = (
            conn.execute(
                sa.select(sa.literal(1)).where(
                    follower_baselines.c.platform == platform,
                    follower_baselines.c.account == snap.account,
                )
            )
        ).first() is not None
        known = (
            set(
                (
                    conn.execute(
                        sa.select(follows.c.follower).where(
                            follows.c.platform == platform,
                            follows.c.account == snap.account,
                            follows.c.follower.in_(snap.followers),
                        )
                    )
                ).scalars()
            )
            if snap.followers
            else set()
        )
        # Lists come newest first: an id new on the first page of a later snapshot followed
        # since the previous one. The first snapshot, and later pages, teach no timing.
        dated = has_baseline and snap.first_page
        for follower in snap.followers:
            if follower not in known:
                self._follow(
                    conn,
                    platform,
                    snap.account,
                    follower,
                    now if dated else None,
                    now,
                    "follower_list",
                )
        if not has_baseline:
            conn.execute(
                insert_ignore(conn, follower_baselines)
                .values(platform=platform, account=snap.account, first_seen_at=now)
                .on_conflict_do_nothing()
            )


def _identity(
    conn: sa.Connection, platform: str, fact: Identity, credential_hash: str, now: datetime
) -> None:
    stmt = insert_ignore(conn, identities)
    conn.execute(
        stmt.values(
            platform=platform, credential_hash=credential_hash, account=fact.account, seen_at=now
        ).on_conflict_do_update(
            index_elements=[identities.c.platform, identities.c.credential_hash],
            set_={"account": stmt.excluded.account, "seen_at": stmt.excluded.seen_at},
        )
    )


def _members(conn: sa.Connection, platform: str, fact: ConversationMembers, now: datetime) -> None:
    stmt = insert_ignore(conn, conversations).values(
        platform=platform,
        conversation_id=fact.conversation_id,
        members=list(fact.members),
        updated_at=now,
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[conversations.c.platform, conversations.c.conversation_id],
            set_={"members": stmt.excluded.members, "updated_at": now},
        )
    )


def _sent_message(conn: sa.Connection, platform: str, fact: SentMessage, now: datetime) -> None:
    stmt = insert_ignore(conn, sent_messages).values(
        platform=platform,
        account=fact.account,
        message_id=fact.message_id,
        recipients=list(fact.recipients),
        seen_at=now,
    )
    key = [sent_messages.c.platform, sent_messages.c.account, sent_messages.c.message_id]
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=key, set_={"recipients": stmt.excluded.recipients, "seen_at": now}
        )
    )
