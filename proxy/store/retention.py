"""Retention: facts older than the longest policy window (plus a margin) can no longer
change a decision, so they are pruned — in bounded batches, each its own short transaction,
so pruning never holds locks long or competes with DMs for more than a moment.

Kept forever (small, and still true): who wrote first, whose credential is whose,
conversation members, holds (the review record). Profiles (names, bios: personal data)
are kept only while a policy window or a pending hold may need them: `profiles_cutoff`
reaches back the longest window or the hold TTL, whichever is longer. Follows lose only
their time, never the fact that someone follows: a later follower-list snapshot must not
mistake them for new. Direct messages dmgate saw sent are forgotten like other facts: an
edit of a forgotten one makes dmgate ask the platform.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from policies.template_reuse import copy_band_keys, template_scope
from proxy.store.database import Database
from proxy.store.tables import (
    decisions,
    follows,
    lsh_bands,
    outbox,
    profiles,
    sent_messages,
    template_recipients,
    template_signatures,
    templates,
)

BATCH = 1000
# Upper bound of batches per table and pass: a backlog is worked off over several passes.
MAX_BATCHES = 20


def _decisions(conn: sa.Connection, cutoff: datetime) -> int:
    ids = sa.select(decisions.c.id).where(decisions.c.created_at < cutoff).limit(BATCH)
    return conn.execute(sa.delete(decisions).where(decisions.c.id.in_(ids))).rowcount


def _template_recipients(conn: sa.Connection, cutoff: datetime) -> int:
    old = (
        sa.select(template_recipients.c.template_id, template_recipients.c.recipient)
        .where(template_recipients.c.last_seen < cutoff.timestamp())
        .limit(BATCH)
    )
    key = sa.tuple_(template_recipients.c.template_id, template_recipients.c.recipient)
    return conn.execute(sa.delete(template_recipients).where(key.in_(old))).rowcount


def _templates(conn: sa.Connection, cutoff: datetime) -> int:
    """Templates with no recipient left in the window, with their copies and band keys
    (recomputed from the stored copies: every band key comes from one of them)."""
    unused = ~sa.exists().where(template_recipients.c.template_id == templates.c.id)
    old = conn.execute(
        sa.select(templates.c.id, templates.c.platform, templates.c.account)
        .where(templates.c.first_seen < cutoff.timestamp(), unused)
        .limit(BATCH)
    ).all()
    if not old:
        return 0
    scopes = {row.id: template_scope(row.platform, row.account) for row in old}
    ids = list(scopes)
    bands = [
        {"key": key, "tid": tid}
        for tid, signature, vector in conn.execute(
            sa.select(
                template_signatures.c.template_id,
                template_signatures.c.signature,
                template_signatures.c.meaning,
            ).where(template_signatures.c.template_id.in_(ids))
        )
        for key in copy_band_keys(signature, vector, scopes[tid])
    ]
    if bands:
        conn.execute(
            sa.delete(lsh_bands).where(
                lsh_bands.c.key == sa.bindparam("key"),
                lsh_bands.c.template_id == sa.bindparam("tid"),
            ),
            bands,
        )
    conn.execute(sa.delete(template_signatures).where(template_signatures.c.template_id.in_(ids)))
    conn.execute(sa.delete(templates).where(templates.c.id.in_(ids)))
    return len(ids)


def _follow_times(conn: sa.Connection, cutoff: datetime) -> int:
    key = sa.tuple_(follows.c.platform, follows.c.account, follows.c.follower)
    old = (
        sa.select(follows.c.platform, follows.c.account, follows.c.follower)
        .where(follows.c.followed_at < cutoff)
        .limit(BATCH)
    )
    return conn.execute(sa.update(follows).where(key.in_(old)).values(followed_at=None)).rowcount


def _notifications(conn: sa.Connection, cutoff: datetime) -> int:
    ids = (
        sa.select(outbox.c.id)
        .where(outbox.c.status != "pending", outbox.c.created_at < cutoff)
        .limit(BATCH)
    )
    return conn.execute(sa.delete(outbox).where(outbox.c.id.in_(ids))).rowcount


def _profiles(conn: sa.Connection, cutoff: datetime) -> int:
    key = sa.tuple_(profiles.c.platform, profiles.c.user_id)
    old = (
        sa.select(profiles.c.platform, profiles.c.user_id)
        .where(profiles.c.updated_at < cutoff)
        .limit(BATCH)
    )
    return conn.execute(sa.delete(profiles).where(key.in_(old))).rowcount


def _sent_messages(conn: sa.Connection, cutoff: datetime) -> int:
    key = sa.tuple_(sent_messages.c.platform, sent_messages.c.account, sent_messages.c.message_id)
    old = (
        sa.select(sent_messages.c.platform, sent_messages.c.account, sent_messages.c.message_id)
        .where(sent_messages.c.seen_at < cutoff)
        .limit(BATCH)
    )
    return conn.execute(sa.delete(sent_messages).where(key.in_(old))).rowcount


# Order matters: recipients before templates (a template goes once its recipients have).
PRUNERS = {
    "decisions": _decisions,
    "template_recipients": _template_recipients,
    "templates": _templates,
    "follow_times": _follow_times,
    "notifications": _notifications,
    "sent_messages": _sent_messages,
}


async def prune(
    db: Database, cutoff: datetime, profiles_cutoff: datetime | None = None
) -> dict[str, int]:
    """One pass: up to MAX_BATCHES batches per kind of fact older than `cutoff` (profiles:
    `profiles_cutoff`, when given)."""
    pruned: dict[str, int] = {}
    pruners = dict(PRUNERS)
    if profiles_cutoff is not None:
        pruners["profiles"] = _profiles
    for name, pruner in pruners.items():
        total = 0
        at = profiles_cutoff if name == "profiles" else cutoff
        for _ in range(MAX_BATCHES):
            n = await db.write(pruner, at)
            total += n
            if n < BATCH:
                break
        pruned[name] = total
    return pruned
