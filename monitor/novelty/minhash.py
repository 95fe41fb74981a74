"""MinHash signatures and their LSH band keys (pure, deterministic across processes and runs).

A signature is ``num_perm`` minima of a multiply-shift hash family over the 32-bit BLAKE2b hashes
of a feature set; the share of equal positions of two signatures estimates their Jaccard
similarity. ``band_keys`` cuts the signature into bands: two sets collide in at least one band with
probability ``1 - (1 - J**rows)**bands`` (16 bands of 4 rows: 0.89 at J = 0.6, 0.98 at J = 0.7,
0.9996 at J = 0.8), which is how the index finds candidates without comparing against everything.
Python's ``hash()`` is salted per process, so it is never used here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

NUM_PERM = 64
BANDS = 16
_SEED = 20_261_201

Signature = npt.NDArray[np.uint32]


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

    def signature(self, feats: Iterable[str]) -> Signature:
        """MinHash of a non-empty feature set."""
        base = np.fromiter(
            (int.from_bytes(hashlib.blake2b(f.encode(), digest_size=4).digest(), "little") for f in feats),
            dtype=np.uint64,
        )
        if base.size == 0:
            raise ValueError("an empty feature set has no signature")
        with np.errstate(over="ignore"):  # multiply-shift hashing wraps modulo 2**64 by design
            hashed = (base[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        sig: Signature = hashed.min(axis=0).astype(np.uint32)
        return sig

    def band_keys(self, sig: Signature) -> list[int]:
        """One 64-bit key per band (band number mixed in, so keys of different bands never meet)."""
        rows = sig.astype(np.uint64).reshape(self.bands, self.rows)
        with np.errstate(over="ignore"):
            keys = (rows * self._mix).sum(axis=1, dtype=np.uint64) ^ self._band_salt
        return [int(k) for k in keys.tolist()]


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two sets behind the signatures."""
    return float(np.count_nonzero(a == b)) / a.size
