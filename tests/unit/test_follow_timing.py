"""follow_timing: fresh followers who have not written first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policies.follow_timing import FollowTiming, FollowTimingConfig
from policies.model import OutboundMessage
from policies.schema import PolicyAction
from tests.unit.memory_signals import MemorySignals

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
POLICY = FollowTiming(FollowTimingConfig(action=PolicyAction.HOLD, window=timedelta(hours=1)))


def dm(*recipients: str, account: str = "acct", platform: str = "x") -> OutboundMessage:
    return OutboundMessage(platform, account, recipients, "Thanks for the follow!")


def followed(*ages: tuple[str, timedelta], account: str = "acct") -> MemorySignals:
    signals = MemorySignals()
    for recipient, age in ages:
        signals.follow("x", account, recipient, NOW - age)
    return signals


async def test_recent_follower_who_has_not_written_matches():
    signals = followed(("123", timedelta(seconds=42)))
    reason = await POLICY.evaluate(dm("123"), signals, NOW)
    assert reason == "recipient 123 followed 42s ago and has not written first"


async def test_ages_are_human_friendly():
    signals = followed(("a", timedelta(minutes=5, seconds=20)))
    assert await POLICY.evaluate(dm("a"), signals, NOW) == (
        "recipient a followed 5m ago and has not written first"
    )
    long_window = FollowTiming(
        FollowTimingConfig(action=PolicyAction.HOLD, window=timedelta(days=1))
    )
    signals = followed(("b", timedelta(hours=2, minutes=59)))
    assert await long_window.evaluate(dm("b"), signals, NOW) == (
        "recipient b followed 2h ago and has not written first"
    )


async def test_follower_outside_the_window_does_not_match():
    signals = followed(("old", timedelta(hours=1)), ("older", timedelta(days=2)))
    assert await POLICY.evaluate(dm("old"), signals, NOW) is None  # exactly `window` ago
    assert await POLICY.evaluate(dm("older"), signals, NOW) is None


async def test_just_inside_the_window_matches():
    signals = followed(("r", timedelta(minutes=59, seconds=59)))
    assert await POLICY.evaluate(dm("r"), signals, NOW) is not None


async def test_recipient_who_wrote_first_does_not_match():
    signals = followed(("friend", timedelta(seconds=10)))
    signals.wrote("x", "friend", "acct")
    assert await POLICY.evaluate(dm("friend"), signals, NOW) is None


async def test_writing_to_another_account_does_not_count():
    signals = followed(("r", timedelta(seconds=10)))
    signals.wrote("x", "r", "someone-else")
    assert await POLICY.evaluate(dm("r"), signals, NOW) is not None


async def test_unknown_follow_time_does_not_match_and_skips_the_written_check():
    signals = MemorySignals()
    assert await POLICY.evaluate(dm("stranger"), signals, NOW) is None
    assert signals.calls == ["followed_at"]


async def test_a_follow_of_another_account_or_platform_does_not_count():
    signals = followed(("r", timedelta(seconds=10)), account="other-acct")
    signals.follow("mastodon", "acct", "r", NOW - timedelta(seconds=10))
    assert await POLICY.evaluate(dm("r"), signals, NOW) is None


async def test_several_recipients_name_the_first_and_count_the_others():
    signals = followed(
        ("old", timedelta(hours=3)),
        ("a", timedelta(seconds=30)),
        ("b", timedelta(minutes=2)),
        ("c", timedelta(minutes=3)),
    )
    signals.wrote("x", "c", "acct")
    reason = await POLICY.evaluate(dm("old", "a", "b", "c"), signals, NOW)
    assert (
        reason == "recipient a followed 30s ago and has not written first (and 1 other recipient)"
    )
    signals.follow("x", "acct", "d", NOW - timedelta(seconds=5))
    reason = await POLICY.evaluate(dm("old", "a", "b", "c", "d"), signals, NOW)
    assert reason is not None
    assert reason.endswith("(and 2 other recipients)")


async def test_naive_follow_times_from_the_store_are_utc():
    signals = MemorySignals()
    naive = (NOW - timedelta(seconds=42)).replace(tzinfo=None)
    signals.follow("x", "acct", "r", naive)
    assert await POLICY.evaluate(dm("r"), signals, NOW) == (
        "recipient r followed 42s ago and has not written first"
    )


async def test_a_follow_stamped_in_the_future_counts_as_just_now():
    signals = MemorySignals()
    signals.follow("x", "acct", "r", NOW + timedelta(seconds=5))
    assert await POLICY.evaluate(dm("r"), signals, NOW) == (
        "recipient r followed 0s ago and has not written first"
    )
