"""Retention prunes what no policy window can reach any more, and keeps the rest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from policies.template_reuse import fingerprint, template_scope
from proxy.facts import Followed
from proxy.store import Store
from proxy.store.decisions import DecisionRecord
from proxy.store.retention import prune
from proxy.store.tables import decisions, follows, lsh_bands, template_recipients, templates


def _count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.Select:
    return sa.select(sa.func.count()).select_from(table).where(*where)


def test_old_facts_are_pruned_and_recent_ones_kept(store_url: str) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=3)

    async def scenario() -> dict[str, int]:
        store = await Store.open(store_url)
        try:
            for when, account in ((old, "old"), (now, "new")):
                fp = fingerprint(
                    "join my amazing program today via the link below", template_scope("x", account)
                )
                assert fp is not None
                for r in ("a", "b"):
                    await store.signals.template_recipients(
                        "x", account, fp, (r,), when, when, 0.5, 10
                    )
                await store.decisions.record(
                    DecisionRecord(
                        f"d-{account}", when, "x", "x", account, ["a"], "allow", "allow", [], "v"
                    )
                )
                await store.signals.record_facts(
                    "x", [Followed(account, "f", when)], when, source="api"
                )
            pruned = await prune(store.db, now - timedelta(days=1))

            def counts(conn: sa.Connection) -> dict[str, int]:
                return {
                    "templates": conn.execute(_count(templates)).scalar_one(),
                    "bands": conn.execute(_count(lsh_bands)).scalar_one(),
                    "recipients": conn.execute(_count(template_recipients)).scalar_one(),
                    "decisions": conn.execute(_count(decisions)).scalar_one(),
                    "follows": conn.execute(_count(follows)).scalar_one(),
                    "dated_follows": conn.execute(
                        _count(follows, follows.c.followed_at.is_not(None))
                    ).scalar_one(),
                }

            result = await store.db.read(counts)
            result["pruned_templates"] = pruned["templates"]
            again = await prune(store.db, now - timedelta(days=1))
            result["second_pass"] = sum(again.values())
            return result
        finally:
            await store.close()

    got = asyncio.run(scenario())
    assert got["templates"] == 1  # the recent one
    assert got["pruned_templates"] == 1
    assert got["bands"] == len(fingerprint("x y z a b c d e f", "s").band_keys)  # the recent
    assert got["recipients"] == 2
    assert got["decisions"] == 1
    assert got["follows"] == 2  # both still known followers...
    assert got["dated_follows"] == 1  # ...but the old follow lost its time
    assert got["second_pass"] == 0  # nothing left to do: idempotent


def test_a_pruned_campaign_takes_its_loose_and_meaning_keys_along(store_url: str) -> None:
    """Campaign copies index loose MinHash keys and embedding keys beside the MinHash band
    keys; pruning recomputes all of them from the stored copies."""
    now = datetime.now(UTC)
    old = now - timedelta(days=3)
    text = (
        "Saw your talk on streaming joins, great stuff. We run free pipeline audits for data "
        "teams and usually find 30% of wasted warehouse spend: https://audit.example.com/?r={}"
    )

    async def scenario() -> tuple[int, int]:
        store = await Store.open(store_url)
        try:
            fp = fingerprint(text.format(1), template_scope("x", "acct"))
            assert fp is not None and fp.loose_keys and fp.meaning_keys
            await store.signals.template_recipients("x", "acct", fp, ("a",), old, old, 0.45, 10)
            indexed = await store.db.read(lambda c: c.execute(_count(lsh_bands)).scalar_one())
            await prune(store.db, now - timedelta(days=1))
            left = await store.db.read(lambda c: c.execute(_count(lsh_bands)).scalar_one())
            return indexed, left
        finally:
            await store.close()

    indexed, left = asyncio.run(scenario())
    assert indexed > 21 and left == 0
