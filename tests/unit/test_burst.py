"""burst: too many first contacts from one account in a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policies.burst import Burst, BurstConfig
from policies.model import OutboundMessage
from policies.schema import PolicyAction
from tests.unit.memory_signals import MemorySignals

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
POLICY = Burst(
    BurstConfig(action=PolicyAction.BLOCK, max_first_contacts=3, window=timedelta(hours=1))
)


def dm(*recipients: str, account: str = "acct") -> OutboundMessage:
    return OutboundMessage("x", account, recipients, "Hi there!")


async def send(signals: MemorySignals, *recipients: str, at: datetime = NOW) -> str | None:
    return await POLICY.evaluate(dm(*recipients), signals, at)


async def test_the_contact_after_the_limit_matches():
    signals = MemorySignals()
    for i in range(3):
        assert await send(signals, f"r{i}", at=NOW + timedelta(seconds=i)) is None
    reason = await send(signals, "r3", at=NOW + timedelta(seconds=3))
    assert reason == "more than 3 first contacts in 1h (this one included)"


async def test_a_group_dm_counts_each_new_recipient():
    signals = MemorySignals()
    assert await send(signals, "a", "b", "c") is None
    assert await send(signals, "d", "e", at=NOW + timedelta(seconds=1)) is not None


async def test_first_contacts_outside_the_window_do_not_count():
    signals = MemorySignals()
    for i in range(3):
        await send(signals, f"old{i}", at=NOW - timedelta(hours=2))
    assert await send(signals, "new", at=NOW) is None


async def test_replies_and_repeat_contacts_neither_count_nor_match():
    signals = MemorySignals()
    for i in range(3):
        await send(signals, f"r{i}", at=NOW + timedelta(seconds=i))
    signals.reached("x", "acct", ("r0",), NOW)  # r0's DM was forwarded
    later = NOW + timedelta(seconds=10)
    assert await send(signals, "r0", at=later) is None  # a second message
    signals.wrote("x", "fan", "acct")
    assert await send(signals, "fan", at=later) is None  # a reply
    # Neither counted: the next first contact is still the 4th one.
    assert await send(signals, "r3", at=later) is not None


async def test_a_blocked_recipient_tried_again_is_caught_again_but_counted_once():
    signals = MemorySignals()
    for i in range(4):
        await send(signals, f"r{i}", at=NOW + timedelta(seconds=i))  # r3 is blocked
    again = await signals.contact_history(
        "x", "acct", ("r3",), NOW + timedelta(seconds=9), NOW, cap=10
    )
    assert again.first_contacts == ("r3",)  # r3 never got a DM
    assert again.recent_first_contacts == 4  # still four distinct recipients
    assert await send(signals, "r3", at=NOW + timedelta(seconds=10)) is not None


async def test_accounts_are_counted_apart():
    signals = MemorySignals()
    for i in range(3):
        await send(signals, f"r{i}", at=NOW + timedelta(seconds=i))
    assert await POLICY.evaluate(dm("r9", account="other"), signals, NOW) is None


async def test_asking_twice_for_one_attempt_counts_it_once():
    # first_contact_pitch and burst both ask about the same DM, concurrently.
    signals = MemorySignals()
    for i in range(2):
        await send(signals, f"r{i}", at=NOW + timedelta(seconds=i))
    at = NOW + timedelta(seconds=5)
    first = await signals.contact_history("x", "acct", ("r2",), at, NOW, cap=10)
    second = await signals.contact_history("x", "acct", ("r2",), at, NOW, cap=10)
    assert first == second
    assert first.first_contacts == ("r2",)
    assert first.recent_first_contacts == 3
