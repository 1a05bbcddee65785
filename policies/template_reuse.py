"""template_reuse: one campaign sent to many recipients, however each copy is varied.

Suites vary every copy (spintax slots, merge fields, links with per-recipient parameters,
emoji, zero-width characters, look-alike letters, shuffled sentences, an AI-written opener
and the pitch reworded), so a new copy may share little with any *single* earlier one. The
detector therefore judges a copy against a *campaign* — the set of earlier copies one
account sent — and a copy joins a campaign by any of three tests:

1. **resemblance** to one earlier copy: MinHash estimate of the Jaccard similarity of
   character 5-grams (Broder, "On the resemblance and containment of documents", 1997;
   banding as in Leskovec, Rajaraman, Ullman, *Mining of Massive Datasets*, ch. 3) —
   unchanged from earlier versions, so stored signatures and band keys stay valid;
2. **containment** of the copy's 5-grams in the *union* of the campaign's stored copies
   (Broder 1997: containment, not resemblance, is the measure for "A is mostly inside B").
   A spintax copy shares ~0.37 of its 5-grams with any one sibling but 0.7-0.9 with the
   union of three or more, while a genuine message shares at most ~0.27 with any campaign's
   union (bench/evasion.py). This is the campaign view of a fixed skeleton with varying
   slots ("Botnet Judo", Pitsillidis et al., NDSS 2010, infers exactly that skeleton).
   Word bigrams beside the 5-grams were measured and dropped: they lowered the worst
   containment of spintax copies (0.54 → 0.48) without separating genuine text better;
3. **meaning** with the **same link destination**: the cosine between the copy's sentence
   embedding (policies.meaning) and the campaign's mean embedding, for copies whose link
   host (shortener or domain) the campaign's copies also link to; every URL shortener also
   counts as one host, since suites rotate them per copy to hide the shared destination.
   Campaigns are linked by their shared URLs (Gao et al., "Detecting and characterizing
   social spam campaigns", IMC 2010); the link host alone is no evidence (everyone links
   to the same big sites), and meaning alone cannot tell an AI-reworded pitch from one
   person writing three neighbours about their lost dog (cosine 0.7), so the test needs
   a link. A copy that links elsewhere than the campaign (suites also rotate landing
   domains, a fresh one per copy) joins it by meaning at UNLINKED_MEANING_MARGIN more.

Text is normalised first (policies.normalise: NFKC, casefold, invisible characters, UTS #39
look-alike folding; links, emails, handles, numbers and the recipient's profile strings as
placeholders). Candidates come from an index, never a scan: MinHash band keys of every kept
copy (loose bands only for a text long enough to carry a pitch), and random-hyperplane band
keys of its embedding, name the campaign in the store.
Attempts count by distinct recipient within the window, per sending account.

Changing NUM_PERM, BANDS, ROWS, the seed or the shingling changes every band key and
signature: earlier copies stop matching until they age out of the store.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import xxhash
from datasketch import MinHash
from pydantic import Field

from policies import meaning
from policies.model import (
    CampaignMatch,
    Finding,
    MatchThresholds,
    OutboundMessage,
    Signals,
    StoredCopy,
    TemplateFingerprint,
)
from policies.normalise import (
    PLACEHOLDERS,
    READABLE,
    SHORTENERS,
    URL,
    clean,
    normalised_tokens,
)
from policies.schema import Duration, PolicyConfig, format_duration

__all__ = ["TemplateReuse", "clean", "fingerprint", "normalise", "similarity"]


class TemplateReuseConfig(PolicyConfig):
    min_recipients: int = Field(default=3, ge=2, le=1_000_000, strict=True)
    window: Duration = timedelta(hours=24)
    min_tokens: int = Field(default=6, ge=1, le=10_000, strict=True)
    # 0.45, not 0.5: MinHash estimates scatter (~0.06 at 64 hash values), and 0.5 loses copies
    # whose true similarity is just above it (bench/detection.py: +15 spam for +5 ham).
    similarity: float = Field(default=0.45, gt=0, le=1, strict=True)
    # Share of a copy's 5-grams found in the campaign's earlier copies: spintax copies
    # 0.54-0.95, hand-written genuine messages at most 0.27 (bench/evasion.py); 0.55, not
    # 0.5, keeps SMS ham held at its earlier level (bench/detection.py: 107 at 0.5, 105 at
    # 0.55 and before) for ~2% of spintax copies.
    containment: float = Field(default=0.55, gt=0, le=1, strict=True)
    # Cosine to the campaign's mean embedding, for copies linking where the campaign links:
    # AI-reworded copies 0.34-0.8 (5th percentile 0.44), genuine messages at most 0.34.
    meaning: float = Field(default=0.4, gt=0, le=1, strict=True)


NUM_PERM = 64
SHINGLE = 5  # characters per shingle
# 21 bands of 3 rows: a pair becomes a candidate with probability 1-(1-s^3)^21, 0.87 at
# s=0.45 (the default acceptance threshold) and 0.94 at 0.5, so copies near the threshold
# are not lost before their signatures are compared; 14x4 (LSH threshold ~0.5) finds only
# 0.44 / 0.59 of them. On the SMS corpus (bench/detection.py, similarity 0.45) 21x3 catches
# 197 spam / 105 ham, 14x4 178 / 98, 32x2 200 / 105 for ~30% more evaluation time.
BANDS = 21
ROWS = 3
# Loose bands of the same signature, for finding campaigns whose copies resemble each other
# little (spintax copies: Jaccard ~0.3): 16 bands of 2 rows make a copy at s=0.3 a
# candidate of one earlier copy with probability 0.78 (21x3: 0.43), and of a campaign of
# three copies 0.99. Too loose to name one template for good, so the latest kept copy's
# template takes a loose key (verification is containment). 16, not 32 as before: the same
# recall on every variant of bench/evasion.py (seeds 1-3, 4th-and-later copies within 1-2
# of 135 per variant, 54-56 of 56 AI-style ones, with 32 meaning bands) for 16 fewer index
# rows per DM; migration 0008 drops the keys of bands 16-31 written earlier.
# A text of CAMPAIGN_MIN_TOKENS or more is indexed and found by its loose keys alone, and a
# candidate they name is judged by resemblance too (a 16x2 band finds a pair at s=0.45 with
# probability 0.97, 21x3 0.87): its 21 MinHash band keys, on as many random index pages,
# were a third of a linked DM's writes and most of an unlinked one's. Measured against the
# tree before, in one run each: bench/evasion.py seeds 1 and 2 the same table but for one
# spintax copy (133 of 135, not 134, on seed 2); bench/detection.py SMS spam 256 -> 252,
# ham 105 -> 103; bench/decision.py at 1M p50 0.73 -> 0.57 ms, p99 1.59 -> 1.37 ms, the
# database 2,140 -> 1,752 MiB (looking the 21 keys up but no longer writing them saved
# nothing: p99 2.12 ms, the random reads are the cost). Migration 0013 gives every stored
# copy its loose keys, so copies indexed with MinHash keys alone (before 0007) are still
# found; the MinHash keys long texts wrote before stay until retention prunes their copies.
LOOSE_BANDS = 16
LOOSE_ROWS = 2
# The campaign view (containment, loose band keys, fragments counted together) is taken only
# for texts of at least this many tokens: a short everyday text ("cool, text me when you're
# ready") is mostly inside any large union of chat, while a campaign DM carries a pitch.
# Shorter texts keep the pairwise resemblance test alone (bench/detection.py: SMS ham held
# 105 before; 169 with the campaign view on every text; 105 with this floor).
CAMPAIGN_MIN_TOKENS = 12
LINKED_CONTAINMENT_RELIEF = 0.05
# A campaign's second copy is compared with its first alone, and a spintax sibling shares
# only ~0.37-0.5 of its 5-grams with one copy: for a DM carrying a link, a campaign of one
# copy is joined at 0.15 less containment, so the first copies do not start separate
# templates (bench/evasion.py, 4th-and-later spintax copies missed of 540: seed 1 15 → 7,
# seed 2 25 → 5; SMS ham held unchanged at 105, its texts rarely carry links).
SPARSE_RELIEF = 0.15
# Meaning alone joins a campaign whose copies link elsewhere (a domain of its own for
# every copy, as suites that rotate landing domains send them) at this much more cosine than
# when the copy links where the campaign links, for a text of CAMPAIGN_MIN_TOKENS or more
# with an unmistakable link (policies.normalise.tokens), and it never joins two campaigns' counts.
# bench/evasion.py, AI-style copies on a domain each, 4th and later held of 56, seeds 1-5:
# 0 before; 51, 48, 43, 48, 47 now, with the same false holds as before on every seed (768
# genuine DMs, 240 short replies). With no margin: 56 and 54 on seeds 1 and 3, and one more
# genuine DM held. bench/detection.py: SMS spam held 232 → 256, ham 105 → 105.
UNLINKED_MEANING_MARGIN = 0.05
# How many recipients a hold reason counts up to: enough to tell a reviewer the scale.
REPORT_CAP = 100

_SIGNED_63 = (1 << 63) - 1  # band keys and text keys go into a signed BIGINT column

# Constructing a MinHash regenerates its permutations (~90 µs); copying this one shares
# them. Shingles are hashed once (xxh32, as before) and the values given to the MinHash
# (hashfunc=int), so the same hashes are the campaign features: signatures are identical
# to those of earlier versions.
_EMPTY_MINHASH = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=int, scheme="affine32")


def _host_key(host: str) -> int:
    return xxhash.xxh32_intdigest(b"host:" + host.encode())


# Any shortener (policies.normalise.SHORTENERS) is also this one host, so a campaign whose
# copies each go through another shortener still links where its copies link. Copies kept
# before carry only their own shortener's key: they still match copies through it.
_SHORTENED = _host_key("<shortener>")


def _shortened(hosts: Sequence[str]) -> set[int]:
    return set() if SHORTENERS.isdisjoint(hosts) else {_SHORTENED}


def normalise(text: str, names: Iterable[str] = ()) -> str:
    """The template behind `text`: NFKC, casefolded, HTML-unescaped, invisible characters
    dropped, look-alike letters folded; URLs, emails, @handles, numbers and the recipient's
    profile strings (`names`) replaced by `<url>`, `<email>`, `<user>`, `<num>`, `<name>`;
    punctuation and emoji dropped; whitespace collapsed."""
    return " ".join(normalised_tokens(text, names)).translate(READABLE)


def _shingle_hashes(normalised: str) -> list[int]:
    # UTF-32 makes every character 4 bytes, so 5-character shingles are fixed-width byte
    # slices: no per-shingle encode().
    data = normalised.encode("utf-32-le")
    width = SHINGLE * 4
    last = max(len(data) - width, 0)
    shingles = {data[i : i + width] for i in range(0, last + 1, 4)}
    return [xxhash.xxh32_intdigest(s) for s in shingles]


def _meaning_of(words: Sequence[str], scope: str) -> tuple[bytes, tuple[int, ...]]:
    """The embedding of the words (placeholders left out: names and links say nothing of
    the offer) and its band keys, or empty when nothing is left to embed."""
    vector = meaning.embed(" ".join(w for w in words if w not in PLACEHOLDERS))
    if vector is None:
        return b"", ()
    return meaning.to_bytes(vector), meaning.band_keys(vector, scope)


def fingerprint(
    text: str,
    scope: str,
    names: Iterable[str] = (),
    min_tokens: int = 6,
    bands: int = BANDS,
    rows: int = ROWS,
    with_meaning: bool = True,
) -> TemplateFingerprint | None:
    """What the store indexes of `text`, or None when it has fewer than `min_tokens` tokens
    after normalising (short texts are shared innocently). `names` are the recipient's
    profile strings. The embedding is computed only for texts with a link (the meaning
    test needs one) and when `with_meaning`.

    Band keys are scoped: equal texts under different `scope`s share no key.
    """
    if bands * rows > NUM_PERM:
        raise ValueError(f"{bands} bands x {rows} rows need more than {NUM_PERM} hash values")
    hosts: list[str] = []
    full_links: list[str] = []
    words = normalised_tokens(text, names, hosts, full_links)
    if len(words) < min_tokens:
        return None
    normalised = " ".join(words).translate(READABLE)
    hashes = _shingle_hashes(normalised)
    # A shallow copy shares the permutations (MinHash.copy() parses and validates them
    # again: ~30 µs, a sixth of an unlinked DM's fingerprint) and gets fresh hash values.
    minhash = copy.copy(_EMPTY_MINHASH)
    minhash.hashvalues = _EMPTY_MINHASH.hashvalues.copy()
    minhash.update_batch(hashes)  # one vectorised pass; per-shingle update() is ~25x slower
    signature = minhash.hashvalues.astype("<u4", copy=False).tobytes()
    host_keys = sorted({_host_key(h) for h in hosts} | _shortened(hosts))
    features = np.unique(np.array(hashes + host_keys, dtype="<u4")).tobytes()
    vector, meaning_keys = b"", ()
    if with_meaning and URL in words:
        vector, meaning_keys = _meaning_of(words, scope)
    # A long text is indexed by its loose keys alone (see LOOSE_BANDS), a short one by its
    # MinHash band keys.
    long_text = len(words) >= CAMPAIGN_MIN_TOKENS
    return TemplateFingerprint(
        band_keys=() if long_text else signature_band_keys(signature, scope, bands, rows),
        loose_keys=loose_band_keys(signature, scope) if long_text else (),
        signature=signature,
        text_key=xxhash.xxh64_intdigest(normalised.encode()) & _SIGNED_63,
        tokens=len(words),
        features=features,
        hosts=tuple(host_keys),
        meaning=vector,
        meaning_keys=meaning_keys,
        full_link=bool(full_links),
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


def loose_band_keys(signature: bytes, scope: str) -> tuple[int, ...]:
    """The loose band keys (LOOSE_BANDS of LOOSE_ROWS) of a signature under `scope`, salted
    apart from its MinHash band keys; none for a stored signature too short to hold them."""
    if len(signature) < LOOSE_BANDS * LOOSE_ROWS * 4:
        return ()
    return signature_band_keys(signature, f"{scope}~loose", LOOSE_BANDS, LOOSE_ROWS)


def copy_band_keys(signature: bytes, vector: bytes | None, scope: str) -> tuple[int, ...]:
    """Every band key a stored copy may have indexed (MinHash, loose and meaning), for
    pruning: a long text's MinHash keys too, which versions before loose-only indexing
    wrote."""
    keys = signature_band_keys(signature, scope) + loose_band_keys(signature, scope)
    if vector:
        keys += meaning.band_keys(meaning.from_bytes(vector), scope)
    return keys


def similarity(sig_a: bytes, sig_b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal hash values."""
    if len(sig_a) != len(sig_b) or not sig_a or len(sig_a) % 4:
        raise ValueError("signatures must be non-empty and of equal length")
    a = np.frombuffer(sig_a, dtype="<u4")
    b = np.frombuffer(sig_b, dtype="<u4")
    return float(np.count_nonzero(a == b)) / len(a)


@dataclass(frozen=True)
class CampaignScore:
    """How a new copy compares with one campaign's stored copies."""

    template_id: int
    resemblance: float  # best MinHash similarity to one copy (1.0: the same text)
    containment: float  # share of the copy's features in the union of the copies'
    meaning: float  # cosine to the copies' mean embedding (0 unless both carry links)
    closest: float  # the closest single copy: max(resemblance, its cosine if linked)
    exact: bool  # an identical normalised text is stored
    # Every candidate campaign the copy matches, this one included: a campaign whose first
    # copies shared too little to join each other is counted as one (see closest_campaign).
    matched: tuple[int, ...] = ()

    linked: bool = False  # the copy links to a host the campaign's copies link to
    sparse: bool = False  # a linked DM against a campaign of one copy: see SPARSE_RELIEF
    nearest_meaning: float = 0.0  # the closest single copy's cosine, linked or not

    def matches(self, t: MatchThresholds) -> bool:
        margin = 0.0 if self.linked else UNLINKED_MEANING_MARGIN
        return self.by_wording(t) or self.meaning >= t.meaning + margin

    def by_wording(self, t: MatchThresholds) -> bool:
        """Matched by its wording (resemblance or containment), not only by meaning."""
        # A shared link destination is evidence of its own (Gao et al. 2010): it lowers the
        # containment needed by LINKED_CONTAINMENT_RELIEF.
        containment = t.containment - (LINKED_CONTAINMENT_RELIEF if self.linked else 0.0)
        containment -= SPARSE_RELIEF if self.sparse else 0.0
        return self.resemblance >= t.resemblance or self.containment >= containment

    @property
    def strength(self) -> float:
        return max(self.resemblance, self.containment, self.meaning)

    @property
    def campaign(self) -> int:
        """Where the copy is recorded: the oldest campaign it matched, so fragments of one
        campaign converge into its first template and its id stays stable for a reviewer."""
        return min(self.matched, default=self.template_id)

    @property
    def known_text(self) -> bool:
        """The campaign it is recorded under already keeps this exact text."""
        return self.exact and self.campaign == self.template_id


# The new copy's embedding, its campaign's copies' embeddings and each one's cosine to it.
Embeddings = tuple[np.ndarray, np.ndarray, np.ndarray]


def _embeddings(fp: TemplateFingerprint, stored: Sequence[bytes]) -> Embeddings:
    mine = meaning.from_bytes(fp.meaning)
    vectors = meaning.from_bytes(b"".join(stored)).reshape(len(stored), -1)
    return mine, vectors, meaning.cosines(mine, vectors)


def score_campaign(
    fp: TemplateFingerprint, template_id: int, copies: Sequence[StoredCopy]
) -> CampaignScore:
    """Compare `fp` with one campaign's copies: `score_campaigns` for one."""
    return score_campaigns(fp, {template_id: copies})[0]


def score_campaigns(
    fp: TemplateFingerprint, by_template: Mapping[int, Sequence[StoredCopy]]
) -> list[CampaignScore]:
    """Compare `fp` with each candidate campaign's copies (pure; the store calls it with its
    rows), in template order. Every campaign is compared in the same few array operations:
    a DM meets up to MAX_CANDIDATE_TEMPLATES of them, and NumPy's cost per call (a few µs)
    made comparing them one by one ~16 µs each, most of a linked DM's comparison
    (bench/decision.py)."""
    ids = sorted(by_template)
    resemblance, exact = _resemblances(fp, ids, by_template)
    containment, linked, sparse = _wordings(fp, ids, by_template)
    embeddings = _each_embeddings(fp, by_template)
    # Both carry links (only a DM with one is embedded). Through another link, only a text
    # long enough to carry a pitch, with a link that is certainly one: in chat, words run
    # together read as links ("title.so", "govt.institutions"; bench/detection.py: SMS ham
    # held 105 → 110 without these two conditions, 105 with them).
    unlinked_ok = fp.full_link and fp.tokens >= CAMPAIGN_MIN_TOKENS
    scores = []
    for i, template_id in enumerate(ids):
        cos, closest, nearest = 0.0, resemblance[i], 0.0
        found = embeddings.get(template_id) if fp.meaning else None
        if found is not None and (linked[i] or unlinked_ok):
            mine_vec, vectors, each = found
            cos = float(each[0]) if len(each) == 1 else meaning.cosine(mine_vec, vectors.sum(0))
            nearest = float(each.max())
            closest = max(closest, nearest) if linked[i] else closest
        scores.append(
            CampaignScore(
                template_id,
                resemblance[i],
                containment[i],
                cos,
                closest,
                exact[i],
                linked=linked[i],
                sparse=sparse[i],
                nearest_meaning=nearest,
            )
        )
    return scores


def _resemblances(
    fp: TemplateFingerprint, ids: Sequence[int], by_template: Mapping[int, Sequence[StoredCopy]]
) -> tuple[list[float], list[bool]]:
    """Per campaign: the best MinHash similarity of `fp` to one of its copies judged by
    resemblance (1.0 when the same text is kept), and whether the same text is kept."""
    exact = [any(c.text_key == fp.text_key for c in by_template[t]) for t in ids]
    best = [1.0 if e else 0.0 for e in exact]
    at, signatures = [], []
    for i, t in enumerate(ids):
        if not exact[i]:
            for c in by_template[t]:
                if c.banded and len(c.signature) == len(fp.signature):
                    at.append(i)
                    signatures.append(c.signature)
    if signatures:
        mine = np.frombuffer(fp.signature, dtype="<u4")
        rows = np.frombuffer(b"".join(signatures), dtype="<u4").reshape(len(signatures), -1)
        # similarity() of each: the share of equal hash values.
        shares = (np.count_nonzero(rows == mine, axis=1) / len(mine)).tolist()
        for i, share in zip(at, shares, strict=True):
            best[i] = max(best[i], share)
    return best, exact


def _wordings(
    fp: TemplateFingerprint, ids: Sequence[int], by_template: Mapping[int, Sequence[StoredCopy]]
) -> tuple[list[float], list[bool], list[bool]]:
    """Per campaign: the share of `fp`'s features found in the union of its copies'
    (containment), whether `fp` links to a host its copies link to, and whether it is a
    linked DM against a campaign of one copy (see SPARSE_RELIEF)."""
    mine = np.frombuffer(fp.features, dtype="<u4")
    campaign_view = fp.tokens >= CAMPAIGN_MIN_TOKENS
    with_features = [[c for c in by_template[t] if c.features] for t in ids]
    # Copies of a campaign have similar lengths; a text inside a much longer one (a part of
    # a long chain letter) is a quotation, not a copy: only copies up to twice as long form
    # the union (SMS ham: 6 parts of one chain message otherwise).
    stored = [
        [c.features for c in w if len(c.features) <= 2 * len(fp.features)] for w in with_features
    ]
    containment, linked = [0.0] * len(ids), [False] * len(ids)
    hosts = np.array(fp.hosts, "<u4")
    hosts_found = hosts
    if fp.hosts and len(mine):
        # The hosts' hashes are among the features; a copy links where `fp` links when
        # its features hold one of them.
        at = np.searchsorted(mine, hosts) % len(mine)
        hosts_found = hosts[mine[at] == hosts]
    places = [i for i, pool in enumerate(stored) if pool]
    if places and len(mine) and (campaign_view or fp.hosts):
        counts, hits = _in_unions([stored[i] for i in places], mine, hosts_found)
        for row, i in enumerate(places):
            if campaign_view:
                containment[i] = float(counts[row]) / len(mine)
            linked[i] = bool(hits[row]) and len(stored[i]) == len(with_features[i])
    if fp.hosts:
        for i, w in enumerate(with_features):
            if w and len(stored[i]) < len(w):  # the longer copies' links count too
                pools = [np.frombuffer(c.features, dtype="<u4") for c in w]
                linked[i] = bool(_found_in(pools, hosts).any())
    sparse = [len(pool) == 1 and bool(fp.hosts) for pool in stored]
    return containment, linked, sparse


def _in_unions(
    unions: Sequence[Sequence[bytes]], values: np.ndarray, probes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each union of copies' features (each sorted): how many of `values` (sorted,
    unique) it holds, and whether it holds any of `probes`. All unions at once, in a fixed
    number of array operations whatever their count (NumPy's ~1 µs per call, not the
    arithmetic, was most of comparing a DM with 12 candidates one by one): each union's
    features are tagged with its place in the high 32 bits, so one sorted array keeps them
    apart, and a value a union holds appears twice once merged with it. Merging sorted runs
    is linear (a stable sort merges runs). One campaign alone takes fewer calls by a binary
    search in its union."""
    if len(unions) == 1:
        pools = [np.frombuffer(f, dtype="<u4") for f in unions[0]]
        pool = pools[0] if len(pools) == 1 else np.sort(np.concatenate(pools))
        linked = len(probes) > 0 and bool(_found_in([pool], probes).any())
        return np.array([np.count_nonzero(_found_in([pool], values))]), np.array([linked])
    places = np.arange(len(unions), dtype=np.uint64) << np.uint64(32)
    sizes = [len(f) // 4 for pool in unions for f in pool]
    tags = np.repeat(np.repeat(places, [len(pool) for pool in unions]), sizes)
    joined = b"".join(f for pool in unions for f in pool)
    union = np.frombuffer(joined, dtype="<u4").astype(np.uint64) | tags
    if len(sizes) > len(unions):  # else one copy each: sorted and unique already
        union = np.sort(union, kind="stable")
        union = union[np.concatenate(([True], union[1:] != union[:-1]))]  # kept by two copies
    wanted = (values.astype(np.uint64) | places[:, None]).ravel()  # sorted: the tags ascend
    merged = np.sort(np.concatenate((union, wanted)), kind="stable")
    held = merged[1:][merged[1:] == merged[:-1]]
    counts = np.bincount((held >> np.uint64(32)).astype(np.intp), minlength=len(unions))
    if not len(probes):
        return counts, np.zeros(len(unions), dtype=bool)
    asked = (probes.astype(np.uint64) | places[:, None]).ravel()
    at = np.searchsorted(union, asked)
    at[at == len(union)] = 0
    return counts, (union[at] == asked).reshape(len(unions), len(probes)).any(axis=1)


def _found_in(pools: Sequence[np.ndarray], values: np.ndarray) -> np.ndarray:
    """Which of `values` occur in any of `pools`: np.isin's answer, by one sort of the
    pools and a binary search (np.isin also deduplicates both and sorts them together: 12x
    the time for a DM's few hundred features against a campaign's few thousand, measured)."""
    # One copy's features are sorted already.
    pool = pools[0] if len(pools) == 1 else np.sort(np.concatenate(pools))
    if not len(pool):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(pool, values)
    at[at == len(pool)] = 0
    return pool[at] == values


def closest_campaign(
    fp: TemplateFingerprint, rows: Iterable[StoredCopy], thresholds: MatchThresholds
) -> CampaignScore | None:
    """The campaign `fp` belongs to among the candidates' stored copies, or None. The
    strongest match wins (among equals the oldest campaign, the smallest id) and names every
    matching candidate in `matched`: the early copies of a spintax campaign share little
    with each other (a second copy is compared with one earlier copy, not a union) and may
    start separate templates, which a later copy bridges; their recipients are counted
    together."""
    by_template: dict[int, list[StoredCopy]] = {}
    for row in rows:
        by_template.setdefault(row.template_id, []).append(row)
    best: CampaignScore | None = None
    matched: list[int] = []
    for score in score_campaigns(fp, by_template):
        template_id = score.template_id
        if not score.matches(thresholds):
            continue
        # Meaning through another link is the weakest evidence: it names the copy's
        # campaign when nothing else does, but never joins two campaigns' counts (SMS ham:
        # two services' "X added you as a contact" notices otherwise).
        if score.linked or score.by_wording(thresholds):
            matched.append(template_id)
        if best is None or score.strength > best.strength:
            best = score
    if best is None:
        return None
    if fp.tokens < CAMPAIGN_MIN_TOKENS:
        matched = []
    return replace(best, matched=tuple(sorted({best.template_id, *matched})))


def _each_embeddings(
    fp: TemplateFingerprint, by_template: Mapping[int, Sequence[StoredCopy]]
) -> dict[int, Embeddings]:
    """Every candidate's `_embeddings` from one matrix product: a DM with a link meets up to
    MAX_CANDIDATE_TEMPLATES campaigns, and a product per campaign was ~40 µs each here
    (NumPy's per-call cost, not arithmetic)."""
    if not fp.meaning:
        return {}
    stored = {t: [c.meaning for c in copies if c.meaning] for t, copies in by_template.items()}
    flat = [m for meanings in stored.values() for m in meanings]
    if not flat:
        return {}
    mine, vectors, each = _embeddings(fp, flat)
    out, start = {}, 0
    for template_id, meanings in stored.items():
        end = start + len(meanings)
        if meanings:
            out[template_id] = (mine, vectors[start:end], each[start:end])
        start = end
    return out


def campaign_match(
    best: CampaignScore | None, template_id: int, recipients: int, thresholds: MatchThresholds
) -> CampaignMatch:
    """The store's answer for a copy recorded under `template_id` (a new template when
    `best` is None) whose campaign has `recipients` distinct recipients."""
    if best is None:
        return CampaignMatch(template_id, recipients)
    by_meaning = not best.by_wording(thresholds)
    closest = best.closest
    if by_meaning and not best.linked:  # joined through another link: closest in meaning
        closest = max(closest, best.nearest_meaning)
    return CampaignMatch(
        template_id,
        recipients,
        closest,
        best.containment,
        by_meaning,
        best.linked,
    )


class TemplateReuse:
    """Matches when the DM is a copy of a campaign that reached `min_recipients` distinct
    recipients of the same sending account within `window`, this DM's recipients included."""

    name = "template_reuse"
    config_model = TemplateReuseConfig

    def __init__(self, config: TemplateReuseConfig, bands: int = BANDS, rows: int = ROWS) -> None:
        self.config = config
        self.bands = bands
        self.rows = rows
        self.thresholds = MatchThresholds(config.similarity, config.containment, config.meaning)
        meaning.load()  # at policy load, not on the first DM

    async def evaluate(
        self, message: OutboundMessage, signals: Signals, now: datetime
    ) -> Finding | None:
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
        found = await signals.template_campaign(
            message.platform,
            message.account,
            fp,
            message.recipients,
            now,
            since=now - cfg.window,
            thresholds=self.thresholds,
            cap=max(cfg.min_recipients, REPORT_CAP),
        )
        if found.recipients < cfg.min_recipients:
            return None
        return Finding(_reason(found, cfg.window), template_id=str(found.template_id))


def _reason(found: CampaignMatch, window: timedelta) -> str:
    """What a reviewer reads: how many recipients got copies, how close the closest earlier
    copy is, and how the copy matched. "at least": the count stops at REPORT_CAP, and copies
    judged concurrently may add more."""
    if not found.by_meaning:
        how = f"{found.containment:.0%} of its wording in its earlier copies"
    elif found.linked:
        how = "the same link and meaning as its earlier copies"
    else:
        how = "the same meaning as its earlier copies, its link going elsewhere"
    return (
        f"same text sent to at least {found.recipients} recipients in "
        f"{format_duration(window, exact=True)} (this one included); closest earlier copy "
        f"{found.closest:.0%} similar, {how}"
    )
