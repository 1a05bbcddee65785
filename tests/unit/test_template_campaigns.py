"""template_reuse against campaigns that vary every copy: look-alike letters, links on any
domain, profile fields, spintax, AI-reworded pitches — and the genuine messages that must
pass (policies/normalise.py, policies/meaning.py, policies/template_reuse.py)."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xxhash
from datasketch import MinHash

from policies import meaning
from policies.model import Finding, MatchThresholds, OutboundMessage, StoredCopy
from policies.normalise import tokens
from policies.schema import PolicyAction
from policies.template_reuse import (
    SHINGLE,
    UNLINKED_MEANING_MARGIN,
    CampaignScore,
    TemplateReuse,
    TemplateReuseConfig,
    closest_campaign,
    fingerprint,
    normalise,
    score_campaign,
    score_campaigns,
    similarity,
)
from tests.unit.memory_signals import MemorySignals

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CYRILLIC_A, CYRILLIC_O, CYRILLIC_E, GREEK_O = "\u0430", "\u043e", "\u0435", "\u03bf"


def policy() -> TemplateReuse:
    return TemplateReuse(TemplateReuseConfig(action=PolicyAction.HOLD))


async def judge(reuse: TemplateReuse, signals: MemorySignals, texts: list[str]) -> list:
    found = []
    for i, text in enumerate(texts):
        message = OutboundMessage("x", "acct", (f"r{i}",), text)
        found.append(await reuse.evaluate(message, signals, NOW + timedelta(minutes=i)))
    return found


# --- normalisation ---


@pytest.mark.parametrize(
    ("text", "profile", "expected"),
    [
        # look-alike letters fold to the letters they imitate (UTS #39 skeleton)
        (
            f"Fr{CYRILLIC_E}{CYRILLIC_E} {CYRILLIC_O}ffer f{GREEK_O}r "
            f"y{CYRILLIC_O}u t{CYRILLIC_O}d{CYRILLIC_A}y",
            (),
            "free offer for you today",
        ),
        # ... with zero-width characters inside the words
        (f"fr\u200b{CYRILLIC_E}e st\u2060uff", (), "free stuff"),
        # accented letters are letters, not disguises
        ("café crème", (), "café crème"),
        # every link is a placeholder: any domain, shorteners, punycode, paths and queries
        ("see acme.studio/p?x=1 or growfast.agency", (), "see <url> or <url>"),
        ("xn--80ak6aa92e.com/a and t.co/x and lnkd.in/abc", (), "<url> and <url> and <url>"),
        ("ftp://files.example/x", (), "<url>"),
        # ... but not abbreviations or decimals
        ("e.g. 3.5 times", (), "e g <num> times"),
        # the recipient's profile strings: name, company, location
        (
            "Hi Anna, love what Kestrel Labs does in Austin",
            ("Anna Smith", "Kestrel Labs", "Austin, TX"),
            "hi <name> love what <name> does in <name>",
        ),
        # a common first word of a field never becomes a placeholder; a bio is no field
        ("the best agency", ("The Agency",), "the best agency"),
        (
            "I love hiking",
            ("I love hiking and coffee, dad of two, builder at heart",),
            "i love hiking",
        ),
    ],
)
def test_normalise_folds_disguises(text: str, profile: tuple[str, ...], expected: str):
    assert normalise(text, profile) == expected


def test_ascii_texts_keep_their_signature_from_earlier_versions():
    """The stored index stays valid across the upgrade: MinHash over xxh32 of char
    5-grams of the normalised text, exactly as computed before."""
    text = "Hey there, join my amazing program today at the link below for free"
    data = normalise(text).encode("utf-32-le")
    shingles = {data[i : i + SHINGLE * 4] for i in range(0, len(data) - SHINGLE * 4 + 1, 4)}
    before = MinHash(num_perm=64, seed=1, hashfunc=xxhash.xxh32_intdigest, scheme="affine32")
    before.update_batch(shingles)
    fp = fingerprint(text, "x:a")
    assert fp is not None
    assert fp.signature == before.hashvalues.astype("<u4").tobytes()


def test_the_embedding_is_computed_only_for_texts_with_a_link():
    plain = fingerprint("Would you like to join our free webinar next Tuesday about AWS", "x:a")
    linked = fingerprint("Join our free webinar next Tuesday about AWS: https://x.io/w", "x:a")
    assert plain is not None and plain.meaning == b"" and plain.meaning_keys == ()
    assert linked is not None and len(linked.meaning) == 2 * meaning.DIMENSIONS
    assert len(linked.meaning_keys) == meaning.BANDS and linked.hosts


def test_an_accounts_meaning_keys_sit_side_by_side_and_apart_from_other_accounts():
    """The store finds them in a few adjacent index pages: one account's keys differ only
    in their low 11 bits (band, value); another account's share none of them."""
    texts = [
        "Join our free webinar next Tuesday about AWS: https://x.io/w",
        "We cut cloud bills by a third for teams like yours, see https://acme.example",
    ]
    first, second = (fingerprint(t, "x:a") for t in texts)
    theirs = fingerprint(texts[0], "x:b")
    assert first is not None and second is not None and theirs is not None
    keys = {*first.meaning_keys, *second.meaning_keys}
    assert len(keys) > meaning.BANDS  # two texts, more than one value in some band
    assert len({key >> 11 for key in keys}) == 1
    assert all(0 <= key < 2**63 for key in keys)
    # The same bands and values as the first text's ...
    assert {key & 2047 for key in theirs.meaning_keys} == {key & 2047 for key in first.meaning_keys}
    assert not keys & set(theirs.meaning_keys)  # ... under another prefix


@pytest.mark.parametrize(
    "text",
    [
        "saw your post about migrating to postgres at acme impressive numbers",
        "café naïve résumé über straße 東京 emoji 🚀🔥 mixed-case under_score",
        "we run free pipeline audits for data teams and usually find wasted spend",
    ],
)
def test_a_text_tokenised_word_by_word_gets_the_ids_of_the_whole_text(text: str):
    tokenizer, _ = meaning._model()
    whole = tokenizer.encode(text, add_special_tokens=False).ids  # type: ignore[attr-defined]
    assert [i for word in text.split(" ") for i in meaning._word_ids(word)] == whole


def test_the_embedding_loads_from_its_package_without_the_network(monkeypatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedding tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    meaning._model.cache_clear()
    meaning._word_ids.cache_clear()
    vector = meaning.embed("a free audit of your data pipeline")
    assert vector is not None and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    close = meaning.embed("we audit data pipelines at no cost")
    far = meaning.embed("our dog ran off near the park this morning")
    assert close is not None and far is not None
    assert meaning.cosine(vector, close) > meaning.cosine(vector, far)


# --- campaigns ---

SPINTAX = [
    "Hi Anna, loved your post about Acme. We help teams like yours cut cloud costs by 30%. "
    "Worth a chat? https://bit.ly/a1",
    "Hey Ben, enjoyed your thread about Orbit. We help companies like yours cut cloud costs "
    "by 30%. Open to a quick call? https://tinyurl.com/b2",
    "Hello Carla, really liked your update about Lumen. We help teams like yours cut cloud "
    f"c{CYRILLIC_O}sts by 30%. Fancy a look? https://bit.ly/c3",
    "Hey Dmitri, loved your update about Quill. 🚀 We help companies like yours cut cloud "
    "costs by 30%. Worth a chat? go.acmecloud.app/d4",
    "We help teams like yours cut cloud costs by 30%. Hi Elena, enjoyed your post about "
    "Tidewater. Open to a quick call? https://bit.ly/e5",
]
AI_WRITTEN = [
    "Saw your post about migrating to Postgres at Acme, impressive numbers. We run free "
    "pipeline audits for data teams and usually find 30% of wasted warehouse spend. "
    "https://audit.example-offer.com/?r=1",
    "Loved your thread on dbt testing last week. Our team does a free audit of data "
    "pipelines and tends to uncover a third of the warehouse bill as waste. "
    "https://audit.example-offer.com/?r=2",
    "Your talk at Data Council on streaming joins was great. We offer a no-cost audit of "
    "your data pipeline, most teams cut around 30% of warehouse costs. "
    "https://audit.example-offer.com/?r=3",
    "Congrats on the Series B, Maya! Growing data teams waste a lot on the warehouse. We do "
    "free pipeline audits that typically save 30 percent. https://audit.example-offer.com/?r=4",
]
# One person writing three neighbours about the same lost dog: the same meaning, no link.
LOST_DOG = [
    "Sorry to message out of the blue, our dog Biscuit ran off near Maple Park this morning. "
    "He's a small brown terrier with a red collar. Please call if you see him.",
    "Hi, you live near the park, right? Biscuit slipped his leash this morning and we can't "
    "find him. Brown terrier, red collar, very friendly.",
    "Have you seen a little brown dog with a red collar around Maple Park? It's Biscuit, he "
    "got away from my son earlier today and we're worried sick.",
]


def stored(template_id: int, text: str) -> StoredCopy:
    fp = fingerprint(text, "x:a")
    assert fp is not None
    return StoredCopy(template_id, fp.text_key, fp.signature, fp.features, fp.meaning)


def test_a_campaign_links_where_the_copy_links_whether_or_not_its_copies_are_in_the_union():
    """The link test reads the union's answer when every copy is in it, and the copies
    themselves when a much longer one (a quotation, left out of the union) carries the
    link: both say the same. The meaning is the cosine to the copies' mean."""
    copy = fingerprint(AI_WRITTEN[0], "x:a")
    assert copy is not None and copy.hosts
    short = stored(1, AI_WRITTEN[1])
    # A long chain letter quoting the pitch, with the link: outside the union.
    chain = " ".join([*LOST_DOG, *SPINTAX[:3], AI_WRITTEN[2].split(" https")[0]])
    long_ = stored(1, chain + " https://audit.example-offer.com/")
    assert len(long_.features) > 2 * len(copy.features)
    one = score_campaign(copy, 1, [short])
    assert one.linked and one.meaning == pytest.approx(one.closest, abs=1e-6) and one.meaning > 0.4
    quoted = score_campaign(copy, 1, [long_])
    assert quoted.linked and quoted.containment == 0.0  # linked, though outside the union
    unlinked = stored(1, AI_WRITTEN[1].replace("https://audit.example-offer.com/?r=2", ""))
    assert not score_campaign(copy, 1, [unlinked]).linked
    both = score_campaign(copy, 1, [short, stored(1, AI_WRITTEN[3])])
    vectors = [meaning.from_bytes(c.meaning) for c in (short, stored(1, AI_WRITTEN[3]))]
    mine = meaning.from_bytes(copy.meaning)
    assert both.meaning == pytest.approx(meaning.cosine(mine, sum(vectors)), abs=1e-6)
    assert both.closest == pytest.approx(max(meaning.cosine(mine, v) for v in vectors), abs=1e-6)


async def test_a_spintax_campaign_is_caught_by_its_fourth_copy():
    """Copies 2 and 3 share too little with copy 1 alone to be sure; from the 4th on, the
    union of the earlier copies holds most of each new one."""
    found = await judge(policy(), MemorySignals(), SPINTAX)
    assert found[:2] == [None, None]
    assert all(isinstance(f, Finding) for f in found[3:])
    assert len({f.template_id for f in found[3:]}) == 1  # one campaign id for the reviewer


async def test_an_ai_reworded_pitch_with_one_link_is_caught_by_meaning():
    found = await judge(policy(), MemorySignals(), AI_WRITTEN)
    assert found[:2] == [None, None]
    assert found[2] is not None and found[3] is not None
    assert "the same link and meaning" in found[3].reason
    assert found[3].reason.startswith("same text sent to at least 4 recipients in 24h")


SHORTENED = ["https://bit.ly/x1", "https://tinyurl.com/x2", "lnkd.in/x3", "https://t.co/x4"]


def _through(text: str, link: str) -> str:
    return text.rsplit(" ", 1)[0] + " " + link


async def test_a_reworded_pitch_through_another_shortener_each_time_is_caught_by_meaning():
    """Suites rotate shorteners so that no two copies share a link host: every shortener
    counts as one destination (besides its own)."""
    texts = [_through(t, link) for t, link in zip(AI_WRITTEN, SHORTENED, strict=True)]
    found = await judge(policy(), MemorySignals(), texts)
    assert found[2] is not None and found[3] is not None
    assert "the same link and meaning" in found[3].reason


async def test_a_reworded_pitch_on_a_fresh_domain_each_time_is_caught_by_meaning_alone():
    """Suites rotate landing domains as well as shorteners: no copy links where another
    does, and the meaning, at a higher bar, still tells the campaign."""
    domains = [f"https://get-{n}.example{n}.com/start" for n in range(len(AI_WRITTEN))]
    texts = [_through(t, link) for t, link in zip(AI_WRITTEN, domains, strict=True)]
    found = await judge(policy(), MemorySignals(), texts)
    assert found[2] is not None and found[3] is not None
    assert "the same meaning as its earlier copies, its link going elsewhere" in found[3].reason


THRESHOLDS = MatchThresholds(resemblance=0.45, containment=0.55, meaning=0.4)


def test_meaning_through_another_link_needs_the_higher_bar():
    bar = THRESHOLDS
    between = 0.4 + UNLINKED_MEANING_MARGIN / 2
    score = CampaignScore(1, 0.1, 0.1, between, 0.1, False)
    assert score.matches(bar) is False  # through another link
    assert replace(score, linked=True).matches(bar) is True  # through the campaign's link
    above = replace(score, meaning=0.4 + UNLINKED_MEANING_MARGIN)
    assert above.matches(bar) is True


def test_meaning_through_another_link_asks_for_a_real_link_and_a_pitch_sized_text():
    """In chat, words run together read as links ("title.so"): through another link,
    meaning counts only for an unmistakable link (a scheme, "www." or a path) in a text
    of CAMPAIGN_MIN_TOKENS or more."""

    def has_full_link(text: str) -> bool:
        found: list[str] = []
        tokens(text, full_links=found)
        return bool(found)

    assert has_full_link("see https://acme.io") and has_full_link("www.acme.io")
    assert has_full_link("go to acme-3f.com/start?r=1") and has_full_link("lnkd.in/x")
    assert not has_full_link("some big title.so we win") and not has_full_link("acme.com!")
    campaign = [stored(1, _through(AI_WRITTEN[1], "https://site1.example.org/a"))]
    for link, counted in (("https://site0.example.net/a", True), ("site0.example.net", False)):
        copy = fingerprint(_through(AI_WRITTEN[0], link), "x:a")
        assert copy is not None and not score_campaign(copy, 1, campaign).linked
        assert (score_campaign(copy, 1, campaign).meaning > 0) is counted


def test_meaning_through_another_link_never_joins_two_campaigns_counts():
    """It names the copy's campaign when nothing else does; a copy that also matches
    another campaign by its wording is counted with that one alone."""
    text = _through(AI_WRITTEN[0], "https://site0.example.net/a")
    copy = fingerprint(text, "x:a")
    by_meaning = stored(1, _through(AI_WRITTEN[1], "https://site1.example.org/a"))
    exact = stored(2, text)
    found = closest_campaign(copy, [by_meaning, exact], THRESHOLDS)
    assert found is not None and found.matched == (2,)
    alone = closest_campaign(copy, [by_meaning], THRESHOLDS)
    assert alone is not None and alone.matched == (1,) and not alone.linked


def test_a_shortener_links_to_other_shorteners_and_not_to_a_plain_site():
    copy = fingerprint(_through(AI_WRITTEN[0], "https://rb.gy/q7"), "x:a")
    assert copy is not None
    assert score_campaign(copy, 1, [stored(1, _through(AI_WRITTEN[1], "https://ow.ly/z"))]).linked
    site = stored(1, _through(AI_WRITTEN[1], "https://audit.example-offer.com/?r=2"))
    assert not score_campaign(copy, 1, [site]).linked
    # goo.gl is not taken for a shortener: its links are Google Photos and Maps shares.
    photos = stored(1, _through(AI_WRITTEN[1], "https://photos.app.goo.gl/x7Kd9"))
    assert not score_campaign(copy, 1, [photos]).linked


async def test_one_person_writing_several_people_about_one_thing_passes():
    assert await judge(policy(), MemorySignals(), LOST_DOG) == [None, None, None]


async def test_the_hold_reason_names_recipients_and_the_closest_copy():
    found = await judge(policy(), MemorySignals(), [SPINTAX[0]] * 3)
    assert found[2] == Finding(
        "same text sent to at least 3 recipients in 24h (this one included); closest earlier "
        "copy 100% similar, 100% of its wording in its earlier copies",
        template_id="1",
    )


def test_campaigns_compared_together_get_the_wording_scores_of_plain_sets():
    """score_campaigns tags every campaign's features into one sorted array: each campaign's
    containment is still the share of the copy's features in its own union (copies sharing
    features, a quotation left out), its resemblance the best share of equal hash values."""
    copy = fingerprint(SPINTAX[0] + " https://go.example.com/a", "x:a")
    assert copy is not None
    chain = " ".join([*LOST_DOG, *SPINTAX[3:6]]) + " https://go.example.com/q"
    campaigns = {
        1: [stored(1, SPINTAX[1]), stored(1, SPINTAX[2])],  # siblings: shared features
        2: [stored(2, LOST_DOG[0]), stored(2, chain)],  # the chain letter: a quotation
        3: [replace(stored(3, SPINTAX[3]), banded=False)],  # found by a loose key only
        4: [StoredCopy(4, 7, stored(4, SPINTAX[4]).signature)],  # kept before features
        5: [stored(5, AI_WRITTEN[1])],
    }
    assert len(campaigns[2][1].features) > 2 * len(copy.features)
    mine = set(np.frombuffer(copy.features, "<u4").tolist())
    for score in score_campaigns(copy, campaigns):
        copies = campaigns[score.template_id]
        union = {
            int(v)
            for c in copies
            if c.features and len(c.features) <= 2 * len(copy.features)
            for v in np.frombuffer(c.features, "<u4")
        }
        assert score.containment == len(mine & union) / len(mine)
        banded = [similarity(c.signature, copy.signature) for c in copies if c.banded]
        assert score.resemblance == max(banded, default=0.0)
        everything = {int(v) for c in copies for v in np.frombuffer(c.features, "<u4")}
        assert score.linked == bool(set(copy.hosts) & everything)
        alone = score_campaign(copy, score.template_id, copies)
        assert replace(score, meaning=0, closest=0, nearest_meaning=0) == replace(
            alone, meaning=0, closest=0, nearest_meaning=0
        )  # the meaning: to float32 rounding (see the next test)
    scores = {s.template_id: s for s in score_campaigns(copy, campaigns)}
    assert scores[1].containment > 0.5 > scores[2].containment > 0  # the test can tell
    assert scores[2].linked and not scores[5].linked and scores[4].containment == 0.0


def test_candidates_scored_together_score_as_each_alone():
    """closest_campaign compares every candidate's embeddings in one product: each
    campaign's scores are those it has compared alone (to float32 rounding)."""
    copy = fingerprint(AI_WRITTEN[0], "x:a")
    assert copy is not None
    campaigns = {
        1: [stored(1, AI_WRITTEN[1]), stored(1, AI_WRITTEN[2])],
        2: [stored(2, _through(AI_WRITTEN[3], "https://site2.example.net/a"))],
        3: [stored(3, LOST_DOG[0] + " https://audit.example-offer.com/?r=9")],
    }
    rows = [c for copies in campaigns.values() for c in copies]
    best = closest_campaign(copy, rows, THRESHOLDS)
    alone = {t: score_campaign(copy, t, copies) for t, copies in campaigns.items()}
    assert sum(score.meaning > 0 for score in alone.values()) >= 2  # a product of several
    assert best is not None
    mine = alone[best.template_id]
    assert best.meaning == pytest.approx(mine.meaning, abs=1e-6) and best.meaning > 0.4
    assert best.nearest_meaning == pytest.approx(mine.nearest_meaning, abs=1e-6)
    assert best.closest == pytest.approx(mine.closest, abs=1e-6)
    assert best.strength == pytest.approx(max(s.strength for s in alone.values()), abs=1e-6)
