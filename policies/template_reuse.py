"""template_reuse: the same text, with small substitutions, sent to many recipients.

The detector is pure: `normalise` turns a DM into the text a template author wrote (names,
links, numbers become placeholders), `fingerprint` turns that into a MinHash signature and
LSH band keys, and the store behind `Signals.template_recipients` finds earlier copies by
band key and counts who got them. The measurements behind each step are in the design
notes (research/template-reuse.md beside DESIGN.md); bench/detection.py shows the banding
choice.

Changing NUM_PERM, BANDS, ROWS, the seed or the shingling changes every band key and
signature: earlier copies stop matching until they age out of the store.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import numpy as np
import xxhash
from datasketch import MinHash
from pydantic import Field

from policies.model import OutboundMessage, Signals, TemplateFingerprint
from policies.schema import Duration, PolicyConfig, format_duration


class TemplateReuseConfig(PolicyConfig):
    min_recipients: int = Field(default=3, ge=2, strict=True)
    window: Duration = timedelta(hours=24)
    min_tokens: int = Field(default=6, ge=1, strict=True)
    # 0.45, not 0.5: MinHash estimates scatter (~0.06 at 64 hash values), and 0.5 loses copies
    # whose true similarity is just above it (bench/detection.py: +15 spam for +5 ham).
    similarity: float = Field(default=0.45, gt=0, le=1, strict=True)


NUM_PERM = 64
SHINGLE = 5  # characters per shingle
# 21 bands of 3 rows: a pair becomes a candidate with probability 1-(1-s^3)^21, 0.87 at
# s=0.45 (the default acceptance threshold) and 0.94 at 0.5, so copies near the threshold
# are not lost before their signatures are compared; 14x4 (LSH threshold ~0.5) finds only
# 0.44 / 0.59 of them. On the SMS corpus (bench/detection.py, similarity 0.45) 21x3 catches
# 197 spam / 105 ham, 14x4 178 / 98, 32x2 200 / 105 for ~30% more evaluation time.
BANDS = 21
ROWS = 3

_SIGNED_63 = (1 << 63) - 1  # band keys and text keys go into a signed BIGINT column

# Placeholders are private-use characters while normalising, so the punctuation pass
# cannot eat them; input private-use characters are deleted first so they cannot be forged.
_URL, _EMAIL, _USER, _NUM, _NAME = "\ue000", "\ue001", "\ue002", "\ue003", "\ue004"
_READABLE = str.maketrans(
    {_URL: "<url>", _EMAIL: "<email>", _USER: "<user>", _NUM: "<num>", _NAME: "<name>"}
)

_TLDS = "com|net|org|info|biz|io|co|uk|us|de|fr|eu|me|ly|gl|gg|tv|app|xyz|ai|ru|in|au|ca"
# Applied in this order: links, handles (before emails, so @anna@mastodon.social stays one
# <user>), emails (before bare domains, so the domain of an address is not a <url>),
# bare domains (bit.ly/x, shop.co.uk).
_URL_RE = re.compile(r"(?:https?://|www\.)\S+")
_HANDLE_RE = re.compile(r"(?<![\w@])@\w[\w-]*(?:[.@][\w-]+)*")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DOMAIN_RE = re.compile(rf"\b(?:[a-z0-9-]+\.)+(?:{_TLDS})\b(?:/\S*)?")
_NUM_RE = re.compile(r"[$£€¥₹]?\d+(?:[.,:]\d+)*%?")
# Everything but letters, digits, whitespace and placeholders (emoji, punctuation, `_`).
_PUNCT_RE = re.compile(r"[^\w\s\ue000-\ue004]|_")
# Letters that render as nothing; spammers use them like zero-width characters.
_BLANK_LETTERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800})


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


_INVISIBLE = _InvisibleTable()

# Constructing a MinHash regenerates its permutations (~90 µs); copying this one shares them.
_EMPTY_MINHASH = MinHash(
    num_perm=NUM_PERM, seed=1, hashfunc=xxhash.xxh32_intdigest, scheme="affine32"
)


def clean(text: str) -> str:
    """`text` as a reader sees it, in one spelling: HTML-unescaped, NFKC (fullwidth and
    styled letters become plain ones), casefolded, invisible characters dropped (zero-width,
    bidi, private-use, combining marks). Shared with policies.first_contact_pitch."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).casefold()
    if not text.isascii():  # ASCII has no invisible characters: skip the slow pass
        text = text.translate(_INVISIBLE)
    return text


def _tokens(text: str) -> list[str]:
    """Normalised tokens of `text`, placeholders still as private-use characters."""
    text = clean(text)
    # The guards skip patterns that cannot match; the email pattern alone costs ~10 µs.
    if "://" in text or "www." in text:
        text = _URL_RE.sub(f" {_URL} ", text)
    if "@" in text:
        text = _HANDLE_RE.sub(f" {_USER} ", text)
        text = _EMAIL_RE.sub(f" {_EMAIL} ", text)
    if "." in text:
        text = _DOMAIN_RE.sub(f" {_URL} ", text)
    text = _NUM_RE.sub(_NUM, text)  # in place: "mp3" and "mp4" both become "mp<num>"
    return _PUNCT_RE.sub(" ", text).split()


def _name_patterns(names: Iterable[str]) -> list[tuple[str, ...]]:
    """Token sequences to replace with <name>, longest first so "anna smith" wins over
    "anna". Names go through the same normalisation as the text so they line up."""
    patterns: set[tuple[str, ...]] = set()
    for name in names:
        tokens = tuple(_tokens(name.lstrip("@")))
        for pattern in (tokens, tokens[:1]):  # the whole name, and a display name's first word
            # A one-letter or placeholder-only "name" would rewrite ordinary words.
            if not pattern or (len(pattern) == 1 and len(pattern[0]) < 2):
                continue
            if all(t in (_URL, _EMAIL, _USER, _NUM) for t in pattern):
                continue
            patterns.add(pattern)
    return sorted(patterns, key=len, reverse=True)


def _replace_names(tokens: list[str], patterns: Sequence[tuple[str, ...]]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for pattern in patterns:
            if tuple(tokens[i : i + len(pattern)]) == pattern:
                out.append(_NAME)
                i += len(pattern)
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def _normalised_tokens(text: str, names: Iterable[str]) -> list[str]:
    tokens = _tokens(text)
    patterns = _name_patterns(names)
    return _replace_names(tokens, patterns) if patterns else tokens


def normalise(text: str, names: Iterable[str] = ()) -> str:
    """The template behind `text`: NFKC, casefolded, HTML-unescaped, invisible characters
    dropped; URLs, emails, @handles, numbers and the recipient's `names` replaced by
    `<url>`, `<email>`, `<user>`, `<num>`, `<name>`; punctuation and emoji dropped;
    whitespace collapsed."""
    return " ".join(_normalised_tokens(text, names)).translate(_READABLE)


def fingerprint(
    text: str,
    scope: str,
    names: Iterable[str] = (),
    min_tokens: int = 6,
    bands: int = BANDS,
    rows: int = ROWS,
) -> TemplateFingerprint | None:
    """MinHash signature and LSH band keys of `text`, or None when it has fewer than
    `min_tokens` tokens after normalising (short texts are shared innocently).

    Band keys are scoped: equal texts under different `scope`s share no key.
    """
    if bands * rows > NUM_PERM:
        raise ValueError(f"{bands} bands x {rows} rows need more than {NUM_PERM} hash values")
    tokens = _normalised_tokens(text, names)
    if len(tokens) < min_tokens:
        return None
    normalised = " ".join(tokens).translate(_READABLE)

    # UTF-32 makes every character 4 bytes, so 5-character shingles are fixed-width byte
    # slices: no per-shingle encode().
    data = normalised.encode("utf-32-le")
    width, step = SHINGLE * 4, 4
    last = max(len(data) - width, 0)
    shingles = {data[i : i + width] for i in range(0, last + 1, step)}
    minhash = _EMPTY_MINHASH.copy()
    minhash.update_batch(shingles)  # one vectorised pass; per-shingle update() is ~25x slower

    signature = minhash.hashvalues.astype("<u4", copy=False).tobytes()
    band_keys = signature_band_keys(signature, scope, bands, rows)
    text_key = xxhash.xxh64_intdigest(normalised.encode()) & _SIGNED_63
    return TemplateFingerprint(
        band_keys=band_keys, signature=signature, text_key=text_key, tokens=len(tokens)
    )


def template_scope(platform: str, account: str) -> str:
    """Templates are per sending account: its band keys are salted with this."""
    return f"{platform}:{account}"


def signature_band_keys(
    signature: bytes, scope: str, bands: int = BANDS, rows: int = ROWS
) -> tuple[int, ...]:
    """The LSH band keys of a signature under `scope`: recomputable from a stored
    signature, so the store can find (and prune) a template's bands without an index."""
    scope_bytes = scope.encode()
    prefix = len(scope_bytes).to_bytes(4, "little") + scope_bytes  # length: no ambiguity
    width = rows * 4
    return tuple(
        xxhash.xxh64_intdigest(
            prefix + band.to_bytes(1, "little") + signature[band * width : (band + 1) * width]
        )
        & _SIGNED_63
        for band in range(bands)
    )


def similarity(sig_a: bytes, sig_b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal hash values."""
    if len(sig_a) != len(sig_b) or not sig_a or len(sig_a) % 4:
        raise ValueError("signatures must be non-empty and of equal length")
    a = np.frombuffer(sig_a, dtype="<u4")
    b = np.frombuffer(sig_b, dtype="<u4")
    return float(np.count_nonzero(a == b)) / len(a)


class TemplateReuse:
    """Matches when the text (as a template) reached `min_recipients` distinct recipients
    of the same sending account within `window`, this DM's recipients included."""

    name = "template_reuse"
    config_model = TemplateReuseConfig

    def __init__(self, config: TemplateReuseConfig, bands: int = BANDS, rows: int = ROWS) -> None:
        self.config = config
        self.bands = bands
        self.rows = rows

    async def evaluate(
        self, message: OutboundMessage, signals: Signals, now: datetime
    ) -> str | None:
        if message.opaque:  # encrypted (XChat): no text to compare
            return None
        cfg = self.config
        fp = fingerprint(
            message.text,
            scope=template_scope(message.platform, message.account),
            names=message.recipient_names,
            min_tokens=cfg.min_tokens,
            bands=self.bands,
            rows=self.rows,
        )
        if fp is None:
            return None
        count = await signals.template_recipients(
            message.platform,
            message.account,
            fp,
            message.recipients,
            now,
            since=now - cfg.window,
            threshold=cfg.similarity,
            cap=cfg.min_recipients,
        )
        if count < cfg.min_recipients:
            return None
        # The store stops counting at `cap`, so the count is a floor.
        return (
            f"same text sent to at least {count} recipients in "
            f"{format_duration(cfg.window, exact=True)} (this one included)"
        )
