"""first_contact_pitch: links and calls to action in a first message to someone who never
wrote — and everything it must let through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policies.first_contact_pitch import (
    DEFAULT_PHRASES,
    FirstContactPitch,
    FirstContactPitchConfig,
    PitchDetector,
    PitchMatch,
    readable,
)
from policies.model import OutboundMessage
from policies.schema import PolicyAction
from tests.unit.memory_signals import MemorySignals

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PITCH = "Hey! Join us at https://rocketly.example/launch, founders love it"
DETECTOR = PitchDetector(DEFAULT_PHRASES)


def _fullwidth(text: str) -> str:
    """The fullwidth forms of ASCII letters and punctuation, which NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def policy(**overrides: object) -> FirstContactPitch:
    return FirstContactPitch(FirstContactPitchConfig(action=PolicyAction.HOLD, **overrides))


def dm(text: str, *recipients: str, account: str = "acct") -> OutboundMessage:
    return OutboundMessage("x", account, recipients or ("123",), text)


# --- what it catches ---


async def test_a_first_message_with_a_link_and_a_call_to_action_names_both():
    reason = await policy().evaluate(dm(PITCH), MemorySignals(), NOW)
    assert reason == (
        'first message to 123 carries a link (rocketly.example) and a call to action ("join us")'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Loved your post, more at rocketly.io", "a link (rocketly.io)"),
        ("Book a call with me this week?", 'a call to action ("book a call")'),
        ("Check out my new course!", 'a call to action ("check out")'),
        ("Use my code ANNA10 for 10% off", 'a call to action ("use my code")'),
        ("Let's connect with me on LinkedIn, happy to chat", '("connect with me on")'),
        ("Follow me on Instagram for daily tips", '("follow me on")'),
        ("Everything you need is at the link in bio", '("link in bio")'),
        ("Want to schedule a demo next week?", '("schedule a demo")'),
    ],
)
async def test_links_or_calls_to_action_alone_are_enough_by_default(text: str, expected: str):
    reason = await policy().evaluate(dm(text), MemorySignals(), NOW)
    assert reason is not None
    assert expected in reason


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("see hxxps://rocketly.example/x", "rocketly.example"),
        ("see h**p://rocketly.example/x", "rocketly.example"),
        ("see rocketly[.]com", "rocketly.com"),
        ("see rocketly(dot)com", "rocketly.com"),
        ("see rocketly dot com", "rocketly.com"),
        ("see rocketly . com", "rocketly.com"),
        ("see www.rocketly.shop/deal", "rocketly.shop"),
        ("see HTTPS://WWW.Rocketly.Example/X", "rocketly.example"),
        (_fullwidth("see rocketly.com"), "rocketly.com"),  # NFKC
        ("see rocket\u200bly.com", "rocketly.com"),  # zero-width space
    ],
)
def test_obfuscated_links_are_read(text: str, domain: str):
    assert DETECTOR.inspect(text).domains == (domain,)


@pytest.mark.parametrize(
    "text",
    [
        "CHECK OUT my page",
        _fullwidth("Check out") + " my page",
        "che\u200bck o\u200cut my page",  # zero-width characters
        "\u0441heck \u043eut my page",  # Cyrillic c and o inside Latin words
        "Check-out my page",
        "check&nbsp;out my page",
    ],
)
def test_calls_to_action_survive_case_and_unicode_tricks(text: str):
    assert DETECTOR.inspect(text).phrases == ("check out",)


def test_readable_spells_obfuscated_links_plainly():
    assert readable("Visit HXXP://rocketly[.]com") == "visit http://rocketly.com"


async def test_several_first_contacts_name_the_first_and_count_the_others():
    reason = await policy().evaluate(dm(PITCH, "a", "b", "c"), MemorySignals(), NOW)
    assert reason is not None
    assert reason.startswith("first message to a (and 2 other recipients) carries")


async def test_a_recipient_who_wrote_does_not_stop_a_pitch_to_the_others():
    signals = MemorySignals()
    signals.wrote("x", "a", "acct")
    reason = await policy().evaluate(dm(PITCH, "a", "b"), signals, NOW)
    assert reason is not None
    assert reason.startswith("first message to b carries")


# --- what it lets through ---


@pytest.mark.parametrize(
    "text",
    [
        "Hi Anna, loved your talk yesterday. How did you get into robotics?",
        "Congrats on the new job!",
        "Hey, are we still on for lunch on Friday?",
        "Sorry da thangam.it's my mistake.",  # sentence ends are not domains
        "ok. in 5 mins",
        "Send it to anna@rocketly.example please",  # an e-mail address is not a link
        "Привет! Как прошла конференция? Было интересно?",
        "Hola, ¿qué tal el viaje? Me alegro de verte pronto.",
        "Danke für das Gespräch gestern, bis bald!",
    ],
)
async def test_personal_first_messages_without_links_pass(text: str):
    assert await policy().evaluate(dm(text), MemorySignals(), NOW) is None


async def test_a_reply_to_someone_who_wrote_first_passes():
    signals = MemorySignals()
    signals.wrote("x", "123", "acct")
    assert await policy().evaluate(dm(PITCH), signals, NOW) is None


async def test_a_second_message_passes():
    signals = MemorySignals()
    pitch = policy()
    assert await pitch.evaluate(dm("Hi! Loved your talk."), signals, NOW) is None
    signals.reached("x", "acct", ("123",), NOW)  # the proxy forwarded it
    later = NOW + timedelta(minutes=5)
    assert await pitch.evaluate(dm(PITCH), signals, later) is None


async def test_a_pitch_that_was_held_or_blocked_leaves_the_next_try_a_first_message():
    # The tool believes a held DM was sent and follows up ("just bumping this"), or
    # retries a blocked one with other words: the recipient has still received nothing.
    signals = MemorySignals()
    pitch = policy()
    assert await pitch.evaluate(dm(PITCH), signals, NOW) is not None
    bump = "Just bumping this - check out rocketly.example when you can"
    assert await pitch.evaluate(dm(bump), signals, NOW + timedelta(days=1)) is not None


async def test_contacts_are_per_account_and_platform():
    signals = MemorySignals()
    pitch = policy()
    await pitch.evaluate(dm("Hi!"), signals, NOW)
    signals.reached("x", "acct", ("123",), NOW)
    later = NOW + timedelta(seconds=1)
    assert await pitch.evaluate(dm(PITCH), signals, later) is None
    assert await pitch.evaluate(dm(PITCH, account="other"), signals, later) is not None
    mastodon = OutboundMessage("mastodon", "acct", ("123",), PITCH)
    assert await pitch.evaluate(mastodon, signals, later) is not None


async def test_links_to_allowed_domains_and_their_subdomains_pass():
    pitch = policy(allowed_domains=["rocketly.example"], match="link")
    assert await pitch.evaluate(dm(PITCH), MemorySignals(), NOW) is None
    text = "notes at https://docs.rocketly.example/a and www.rocketly.example"
    assert await pitch.evaluate(dm(text), MemorySignals(), NOW) is None
    other = "mirror at notrocketly.example"  # a suffix, not a subdomain
    assert await pitch.evaluate(dm(other), MemorySignals(), NOW) is not None


async def test_an_allowed_link_still_counts_its_call_to_action():
    pitch = policy(allowed_domains=["rocketly.example"])
    reason = await pitch.evaluate(dm(PITCH), MemorySignals(), NOW)
    assert reason == 'first message to 123 carries a call to action ("join us")'


# --- knobs ---


@pytest.mark.parametrize(
    ("match", "link_only", "cta_only", "both"),
    [
        (PitchMatch.LINK_OR_CTA, True, True, True),
        (PitchMatch.LINK_AND_CTA, False, False, True),
        (PitchMatch.LINK, True, False, True),
        (PitchMatch.CTA, False, True, True),
    ],
)
async def test_match_rule(match: PitchMatch, link_only: bool, cta_only: bool, both: bool):
    pitch = policy(match=match)
    texts = {"see rocketly.io": link_only, "book a call?": cta_only, PITCH: both}
    for text, expected in texts.items():
        assert (await pitch.evaluate(dm(text), MemorySignals(), NOW) is not None) is expected


async def test_extra_phrases_add_and_phrases_replace():
    german = policy(extra_phrases=["schau dir"])
    reason = await german.evaluate(dm("Schau dir unser Angebot an"), MemorySignals(), NOW)
    assert reason == 'first message to 123 carries a call to action ("schau dir")'
    assert await german.evaluate(dm("Book a call?", "9"), MemorySignals(), NOW) is not None
    only = policy(phrases=["let's talk"])
    assert await only.evaluate(dm("Book a call?"), MemorySignals(), NOW) is None
    assert await only.evaluate(dm("Let's talk!"), MemorySignals(), NOW) is not None


def test_phrases_match_whole_words_only():
    assert DETECTOR.inspect("the design update is out").phrases == ()
    assert DETECTOR.inspect("please sign-up today").phrases == ("sign up",)


async def test_every_attempt_is_recorded_even_without_a_pitch():
    signals = MemorySignals()
    await policy().evaluate(dm("Hi!"), signals, NOW)
    assert signals.calls == ["contact_history"]
    assert ("x", "acct", "123") in signals.contacts
