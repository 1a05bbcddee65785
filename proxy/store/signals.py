"""Facts the policies ask about, kept in the store: follows, who wrote first, whose
credential is whose, and the template index. Implements `policies.model.Signals`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import xxhash
from sqlalchemy.dialects import postgresql, sqlite

from policies.model import (
    CampaignMatch,
    ContactHistory,
    MatchThresholds,
    StoredCopy,
    TemplateFingerprint,
)
from policies.template_reuse import campaign_match, closest_campaign
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
from proxy.store.database import Database, insert_ignore
from proxy.store.tables import (
    contacts,
    conversations,
    follower_baselines,
    follows,
    identities,
    inbound,
    lsh_bands,
    profiles,
    sent_messages,
    template_recipients,
    template_signatures,
    templates,
)

# What a reviewer reads about a recipient, besides the names.
PROFILE_DETAILS = ("username", "name", "description", "location")
# Enough earlier copies of a template to compare a new message against; beyond this the
# template is well described and rows would only grow.
MAX_SIGNATURES_PER_TEMPLATE = 16
# Templates compared per message, those sharing the most bands first.
MAX_CANDIDATE_TEMPLATES = 8


@dataclass(frozen=True)
class _TemplateQueries:
    """The template index's statements, built once per dialect: this is the hot path of
    every DM decision, and building statements costs more than running them."""

    candidates: Any
    new_template: Any
    index_bands: Any
    claim_bands: Any
    keep_signature: Any
    seen: Any
    count_recent: Any
    lock: Any = None
    relaxed_commit: Any = None


def _scope_lock_key(platform: str, account: str) -> int:
    """A signed 64-bit advisory lock key for one sending account's template index."""
    digest = xxhash.xxh64_intdigest(f"dmgate-templates:{platform}:{account}".encode())
    return digest - (1 << 64) if digest >= (1 << 63) else digest


def _candidate_templates() -> Any:
    """Templates named by any of the DM's band keys, most hits first (at most
    MAX_CANDIDATE_TEMPLATES), and whether a MinHash band key (not only a loose or meaning
    key) named it: see StoredCopy.banded."""
    return (
        sa.select(
            lsh_bands.c.template_id,
            sa.func.count().label("hits"),
            sa.func.max(
                sa.case((lsh_bands.c.key.in_(sa.bindparam("strict", expanding=True)), 1), else_=0)
            ).label("banded"),
        )
        .where(lsh_bands.c.key.in_(sa.bindparam("keys", expanding=True)))
        .group_by(lsh_bands.c.template_id)
        # Oldest template first among equals: the same history always picks the same one.
        .order_by(sa.desc("hits"), lsh_bands.c.template_id)
        .limit(MAX_CANDIDATE_TEMPLATES)
        .subquery()
    )


def _recent_recipients() -> Any:
    """Distinct recipients seen since `since` of every matched template (one campaign's
    fragments), up to `cap`: only "at least N" matters."""
    return (
        sa.select(template_recipients.c.recipient)
        .where(
            template_recipients.c.template_id.in_(sa.bindparam("tids", expanding=True)),
            template_recipients.c.last_seen >= sa.bindparam("since"),
        )
        .distinct()
        .limit(sa.bindparam("cap"))
        .subquery()
    )


def _template_queries(
    insert: Any, lock: Any = None, relaxed_commit: Any = None
) -> _TemplateQueries:
    sig = template_signatures
    hits = _candidate_templates()
    stored = (
        sa.select(sa.func.count()).where(sig.c.template_id == sa.bindparam("tid")).scalar_subquery()
    )
    seen = insert(template_recipients)
    claim = insert(lsh_bands)
    return _TemplateQueries(
        # Columns in StoredCopy's order; copies stored before 0005 have no features.
        candidates=sa.select(
            sig.c.template_id,
            sig.c.text_key,
            sig.c.signature,
            sa.func.coalesce(sig.c.features, b""),
            sa.func.coalesce(sig.c.meaning, b""),
            sa.cast(hits.c.banded, sa.Boolean),
        )
        .join(hits, hits.c.template_id == sig.c.template_id)
        .order_by(sig.c.template_id),
        new_template=sa.insert(templates).returning(templates.c.id),
        index_bands=insert(lsh_bands).on_conflict_do_nothing(),
        # Meaning keys: the latest template to use a key takes it (see tables.lsh_bands).
        claim_bands=claim.on_conflict_do_update(
            index_elements=[lsh_bands.c.key], set_={"template_id": claim.excluded.template_id}
        ),
        # Keep up to MAX_SIGNATURES_PER_TEMPLATE distinct copies to compare against.
        keep_signature=insert(sig)
        .from_select(
            ["template_id", "text_key", "signature", "features", "meaning"],
            sa.select(
                sa.bindparam("tid", type_=sa.BigInteger),
                sa.bindparam("text_key", type_=sa.BigInteger),
                sa.bindparam("signature", type_=sa.LargeBinary),
                sa.bindparam("features", type_=sa.LargeBinary),
                sa.bindparam("meaning", type_=sa.LargeBinary),
            ).where(stored < MAX_SIGNATURES_PER_TEMPLATE),
        )
        .on_conflict_do_nothing(),
        seen=seen.on_conflict_do_update(
            index_elements=[template_recipients.c.template_id, template_recipients.c.recipient],
            set_={"last_seen": seen.excluded.last_seen},
        ),
        count_recent=sa.select(sa.func.count()).select_from(_recent_recipients()),
        lock=lock,
        relaxed_commit=relaxed_commit,
    )


_TEMPLATE_QUERIES = {
    "sqlite": _template_queries(sqlite.insert),
    "postgresql": _template_queries(
        postgresql.insert,
        lock=sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger))),
        relaxed_commit=sa.text("SET LOCAL synchronous_commit = off"),
    ),
}


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


class StoreSignals:
    """The store-backed `Signals`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- questions the policies ask ----------------------------------------------------

    async def followed_at(self, platform: str, account: str, follower: str) -> datetime | None:
        def _op(conn: sa.Connection) -> Any:
            return (
                conn.execute(
                    sa.select(follows.c.followed_at).where(
                        follows.c.platform == platform,
                        follows.c.account == account,
                        follows.c.follower == follower,
                    )
                )
            ).scalar_one_or_none()

        return await self._db.read(_op)

    async def has_written_to(self, platform: str, peer: str, account: str) -> bool:
        def _op(conn: sa.Connection) -> Any:
            row = (
                conn.execute(
                    sa.select(sa.literal(1)).where(
                        inbound.c.platform == platform,
                        inbound.c.account == account,
                        inbound.c.peer == peer,
                    )
                )
            ).first()
            return row is not None

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
        now_s, since_s = now.timestamp(), since.timestamp()
        keys = list(fingerprint.band_keys + fingerprint.loose_keys + fingerprint.meaning_keys)

        def _op(conn: sa.Connection) -> CampaignMatch:
            q = _TEMPLATE_QUERIES[conn.dialect.name]
            if q.relaxed_commit is not None:
                # The index is a heuristic count: losing its last few milliseconds of
                # writes in a database crash is harmless, and not waiting for the WAL
                # flush halves the DM's latency. Holds stay fully durable.
                conn.execute(q.relaxed_commit)
            if q.lock is not None:
                # Replicas judging copies of one account's text at the same instant must
                # not each start a template of their own: one account's template index is
                # changed by one transaction at a time (SQLite: BEGIN IMMEDIATE does it).
                conn.execute(q.lock, {"key": _scope_lock_key(platform, account)})
            # 1. One indexed lookup: templates sharing a band key with this message (each
            # key names one template, so at most len(keys) of them whatever the history),
            # most band hits first, with every stored copy of each.
            params = {"keys": keys, "strict": list(fingerprint.band_keys)}
            rows = [StoredCopy(*row) for row in conn.execute(q.candidates, params)]
            # 2. The policy's own comparison (pure), against every stored copy of each.
            best = closest_campaign(fingerprint, rows, thresholds)
            if best is None:
                template_id = conn.execute(
                    q.new_template, {"platform": platform, "account": account, "first_seen": now_s}
                ).scalar_one()
            else:
                template_id = best.campaign
            self._index_copy(
                conn, q, template_id, fingerprint, known=bool(best and best.known_text)
            )
            conn.execute(
                q.seen,
                [
                    {"template_id": template_id, "recipient": r, "last_seen": now_s}
                    for r in recipients
                ],
            )
            # 4. Distinct recipients in the window of every campaign it matched, capped.
            tids = list(best.matched) if best is not None else [template_id]
            count = conn.execute(
                q.count_recent, {"tids": tids, "since": since_s, "cap": cap}
            ).scalar_one()
            return campaign_match(best, template_id, count, thresholds)

        return await self._db.write(_op)

    @staticmethod
    def _index_copy(
        conn: sa.Connection,
        q: _TemplateQueries,
        template_id: int,
        fp: TemplateFingerprint,
        known: bool,
    ) -> None:
        """3. Keep this copy, if it is a new text and the template keeps fewer than
        MAX_SIGNATURES_PER_TEMPLATE copies: every MinHash band key then comes from a stored
        signature, so retention can recompute a template's keys (no index needed). Meaning
        keys are claimed on every attempt, so an active campaign keeps them."""
        if not known:
            kept = conn.execute(
                q.keep_signature,
                {
                    "tid": template_id,
                    "text_key": fp.text_key,
                    "signature": fp.signature,
                    "features": fp.features or None,
                    "meaning": fp.meaning or None,
                },
            ).rowcount
            if kept:  # band keys that already name a template keep it; loose keys move
                conn.execute(
                    q.index_bands, [{"key": k, "template_id": template_id} for k in fp.band_keys]
                )
                if fp.loose_keys:
                    conn.execute(
                        q.claim_bands,
                        [{"key": k, "template_id": template_id} for k in fp.loose_keys],
                    )
        if fp.meaning_keys:
            conn.execute(
                q.claim_bands, [{"key": k, "template_id": template_id} for k in fp.meaning_keys]
            )

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

        return await self._db.write(_op)

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

        await self._db.write(_op)

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
                insert_ignore(conn, inbound)
                .values(
                    platform=platform,
                    account=fact.account,
                    peer=fact.sender,
                    first_at=fact.at or now,
                )
                .on_conflict_do_nothing()
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
        stmt = insert_ignore(conn, follows).values(
            platform=platform,
            account=account,
            follower=follower,
            followed_at=at,
            source=source,
            updated_at=now,
        )
        if at is None:
            # Knowing "is a follower" must never erase a known follow time.
            conn.execute(stmt.on_conflict_do_nothing())
        else:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[follows.c.platform, follows.c.account, follows.c.follower],
                    set_={
                        "followed_at": stmt.excluded.followed_at,
                        "source": source,
                        "updated_at": now,
                    },
                )
            )

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
