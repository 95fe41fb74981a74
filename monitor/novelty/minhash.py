"""Feature hashes, MinHash signatures and LSH band keys (pure, deterministic across processes).

A feature set is kept as its sorted CRC-32 hashes (C speed; only equality matters, the MinHash
family on top supplies the randomness), at most ``MAX_FEATURES`` of them (the
smallest: a bottom-k sketch, exact for every headline or tweet, an unbiased estimate for long
bodies), as a compact uint32 array that owns its memory (at most 1 KiB a story: a slice of the full
sorted array would keep all of it alive, 12 KB for a 10,000-character story); ``jaccard`` compares
two such sets. A MinHash signature (``num_perm`` minima of a
multiply-shift family over the hashes) is only used to find candidates: ``band_keys`` cuts it into
bands, and two sets collide in at least one band with probability ``1 - (1 - J**rows)**bands``
(16 bands of 4 rows: 0.89 at J = 0.6, 0.98 at J = 0.7, 0.9996 at J = 0.8). The decision itself
uses ``jaccard``, not the signature estimate, whose noise at 64 permutations (±0.06) would fold
distinct stories of similar wording. Python's ``hash()`` is salted per process: never used here.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

NUM_PERM = 64
BANDS = 16
MAX_FEATURES = 256
_SEED = 20_261_201

Signature = npt.NDArray[np.uint32]
Hashes = npt.NDArray[np.uint32]


def feature_hashes(feats: Iterable[str], limit: int = MAX_FEATURES) -> Hashes:
    """The sorted distinct CRC-32 hashes of ``feats`` (the ``limit`` smallest), copied into an array of
    their own: the index keeps it for a whole window, so it must not pin the full sorted array."""
    base = np.fromiter(map(zlib.crc32, map(str.encode, feats)), dtype=np.uint32)  # crc32 < 2**32
    unique: Hashes = np.unique(base)[:limit].copy()
    return unique


def jaccard(a: Hashes, b: Hashes, limit: int = MAX_FEATURES) -> float:
    """Jaccard similarity of two hash sets (bottom-``limit`` estimate when either was truncated)."""
    both = np.intersect1d(a, b, assume_unique=True)
    if a.size < limit and b.size < limit:  # complete sets (every headline and tweet): exact
        union_size = a.size + b.size - both.size
        return both.size / union_size if union_size else 0.0
    union = np.union1d(a, b)[:limit]
    return float(np.count_nonzero(np.isin(union, both, assume_unique=True))) / union.size


class MinHasher:
    """Fixed hash family (seeded), so every instance and every restart computes the same signatures."""

    def __init__(self, num_perm: int = NUM_PERM, bands: int = BANDS) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        rng = np.random.default_rng(_SEED)
        self.num_perm = num_perm
        self.bands = bands
        self.rows = num_perm // bands
        self._a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)  # odd multipliers
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self._mix = rng.integers(1, 2**63, size=(bands, self.rows), dtype=np.uint64) | np.uint64(1)
        self._band_salt = rng.integers(0, 2**63, size=bands, dtype=np.uint64)

    def signature(self, base: Hashes) -> Signature:
        """MinHash of a non-empty set of feature hashes."""
        if base.size == 0:
            raise ValueError("an empty feature set has no signature")
        with np.errstate(over="ignore"):  # multiply-shift hashing wraps modulo 2**64 by design
            hashed = (base.astype(np.uint64)[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        sig: Signature = hashed.min(axis=0).astype(np.uint32)
        return sig

    def band_keys(self, sig: Signature) -> list[int]:
        """One 64-bit key per band (band number mixed in, so keys of different bands never meet)."""
        rows = sig.astype(np.uint64).reshape(self.bands, self.rows)
        with np.errstate(over="ignore"):
            keys = (rows * self._mix).sum(axis=1, dtype=np.uint64) ^ self._band_salt
        return [int(k) for k in keys.tolist()]

