"""What a text means, as a vector: a static sentence embedding that runs on the CPU and
ships inside its package, and random-hyperplane LSH keys to find near vectors by index.

WordLlama (`wordllama` 0.4, "l2_supercat", 256 dimensions): token embeddings distilled from
a large language model's input layer, mean-pooled — ~40 µs for a DM here, 16 MB of weights
in its wheel (31 MiB once loaded, see `_model`). Its own loader looks for the tokenizer
under `wordllama/tokenizer/` while the wheel ships `wordllama/tokenizers/`, and then
downloads it; this module opens both files itself and never lets anything download
(deployments have no route to a model hub).
Measured on hand-written AI-personalised campaigns (bench/evasion.py): same-campaign pairs
cosine median ~0.67, genuine first messages against each other or a campaign at most
~0.42. The alternative looked at, model2vec, loads its models from a model hub at run
time rather than from its package, so WordLlama was kept.

Random-hyperplane LSH (Charikar, STOC 2002): each of PLANES fixed random hyperplanes
contributes one bit, the sign of the vector's side; two vectors at angle θ agree on a bit
with probability 1 - θ/π. Bits are cut into bands; a band key is a hash of one band's bits.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import xxhash

DIMENSIONS = 256
# 32 bands of 6 bits: a copy at cosine 0.5 to an earlier one (bit agreement 1 - 60/180)
# shares a band with it with probability 1-(1-0.667^6)^32 = 0.95 (12 bands of 8 bits:
# 0.38); unrelated texts (cosine ~0.2) share one with probability 0.65, and are rejected
# when compared. Only DMs with a link have them.
BAND_BITS = 6
BANDS = 32
PLANES = BANDS * BAND_BITS
_SEED = 20261206
# A key is the account's prefix (52 bits), the band (5) and the band's value (6): one
# account's at most 2,048 keys sit side by side in the store's index, so a DM's 32 lookups
# and claims touch a few pages rather than 32 random ones (migration 0011 moved the keys
# stored before, which were hashes of all three).
_BAND_FIELD = 5
_PREFIX_SHIFT = _BAND_FIELD + BAND_BITS
assert BANDS <= 1 << _BAND_FIELD, "a band number must fit its field of the key"
_BIT_WEIGHTS = 1 << np.arange(BAND_BITS)


# Rows of the embedding matrix widened at a time while loading (2 MiB of float16).
_LOAD_ROWS = 4096


class EmbeddingUnavailable(RuntimeError):
    """The embedding's files are not where its package installs them."""


@functools.cache
def _model() -> tuple[object, np.ndarray]:
    """The tokenizer and the embedding matrix, loaded once per process from the wheel."""
    from safetensors import safe_open
    from tokenizers import Tokenizer

    # Found, not imported: importing wordllama calls logging.basicConfig() and loads
    # modules this never uses.
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingUnavailable("the wordllama package is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    weights = root / "weights" / "l2_supercat_256.safetensors"
    tokenizer_file = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    if not weights.is_file() or not tokenizer_file.is_file():
        raise EmbeddingUnavailable(f"wordllama's bundled files are missing under {root}")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    with safe_open(str(weights), framework="np", device="cpu") as f:
        # Widened once to float32 (31 MiB instead of the shipped 16): NumPy widens float16
        # in software, ~55 µs for a DM's ~40 rows when pooled, against ~10 µs to pool
        # float32 rows; the vectors are the same to the bit (widening is exact). Slice by
        # slice, so no float16 copy of the whole matrix is held beside it.
        rows = f.get_slice("embedding.weight")
        count, dimensions = rows.get_shape()
        matrix = np.empty((count, dimensions), dtype=np.float32)
        for start in range(0, count, _LOAD_ROWS):
            stop = min(start + _LOAD_ROWS, count)
            matrix[start:stop] = rows[start:stop]
    return tokenizer, matrix


@functools.cache
def _planes() -> np.ndarray:
    return np.random.default_rng(_SEED).standard_normal((PLANES, DIMENSIONS)).astype(np.float32)


def load() -> None:
    """Load the model now (at policy load), not on the first DM."""
    _model()
    _planes()


# Distinct words whose token ids are remembered (~4 MB at most): a campaign's words recur.
WORD_CACHE = 16384


@functools.lru_cache(maxsize=WORD_CACHE)
def _word_ids(word: str) -> tuple[int, ...]:
    tokenizer, _ = _model()
    return tuple(tokenizer.encode(word, add_special_tokens=False).ids)  # type: ignore[attr-defined]


def embed(text: str) -> np.ndarray | None:
    """The unit-length mean of `text`'s token vectors (float32), or None without tokens.

    `text` is tokenised word by word, each word's ids remembered: the tokenizer's
    normaliser marks every word's start and its merges never cross one, so for a
    single-spaced text these are the ids of the whole text (the same on all 5,788 texts of
    the SMS corpus and bench/evasion.py), at a fifth of the time (~60 µs a DM before)."""
    _, matrix = _model()
    ids = [i for word in text.split(" ") for i in _word_ids(word)]
    if not ids:
        return None
    # The sum has the mean's direction: it is scaled to unit length anyway.
    vector = np.add.reduce(matrix[ids], axis=0)
    norm = float(np.sqrt(vector @ vector))
    return vector / norm if norm > 0 else None


def to_bytes(vector: np.ndarray) -> bytes:
    """Stored as float16: 512 bytes, cosine error ~1e-3."""
    return vector.astype("<f2").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f2").astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))


def cosines(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`cosine(a, row)` for every row of `rows`, in one pass."""
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows) * np.dot(a, a))
    return (rows @ a) / np.where(norms == 0, 1.0, norms)


def scope_prefix(scope: str) -> int:
    """The high bits every meaning key of `scope` shares (salted apart from MinHash keys);
    keys are kept below 2**63, the store's signed 64-bit integers."""
    digest = xxhash.xxh64_intdigest(b"e" + scope.encode())
    return digest >> (1 + _PREFIX_SHIFT) << _PREFIX_SHIFT


def band_keys(vector: np.ndarray, scope: str) -> tuple[int, ...]:
    """The LSH band keys of `vector` under `scope`: non-negative 63-bit integers."""
    bits = ((_planes() @ vector) > 0).reshape(BANDS, BAND_BITS)
    values = (bits @ _BIT_WEIGHTS).tolist()  # each band's bits as one small integer
    prefix = scope_prefix(scope)
    return tuple(prefix | band << BAND_BITS | value for band, value in enumerate(values))
