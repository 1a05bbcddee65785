"""template_reuse: normalisation, fingerprints, and the policy over in-memory signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policies.model import CampaignMatch, MatchThresholds, OutboundMessage, TemplateFingerprint
from policies.schema import PolicyAction
from policies.template_reuse import (
    BANDS,
    LOOSE_BANDS,
    NUM_PERM,
    TemplateReuse,
    TemplateReuseConfig,
    fingerprint,
    normalise,
    similarity,
)
from tests.unit.memory_signals import MemorySignals

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def policy(**overrides: object) -> TemplateReuse:
    return TemplateReuse(TemplateReuseConfig(action=PolicyAction.HOLD, **overrides))


# --- normalise ---


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        # the recipient's names, in full or by first word, whatever their case
        ("Hi Anna, great to connect!", ("Anna Smith",), "hi <name> great to connect"),
        ("Hello ANNA SMITH!", ("Anna Smith",), "hello <name>"),
        ("hey anna_b :)", ("@anna_b",), "hey <name>"),
        ("Hi Zoë", ("Zoe\u0308",), "hi <name>"),
        # ... but only whole words, and never one-letter names
        ("Annabel and Anna", ("Anna",), "annabel and <name>"),
        ("a note for A", ("A",), "a note for a"),
        # links, addresses, handles, numbers
        ("see https://x.io/a?b=1 or www.shop.com/p", (), "see <url> or <url>"),
        ("visit bit.ly/xyz or Shop.co.uk.", (), "visit <url> or <url>"),
        ("mail a.b+x@example.com now", (), "mail <email> now"),
        ("ping @anna_b or @anna@mastodon.social", (), "ping <user> or <user>"),
        ("WIN £1,000.50 or 50% off, call 09061701461", (), "win <num> or <num> off call <num>"),
        # invisible characters, compatibility forms, entities, emoji, case
        ("fr\u200bee st\u00aduff\ufeff now\u2060", (), "free stuff now"),
        ("\u3164free", (), "free"),
        (
            "\uff26\uff32\uff25\uff25 \ufb01ne \U0001d41f\U0001d42b\U0001d41e\U0001d41e",
            (),
            "free fine free",
        ),  # fullwidth, ligature, math bold
        ("caf&eacute; &amp; tea", (), "café tea"),
        ("great 🎉🎉 news ❤️👍🏽!!!", (), "great news"),
        ("STRASSE straße", (), "strasse strasse"),
        ("z\u0338a\u0336l\u0321go", (), "zalgo"),
        # placeholders cannot be forged with the private-use characters used inside
        ("x\ue003y", (), "xy"),
        ("  lots \n of\t space  ", (), "lots of space"),
    ],
)
def test_normalise(text: str, names: tuple[str, ...], expected: str):
    assert normalise(text, names) == expected


def test_copies_for_different_recipients_normalise_to_the_same_text():
    first = normalise("Hi Anna! 🎉 Use code SAVE20 at https://shop.io/?r=anna", ("Anna Lee",))
    second = normalise("hi ben!! use code SAVE20 at http://shop.io/?r=ben77", ("Ben",))
    assert first == second == "hi <name> use code save<num> at <url>"


# --- fingerprint and similarity ---

PITCH = (
    "Hi {name}, thanks for connecting! I help SaaS founders grow revenue with our new "
    "analytics tool. Check it out at {url} and reply if you want a free demo."
)


def test_short_texts_have_no_fingerprint():
    assert fingerprint("Thanks for the follow!", "x:a") is None  # 4 tokens
    assert fingerprint("Sorry, I'll call later", "x:a") is None  # 5 tokens
    assert fingerprint("one two three four five six", "x:a") is not None
    assert fingerprint("one two three four five six", "x:a", min_tokens=7) is None


def test_fingerprint_shape():
    text = PITCH.format(name="Anna", url="https://x.io/a")
    fp = fingerprint(text, "x:acct", ("Anna",))
    assert fp is not None
    assert len(fp.signature) == NUM_PERM * 4
    # A long text is indexed by its loose keys alone, a short one by its MinHash band keys.
    assert fp.band_keys == () and len(fp.loose_keys) == LOOSE_BANDS
    assert fp.resemblance_keys == fp.loose_keys
    assert all(0 <= key < 2**63 for key in (*fp.loose_keys, fp.text_key))
    assert fp.tokens == len(normalise(text, ("Anna",)).split()) == 29
    short = fingerprint("thanks for the follow, loved your post", "x:acct")
    assert short is not None and len(short.band_keys) == BANDS and short.loose_keys == ()
    assert short.resemblance_keys == short.band_keys


def test_fingerprint_is_deterministic_and_scoped():
    text = PITCH.format(name="Anna", url="https://x.io/a")
    a = fingerprint(text, "x:acct")
    assert a == fingerprint(text, "x:acct")
    other_scope = fingerprint(text, "x:other")
    assert a is not None and other_scope is not None
    assert a.signature == other_scope.signature  # same text ...
    assert not set(a.band_keys) & set(other_scope.band_keys)  # ... but no shared key


def test_substituted_copies_share_text_key():
    a = fingerprint(PITCH.format(name="Anna", url="https://x.io/1"), "s", ("Anna",))
    b = fingerprint(PITCH.format(name="Ben", url="https://y.io/22"), "s", ("Ben",))
    assert a is not None and b is not None
    assert a.text_key == b.text_key
    assert similarity(a.signature, b.signature) == 1.0


def test_similarity_separates_edited_copies_from_unrelated_texts():
    a = fingerprint(PITCH.format(name="Anna", url="u"), "s", ("Anna",))
    edited = fingerprint(
        "Hey Ben, thanks so much for connecting! I help SaaS founders grow their revenue with "
        "our analytics tool. Check it out at https://x.io and reply if you'd like a demo.",
        "s",
        ("Ben",),
    )
    unrelated = fingerprint(
        "Are we still on for dinner at Luigi's tonight? I can pick up the wine on my way over.",
        "s",
    )
    assert a is not None and edited is not None and unrelated is not None
    assert similarity(a.signature, edited.signature) >= 0.5
    assert similarity(a.signature, unrelated.signature) < 0.2
    assert set(a.resemblance_keys) & set(edited.resemblance_keys)  # LSH finds the copy


def test_similarity_refuses_mismatched_signatures():
    with pytest.raises(ValueError):
        similarity(b"\x00" * 256, b"\x00" * 128)
    with pytest.raises(ValueError):
        similarity(b"", b"")


def test_banding_must_fit_the_signature():
    with pytest.raises(ValueError, match="more than 64"):
        fingerprint("one two three four five six", "s", bands=17, rows=4)


# --- the policy ---

COPIES = [
    ("anna", "Anna Lee", PITCH.format(name="Anna", url="https://x.io/r/anna")),
    (
        "ben",
        "Ben",
        "Hey Ben, thanks so much for connecting! I help SaaS founders grow their revenue with "
        "our analytics tool. Check it out at https://x.io/r/ben and reply if you'd like a demo.",
    ),
    (
        "cleo",
        "Cleo Park",
        "Hi Cleo, thanks for connecting!! I help SaaS founders grow revenue with our brand new "
        "analytics tool - check it out at https://bit.ly/3xYz and reply for a free demo 🚀",
    ),
    ("dan", "@dan_k", PITCH.format(name="dan_k", url="www.x.io/r/dan")),
]


def copy_dm(index: int, account: str = "acct", platform: str = "x") -> OutboundMessage:
    recipient, name, text = COPIES[index]
    return OutboundMessage(platform, account, (recipient,), text, recipient_names=(name,))


async def test_edited_copies_with_different_names_are_caught_at_the_third_recipient():
    signals, reuse = MemorySignals(), policy()
    results = [await reuse.evaluate(copy_dm(i), signals, NOW) for i in range(4)]
    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].reason == (
        "same text sent to at least 3 recipients in 24h (this one included); closest earlier copy "
        "88% similar, 88% of its wording in its earlier copies"
    )
    assert results[2].template_id == results[3].template_id == "1"
    assert results[3] is not None
    assert len(signals.templates) == 1  # every copy joined the first one's template


async def test_min_recipients_is_configurable():
    signals, reuse = MemorySignals(), policy(min_recipients=2, window=timedelta(hours=2))
    assert await reuse.evaluate(copy_dm(0), signals, NOW) is None
    found = await reuse.evaluate(copy_dm(1), signals, NOW)
    assert found is not None
    assert found.reason.startswith("same text sent to at least 2 recipients in 2h (this one")


async def test_the_same_recipient_counts_once():
    signals, reuse = MemorySignals(), policy()
    for _ in range(5):
        assert await reuse.evaluate(copy_dm(0), signals, NOW) is None
    assert await reuse.evaluate(copy_dm(1), signals, NOW) is None
    assert await reuse.evaluate(copy_dm(2), signals, NOW) is not None


async def test_different_accounts_do_not_mix():
    signals, reuse = MemorySignals(), policy()
    assert await reuse.evaluate(copy_dm(0, account="a1"), signals, NOW) is None
    assert await reuse.evaluate(copy_dm(1, account="a1"), signals, NOW) is None
    assert await reuse.evaluate(copy_dm(2, account="a2"), signals, NOW) is None
    assert await reuse.evaluate(copy_dm(3, account="a2"), signals, NOW) is None
    assert await reuse.evaluate(copy_dm(2, platform="mastodon", account="a1"), signals, NOW) is None
    # The account's own third recipient is still caught.
    assert await reuse.evaluate(copy_dm(3, account="a1"), signals, NOW) is not None


async def test_copies_outside_the_window_are_not_counted():
    signals, reuse = MemorySignals(), policy()
    assert await reuse.evaluate(copy_dm(0), signals, NOW) is None
    assert await reuse.evaluate(copy_dm(1), signals, NOW + timedelta(hours=2)) is None
    # 25h after the first copy only the second one (2h) is inside the 24h window.
    assert await reuse.evaluate(copy_dm(2), signals, NOW + timedelta(hours=25)) is None
    # At 26h the second copy sits exactly on the window's edge, which counts.
    assert await reuse.evaluate(copy_dm(3), signals, NOW + timedelta(hours=26)) is not None


async def test_short_texts_are_never_judged():
    signals, reuse = MemorySignals(), policy()
    for i in range(10):
        message = OutboundMessage("x", "acct", (f"r{i}",), "Thanks for the follow! 🙏")
        assert await reuse.evaluate(message, signals, NOW) is None
    assert signals.calls == []  # not even recorded


async def test_unrelated_messages_are_not_grouped():
    texts = [
        "Are we still on for dinner at Luigi's tonight? I can pick up the wine on my way.",
        "Loved your talk on distributed tracing yesterday, the sampling part was really clear.",
        "Could you send me the slides from Tuesday's meeting when you get a chance please?",
        "Happy birthday! Hope you have a wonderful day with the family and lots of cake.",
        "The package arrived today but the box was damaged, can we arrange a replacement?",
        "I'm running ten minutes late, the train stopped outside the station again.",
    ]
    signals, reuse = MemorySignals(), policy()
    for i, text in enumerate(texts):
        message = OutboundMessage("x", "acct", (f"r{i}",), text)
        assert await reuse.evaluate(message, signals, NOW) is None
    assert len(signals.templates) == len(texts)


async def test_one_message_to_several_recipients_counts_each_of_them():
    signals, reuse = MemorySignals(), policy()
    _, _, text = COPIES[0]
    message = OutboundMessage("x", "acct", ("r1", "r2", "r3"), text)
    assert await reuse.evaluate(message, signals, NOW) is not None


async def test_passes_window_thresholds_and_cap_to_the_signals():
    seen: dict[str, object] = {}

    class Recording(MemorySignals):
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
            seen.update(since=since, thresholds=thresholds, cap=cap, recipients=recipients)
            return CampaignMatch(7, 1)

    reuse = policy(
        window=timedelta(hours=6), similarity=0.7, containment=0.6, meaning=0.5, min_recipients=4
    )
    assert await reuse.evaluate(copy_dm(0), Recording(), NOW) is None
    assert seen == {
        "since": NOW - timedelta(hours=6),
        "thresholds": MatchThresholds(0.7, 0.6, 0.5),
        "cap": 100,  # the reason counts up to 100 recipients
        "recipients": ("anna",),
    }
