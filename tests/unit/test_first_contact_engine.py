"""first_contact_pitch and burst in the engine, and `contact_history` in the real store
(SQLite, and PostgreSQL where one is reachable)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from policies.config import PolicyFile
from policies.engine import Engine
from policies.model import Action, ContactHistory, OutboundMessage
from proxy.facts import InboundMessage
from proxy.store import Store
from tests.unit.memory_signals import MemorySignals

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PITCH = "Join us at https://rocketly.example/launch"


def engine(policies: dict[str, Any]) -> Engine:
    return Engine(PolicyFile.model_validate({"policies": policies}))


BOTH = {
    "first_contact_pitch": {"action": "hold"},
    "burst": {"action": "block", "max_first_contacts": 2, "window": "1h"},
}


async def test_both_policies_judge_one_dm_and_record_it_once():
    eng = engine(BOTH)
    signals = MemorySignals()
    decisions = []
    for i, text in enumerate(["Hi!", "Hello!", PITCH]):
        message = OutboundMessage("x", "acct", (f"r{i}",), text)
        decisions.append(await eng.evaluate(message, signals, NOW + timedelta(seconds=i)))
    assert [d.action for d in decisions] == [Action.ALLOW, Action.ALLOW, Action.BLOCK]
    assert [m.policy for m in decisions[2].matches] == ["first_contact_pitch", "burst"]
    assert decisions[2].matches[1].reason == (
        "burst: more than 2 first contacts in 1h (this one included)"
    )
    assert signals.calls.count("contact_history") == 6  # both policies ask, per DM
    assert len(signals.contacts) == 3  # each contact recorded once


async def test_pitch_holds_and_a_reply_passes():
    eng = engine(BOTH)
    signals = MemorySignals()
    held = await eng.evaluate(OutboundMessage("x", "acct", ("r1",), PITCH), signals, NOW)
    assert held.action is Action.HOLD
    signals.wrote("x", "fan", "acct")
    reply = await eng.evaluate(OutboundMessage("x", "acct", ("fan",), PITCH), signals, NOW)
    assert reply.action is Action.ALLOW and reply.matches == ()


def test_the_proxy_reports_forwarded_dms_only_while_a_contact_policy_is_on():
    assert engine(BOTH).tracks_contacts is True
    assert engine({"burst": {"action": "hold"}}).tracks_contacts is True
    assert engine({"first_contact_pitch": {"action": "off"}}).tracks_contacts is False
    assert engine({"template_reuse": {"action": "hold"}}).tracks_contacts is False


# --- the store ---


def test_store_records_contacts_and_counts_first_contacts(store_url: str) -> None:
    async def scenario() -> list[ContactHistory]:
        store = await Store.open(store_url)
        s = store.signals
        since = NOW - timedelta(hours=1)
        at = [NOW + timedelta(seconds=i) for i in range(5)]
        try:
            await s.record_facts("x", [InboundMessage("acct", "fan")], NOW - timedelta(days=1))
            results = [
                await s.contact_history("x", "acct", ("a", "b", "a"), at[0], since, cap=10),
                # the same attempt asked again (a second policy): same answer
                await s.contact_history("x", "acct", ("a", "b"), at[0], since, cap=10),
            ]
            await s.contacts_reached("x", "acct", ("a",), at[0])  # a's DM was forwarded
            await s.contacts_reached("x", "acct", ("a",), at[1])  # the first time stays
            results += [
                # a was reached, fan wrote first, b was only attempted, c is new
                await s.contact_history("x", "acct", ("a", "fan", "b", "c"), at[1], since, 10),
                await s.contact_history("x", "acct", ("d",), at[2], since, cap=2),  # capped
                # only e is in a later window
                await s.contact_history(
                    "x",
                    "acct",
                    ("e",),
                    at[3] + timedelta(hours=2),
                    at[3] + timedelta(hours=1),
                    cap=10,
                ),
                # another account; and nothing to record
                await s.contact_history("x", "other", ("a",), at[4], since, cap=0),
                await s.contact_history("x", "acct", (), at[4], since, cap=10),
            ]
            await s.contacts_reached("x", "acct", (), at[4])  # nothing to mark
            return results
        finally:
            await store.close()

    results = asyncio.run(scenario())
    assert results[0] == ContactHistory(("a", "b"), 2)
    assert results[1] == results[0]
    assert results[2] == ContactHistory(("b", "c"), 3)  # the reply to fan is not counted
    assert results[3] == ContactHistory(("d",), 2)
    assert results[4] == ContactHistory(("e",), 1)
    assert results[5] == ContactHistory(("a",), 0)  # cap 0: not counted
    assert results[6] == ContactHistory((), 5)


def test_concurrent_questions_about_one_attempt_agree_across_replicas(store_url: str) -> None:
    async def scenario() -> list[ContactHistory]:
        stores = [await Store.open(store_url) for _ in range(2)]
        try:
            return await asyncio.gather(
                *(
                    stores[i % 2].signals.contact_history(
                        "x", "acct", ("r1", "r2"), NOW, NOW - timedelta(hours=1), cap=10
                    )
                    for i in range(6)
                )
            )
        finally:
            for store in stores:
                await store.close()

    results = asyncio.run(scenario())
    assert all(r == ContactHistory(("r1", "r2"), 2) for r in results), results
