"""The template index's hot path: one DM attempt recorded under its campaign
(`StoreSignals.template_campaign`), in as few statements as each database allows.

Every DM decision runs this, so its statements are plain SQL strings, run on the sqlite3
connection itself (`database.sqlite_runner`) or on a plain asyncpg connection
(`Database.native`): SQLAlchemy's compiled statements cost more per call than SQLite takes
to run them (expanding IN lists and 50-row executemany: ~1.3 ms of Python per DM,
measured), its async layer ~0.5 ms of CPU per PostgreSQL transaction, and the strings are
fixed, so the drivers' statement caches (sqlite3's, asyncpg's prepared statements) always
hit. Errors reach `Database`, which translates them.

SQLite: one transaction (BEGIN IMMEDIATE) of in-process statements: read the candidates,
compare, then the writes, each one statement (multi-row VALUES, never executemany).

PostgreSQL: two round trips besides BEGIN and COMMIT. 1. one function call (migration
0010): the account's advisory lock (and the relaxed commit), then the candidates, in a
snapshot taken after the lock; 2. after the comparison (pure Python, `closest_campaign`),
one statement (data-modifying CTEs) that starts the template if new, keeps the copy,
indexes its band keys, claims its loose and meaning keys, records the recipients and counts
the campaign's recipients in the window. The lock cannot share a plain statement with the
candidates: a statement's snapshot is taken before it waits for the lock; each statement
of a PL/pgSQL function takes its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
import xxhash

from policies.model import CampaignMatch, MatchThresholds, StoredCopy, TemplateFingerprint
from policies.template_reuse import campaign_match, closest_campaign
from proxy.store.database import sqlite_runner

# Enough earlier copies of a template to compare a new message against; beyond this the
# template is well described and rows would only grow.
MAX_SIGNATURES_PER_TEMPLATE = 16
# Templates compared per message, those sharing the most bands first. 12, not 8: an
# account's meaning keys are few (policies.meaning: 64 values per band) and claimed by its
# latest linked DMs, so unrelated pitches often share as many keys with a copy as its own
# campaign does (1-3), and with 8 the campaign was cut from the candidates on some
# interleavings: AI-style copies held over bench/evasion.py seeds 1, 4, 7, 8: 54, 51, 49,
# 53 of 56 with 8; 54, 54, 54, 55 with 12 (16: the same), no false holds either way.
MAX_CANDIDATE_TEMPLATES = 12


def scope_lock_key(platform: str, account: str) -> int:
    """A signed 64-bit advisory lock key for one sending account's template index."""
    digest = xxhash.xxh64_intdigest(f"dmgate-templates:{platform}:{account}".encode())
    return digest - (1 << 64) if digest >= (1 << 63) else digest


def _unique(values: tuple[Any, ...]) -> list[Any]:
    # One row per key or recipient: PostgreSQL's ON CONFLICT DO UPDATE may not touch a row
    # twice in one statement (and equal keys would say the same thing twice anyway).
    return list(dict.fromkeys(values))


def _copies(rows: Any) -> list[StoredCopy]:
    # Columns in StoredCopy's order; copies stored before migration 0007 have no features.
    return [StoredCopy(*row[:5], banded=bool(row[5])) for row in rows]


# --- SQLite --------------------------------------------------------------------------------


def _marks(n: int, width: int = 1) -> str:
    row = "(" + ", ".join("?" * width) + ")" if width > 1 else "?"
    return ", ".join([row] * n)


@lru_cache(maxsize=256)
def _sqlite_candidates(keys: int, strict: int) -> str:
    # Templates named by any of the DM's band keys, most hits first, the oldest among
    # equals (the same history always picks the same one), with every stored copy of each;
    # `banded`: a MinHash band key (not only a loose or meaning key) named it (see
    # StoredCopy.banded).
    return (
        "SELECT s.template_id, s.text_key, s.signature, coalesce(s.features, x''),"
        " coalesce(s.meaning, x''), h.banded"
        " FROM (SELECT template_id, count(*) AS hits,"
        f" max(key IN ({_marks(strict)})) AS banded"
        f" FROM lsh_bands WHERE key IN ({_marks(keys)})"
        " GROUP BY template_id ORDER BY hits DESC, template_id"
        f" LIMIT {MAX_CANDIDATE_TEMPLATES}) AS h"
        " JOIN template_signatures AS s ON s.template_id = h.template_id"
        " ORDER BY s.template_id"
    )


_SQLITE_NEW_TEMPLATE = (
    "INSERT INTO templates (platform, account, first_seen) VALUES (?, ?, ?) RETURNING id"
)
# Keep up to MAX_SIGNATURES_PER_TEMPLATE distinct copies to compare against.
_SQLITE_KEEP = (
    "INSERT INTO template_signatures (template_id, text_key, signature, features, meaning)"
    " SELECT ?1, ?2, ?3, ?4, ?5"
    " WHERE (SELECT count(*) FROM template_signatures WHERE template_id = ?1)"
    f" < {MAX_SIGNATURES_PER_TEMPLATE}"
    " ON CONFLICT DO NOTHING"
)


@lru_cache(maxsize=64)
def _sqlite_index(n: int) -> str:
    # MinHash band keys that already name a template keep it.
    return f"INSERT INTO lsh_bands (key, template_id) VALUES {_marks(n, 2)} ON CONFLICT DO NOTHING"


@lru_cache(maxsize=64)
def _sqlite_claim(n: int) -> str:
    # Loose and meaning keys: the latest template takes them (see tables.lsh_bands). A key
    # that already names this template is left as it is: no page written for nothing.
    return (
        f"INSERT INTO lsh_bands (key, template_id) VALUES {_marks(n, 2)}"
        " ON CONFLICT (key) DO UPDATE SET template_id = excluded.template_id"
        " WHERE lsh_bands.template_id <> excluded.template_id"
    )


@lru_cache(maxsize=64)
def _sqlite_seen(n: int) -> str:
    return (
        "INSERT INTO template_recipients (template_id, recipient, last_seen)"
        f" VALUES {_marks(n, 3)}"
        " ON CONFLICT (template_id, recipient) DO UPDATE SET last_seen = excluded.last_seen"
    )


@lru_cache(maxsize=64)
def _sqlite_count(n: int) -> str:
    # Distinct recipients seen since ? of every matched template (one campaign's
    # fragments), up to the cap: only "at least N" matters.
    return (
        "SELECT count(*) FROM (SELECT DISTINCT recipient FROM template_recipients"
        f" WHERE template_id IN ({_marks(n)}) AND last_seen >= ? LIMIT ?)"
    )


def copies_by_template(conn: sa.Connection, size: int) -> Iterator[list[Any]]:
    """Every kept copy (template_id, signature, platform, account) in batches of about
    `size`, each ending with all of its last template's copies: for migrations that
    recompute a copy's keys from its signature (0008, 0013)."""
    copies = (
        "SELECT s.template_id, s.signature, t.platform, t.account"
        " FROM template_signatures s JOIN templates t ON t.id = s.template_id "
    )
    batch = sa.text(copies + "WHERE s.template_id > :after ORDER BY s.template_id LIMIT :n")
    of_template = sa.text(copies + "WHERE s.template_id = :tid")
    after = -1
    while rows := conn.execute(batch, {"after": after, "n": size}).all():
        # A batch ends at a template boundary only by chance: finish the last template.
        last = rows[-1].template_id
        yield [*rows, *conn.execute(of_template, {"tid": last}).all()]
        after = last


def _pairs(keys: list[int], template_id: int) -> tuple[int, ...]:
    # One flat tuple of parameters for a multi-row VALUES.
    return tuple(v for k in keys for v in (k, template_id))


def record_copy(
    conn: sa.Connection,
    platform: str,
    account: str,
    fp: TemplateFingerprint,
    recipients: tuple[str, ...],
    now: float,
    since: float,
    thresholds: MatchThresholds,
    cap: int,
) -> CampaignMatch:
    """Record this attempt under its campaign (a new template when none matches) and count
    the campaign's distinct recipients since `since` (epoch seconds), up to `cap`. SQLite;
    PostgreSQL's is `record_copy_pg`, on a plain asyncpg connection."""
    run = sqlite_runner(conn)
    # 1. One indexed lookup: templates sharing a band key with this message (each key names
    # one template, so at most len(keys) of them whatever the history).
    keys = [*fp.band_keys, *fp.loose_keys, *fp.meaning_keys]
    strict = list(fp.resemblance_keys)
    rows = _copies(run(_sqlite_candidates(len(keys), len(strict)), (*strict, *keys)))
    # 2. The policy's own comparison (pure), against every stored copy of each.
    best = closest_campaign(fp, rows, thresholds)
    if best is None:
        template_id = run(_SQLITE_NEW_TEMPLATE, (platform, account, now)).fetchone()[0]
    else:
        template_id = best.campaign
    # 3. Keep this copy if it is a new text and the template keeps fewer than
    # MAX_SIGNATURES_PER_TEMPLATE: every MinHash band key then comes from a stored
    # signature, so retention can recompute a template's keys. Meaning keys are claimed on
    # every attempt, so an active campaign keeps them.
    claims = _unique(fp.meaning_keys)
    if not (best and best.known_text):
        copy = (template_id, fp.text_key, fp.signature, fp.features or None, fp.meaning or None)
        if run(_SQLITE_KEEP, copy).rowcount:
            bands = _unique(fp.band_keys)
            if bands:  # a long text has loose keys only
                run(_sqlite_index(len(bands)), _pairs(bands, template_id))
            claims = _unique((*fp.loose_keys, *fp.meaning_keys))
    if claims:
        run(_sqlite_claim(len(claims)), _pairs(claims, template_id))
    unique = _unique(recipients)
    run(_sqlite_seen(len(unique)), tuple(v for r in unique for v in (template_id, r, now)))
    # 4. Distinct recipients in the window of every campaign it matched, capped.
    tids = list(best.matched) if best is not None else [template_id]
    count = run(_sqlite_count(len(tids)), (*tids, since, cap)).fetchone()[0]
    return campaign_match(best, template_id, count, thresholds)


# --- PostgreSQL ----------------------------------------------------------------------------

# One round trip (migration 0010's function): the account's advisory lock, then the
# candidates, read in a snapshot taken after the lock, so a copy judged a moment ago on
# another replica is seen. Replicas judging copies of one account's text at the same instant
# must not each start a template of their own: one account's template index is changed by
# one transaction at a time. The function also relaxes this transaction's commit: the index
# is a heuristic count, and not waiting for the WAL flush halves the DM's latency (holds
# stay fully durable).
_PG_CANDIDATES = (
    "SELECT template_id, text_key, signature, features, meaning, banded"
    " FROM dmgate_template_candidates($1, $2::bigint[], $3::bigint[], $4)"
)
# Everything the attempt writes, and the count, in one statement. Sub-statements share one
# snapshot and none sees another's rows, so: the template is `t` (the matched one, or the
# one `new` starts), the band keys follow `kept`, and the count adds this attempt's
# recipients (recorded at `now`, inside the window) to those already in the window.
# $1 matched template or NULL, $2 platform, $3 account, $4 now, $5 text key, $6 signature,
# $7 features, $8 meaning, $9 keep the copy (not a known text), $10 band keys, $11 loose
# keys, $12 meaning keys, $13 recipients, $14 matched templates, $15 since, $16 cap.
_PG_RECORD = f"""
WITH new AS (
    INSERT INTO templates (platform, account, first_seen)
    SELECT $2::text, $3::text, $4::float8 WHERE $1::bigint IS NULL
    RETURNING id
), t AS (
    SELECT coalesce($1::bigint, (SELECT id FROM new)) AS id
), kept AS (
    INSERT INTO template_signatures (template_id, text_key, signature, features, meaning)
    SELECT t.id, $5::bigint, $6::bytea, $7::bytea, $8::bytea FROM t
    WHERE $9::boolean AND (SELECT count(*) FROM template_signatures AS s
                           WHERE s.template_id = t.id) < {MAX_SIGNATURES_PER_TEMPLATE}
    ON CONFLICT DO NOTHING
    RETURNING template_id
), bands AS (
    INSERT INTO lsh_bands (key, template_id)
    SELECT k, kept.template_id FROM kept, unnest($10::bigint[]) AS k
    ON CONFLICT DO NOTHING
), claims AS (
    INSERT INTO lsh_bands (key, template_id)
    SELECT DISTINCT k, t.id FROM t, unnest(
        CASE WHEN EXISTS (SELECT 1 FROM kept) THEN $11::bigint[] ELSE '{{}}'::bigint[] END
        || $12::bigint[]) AS k
    ON CONFLICT (key) DO UPDATE SET template_id = excluded.template_id
    WHERE lsh_bands.template_id <> excluded.template_id
), seen AS (
    INSERT INTO template_recipients (template_id, recipient, last_seen)
    SELECT t.id, r, $4::float8 FROM t, unnest($13::text[]) AS r
    ON CONFLICT (template_id, recipient) DO UPDATE SET last_seen = excluded.last_seen
)
SELECT (SELECT id FROM t), (SELECT count(*) FROM (
    SELECT recipient FROM template_recipients
    WHERE template_id = ANY($14::bigint[] || (SELECT id FROM t)) AND last_seen >= $15::float8
    UNION SELECT unnest($13::text[])
    LIMIT $16::bigint) AS c)
"""


async def record_copy_pg(
    conn: Any,
    platform: str,
    account: str,
    fp: TemplateFingerprint,
    recipients: tuple[str, ...],
    now: float,
    since: float,
    thresholds: MatchThresholds,
    cap: int,
) -> CampaignMatch:
    """`record_copy` on PostgreSQL, on an asyncpg connection (`Database.native`)."""
    keys = [*fp.band_keys, *fp.loose_keys, *fp.meaning_keys]
    lock = scope_lock_key(platform, account)
    async with conn.transaction():
        found = await conn.fetch(
            _PG_CANDIDATES, lock, keys, list(fp.resemblance_keys), MAX_CANDIDATE_TEMPLATES
        )
        best = closest_campaign(fp, _copies(found), thresholds)
        template_id, count = await conn.fetchrow(
            _PG_RECORD,
            best.campaign if best is not None else None,
            platform,
            account,
            now,
            fp.text_key,
            fp.signature,
            fp.features or None,
            fp.meaning or None,
            not (best and best.known_text),
            _unique(fp.band_keys),
            _unique(fp.loose_keys),
            _unique(fp.meaning_keys),
            _unique(recipients),
            list(best.matched) if best is not None else [],
            since,
            cap,
        )
    return campaign_match(best, template_id, count, thresholds)
