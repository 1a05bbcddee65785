"""Text normalisation for template matching: one spelling for every disguise of a text.

`clean` gives the text as a reader sees it (HTML-unescaped, NFKC, casefolded, invisible
characters dropped, look-alike letters folded to the letters they imitate). `tokens`
replaces what varies per recipient with placeholders: every link (any domain, shorteners,
punycode), emails, @handles, numbers, and the recipient's known profile strings (names,
handles, and whatever profile fields the store knows: location, company, …).

Look-alike letters: UTS #39's confusable skeleton (ICU's SpoofChecker, via PyICU), applied
per non-ASCII character and kept only where the skeleton is a plain ASCII letter or digit
(Cyrillic "\u0430" → "a", Greek "\u03bf" → "o"). Measured against `confusable-homoglyphs` (the other
maintained UTS #39 library): ICU computes a whole skeleton in ~5 µs per DM, while
confusable-homoglyphs only detects confusables (~100 µs per DM) and has no skeleton, so ICU
was kept. Folding only non-ASCII characters keeps every ASCII text's normal form, and so its
MinHash and band keys, unchanged from earlier versions (the full skeleton also rewrites
ASCII: "m" → "rn"), so the stored template index stays valid across the upgrade.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence

import icu

# Placeholders are private-use characters while normalising, so the punctuation pass
# cannot eat them; input private-use characters are deleted first so they cannot be forged.
URL, EMAIL, USER, NUM, NAME = "\ue000", "\ue001", "\ue002", "\ue003", "\ue004"
PLACEHOLDERS = frozenset({URL, EMAIL, USER, NUM, NAME})
READABLE = str.maketrans(
    {URL: "<url>", EMAIL: "<email>", USER: "<user>", NUM: "<num>", NAME: "<name>"}
)

# Applied in this order: links, handles (before emails, so @anna@mastodon.social stays one
# <user>), emails (before bare domains, so the domain of an address is not a <url>),
# bare domains of any top-level domain (bit.ly/x, acme.studio/p, xn--80ak6aa92e.com).
_URL_RE = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+")
_HANDLE_RE = re.compile(r"(?<![\w@])@\w[\w-]*(?:[.@][\w-]+)*")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A top-level domain is 2-24 letters or punycode; "e.g." and "3.5" are not domains.
_DOMAIN_RE = re.compile(r"\b(?:[\w-]+\.)+(?:[^\W\d_]{2,24}|xn--[\w-]+)\b(?:/\S*)?")
_NUM_RE = re.compile(r"[$£€¥₹]?\d+(?:[.,:]\d+)*%?")
# Everything but letters, digits, whitespace and placeholders (emoji, punctuation, `_`).
_PUNCT_RE = re.compile(r"[^\w\s\ue000-\ue004]|_")
# Letters that render as nothing; spammers use them like zero-width characters.
_BLANK_LETTERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800})
# Profile strings other than a name's first word become placeholders only when they say
# something specific: "The Agency" must not turn every "the" into a placeholder.
_COMMON = frozenset(
    "a an the and or of in on at to for with from by my our your his her their new old "
    "hi hey hello dear mr mrs ms dr inc ltd llc co team group company".split()
)


class _InvisibleTable(dict[int, int | None]):
    """str.translate table deleting format (Cf: zero-width, bidi, soft hyphen), private-use,
    unassigned and combining (M*: accents left after NFKC, variation selectors, zalgo)
    characters. Filled lazily, since scanning all of Unicode up front costs ~0.3 s per start,
    and bounded, so texts full of rare characters cannot grow it without limit."""

    LIMIT = 1 << 16

    def __missing__(self, code: int) -> int | None:
        category = unicodedata.category(chr(code))
        drop = category in ("Cf", "Co", "Cs", "Cn") or category[0] == "M"
        value = None if drop or code in _BLANK_LETTERS else code
        if len(self) < self.LIMIT:
            self[code] = value
        return value


class _LookalikeTable(dict[int, str | int]):
    """str.translate table folding a non-ASCII character to its UTS #39 skeleton when that
    is ASCII letters or digits (Cyrillic a → "a"); other characters stay. Lazy and
    bounded like _InvisibleTable; one SpoofChecker per table (ICU objects are not shared
    across threads by this module)."""

    LIMIT = 1 << 16

    def __init__(self) -> None:
        super().__init__()
        self._checker = icu.SpoofChecker()

    def __missing__(self, code: int) -> str | int:
        value: str | int = code
        if code > 0x7F:
            skeleton = self._checker.getSkeleton(0, chr(code)).casefold()
            if skeleton.isascii() and skeleton.isalnum():
                value = skeleton
        if len(self) < self.LIMIT:
            self[code] = value
        return value


_INVISIBLE = _InvisibleTable()
_LOOKALIKE = _LookalikeTable()


def clean(text: str) -> str:
    """`text` as a reader sees it, in one spelling: HTML-unescaped, NFKC (fullwidth and
    styled letters become plain ones), casefolded, invisible characters dropped (zero-width,
    bidi, private-use, combining marks), look-alike letters folded (UTS #39 skeleton)."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).casefold()
    if not text.isascii():  # ASCII has no invisible or look-alike characters: skip
        text = text.translate(_INVISIBLE).translate(_LOOKALIKE)
    return text


# URL shorteners. A link through one hides where it leads, and suites rotate them per copy
# (bit.ly for one recipient, tinyurl.com for the next) so that no two copies share a link
# host: template_reuse takes every shortener for one destination besides its own. Left
# out on purpose: hosts people share for themselves (youtu.be, linktr.ee, wa.me, t.me,
# amzn.to, spoti.fi; goo.gl, whose links now are Google Photos and Maps shares).
SHORTENERS = frozenset(
    {
        "bit.ly", "bitly.com", "bit.do", "buff.ly", "cutt.ly", "dlvr.it", "hubs.la",
        "hubs.li", "hubs.ly", "ift.tt", "is.gd", "lnkd.in", "mcaf.ee", "ow.ly", "rb.gy",
        "rebrand.ly", "s.id", "shorturl.at", "t.co", "t.ly", "tiny.cc", "tinyurl.com",
        "trib.al", "v.gd",
    }
)  # fmt: skip


def _host(link: str) -> str:
    """The registrable part of a link's host ("www.shop.co.uk/x" → "shop.co.uk"), so one
    campaign's links with per-recipient paths and subdomains share it."""
    host = link.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    labels = host.split(":", 1)[0].strip(".").split(".")
    # "co.uk", "com.au": a short second-level label under a two-letter country code
    keep = 3 if len(labels) > 2 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


def tokens(
    text: str, hosts: list[str] | None = None, full_links: list[str] | None = None
) -> list[str]:
    """Normalised tokens of `text`, placeholders as private-use characters. The hosts of
    its links are appended to `hosts` when given, and to `full_links` the links that are
    certainly links: with a scheme, "www." or a path. Chat that runs words together
    ("title.so", "govt.institutions") makes bare domains, but not those."""
    text = clean(text)

    def link(match: re.Match[str]) -> str:
        found = match.group()
        if hosts is not None:
            hosts.append(_host(found))
        if full_links is not None and (
            "://" in found or found.startswith("www.") or found.partition("/")[2]
        ):
            full_links.append(found)
        return f" {URL} "

    # The guards skip patterns that cannot match; the email pattern alone costs ~10 µs.
    if "://" in text or "www." in text:
        text = _URL_RE.sub(link, text)
    if "@" in text:
        text = _HANDLE_RE.sub(f" {USER} ", text)
        text = _EMAIL_RE.sub(f" {EMAIL} ", text)
    if "." in text:
        text = _DOMAIN_RE.sub(link, text)
    text = _NUM_RE.sub(NUM, text)  # in place: "mp3" and "mp4" both become "mp<num>"
    return _PUNCT_RE.sub(" ", text).split()


def profile_patterns(profile: Iterable[str]) -> list[tuple[str, ...]]:
    """Token sequences to replace with <name>, longest first so "anna smith" wins over
    "anna". `profile` is any list of the recipient's profile strings (display name, handle,
    location, company, …); each goes through the same normalisation as the text."""
    patterns: set[tuple[str, ...]] = set()
    for value in profile:
        whole = tuple(tokens(value.lstrip("@")))
        if len(whole) > 6:  # a bio, not a field: its words are not merge values
            continue
        for pattern in (whole, whole[:1]):  # the whole value, and its first word
            # A one-letter or placeholder-only value would rewrite ordinary words.
            if not pattern or (len(pattern) == 1 and len(pattern[0]) < 2):
                continue
            if all(t in PLACEHOLDERS for t in pattern) or all(t in _COMMON for t in pattern):
                continue
            patterns.add(pattern)
    return sorted(patterns, key=len, reverse=True)


def replace_profile(words: list[str], patterns: Sequence[tuple[str, ...]]) -> list[str]:
    """`words` with every occurrence of a pattern replaced by one <name> placeholder."""
    out: list[str] = []
    i = 0
    while i < len(words):
        for pattern in patterns:
            if tuple(words[i : i + len(pattern)]) == pattern:
                out.append(NAME)
                i += len(pattern)
                break
        else:
            out.append(words[i])
            i += 1
    return out


def normalised_tokens(
    text: str,
    profile: Iterable[str] = (),
    hosts: list[str] | None = None,
    full_links: list[str] | None = None,
) -> list[str]:
    """The tokens of `text` as a template: placeholders for links, emails, handles, numbers
    and the recipient's profile strings (link hosts and certain links collected as
    `tokens` does)."""
    words = tokens(text, hosts, full_links)
    patterns = profile_patterns(profile)
    return replace_profile(words, patterns) if patterns else words
