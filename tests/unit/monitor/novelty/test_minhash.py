from __future__ import annotations

import numpy as np

from monitor.novelty.index import NoveltyIndex
from monitor.novelty.minhash import MAX_FEATURES, feature_hashes
from monitor.novelty.text import features, tokens

LONG_STORY = " ".join(f"w{(n * 7919) % 20_000}" for n in range(1_600))  # ~10,000 characters, 3,000+ features


def test_a_long_story_keeps_a_compact_array_that_owns_its_memory() -> None:
    hashes = feature_hashes(features(tokens(LONG_STORY)))
    assert hashes.base is None
    assert hashes.dtype == np.uint32 and hashes.nbytes == MAX_FEATURES * 4


def test_the_index_stores_only_the_compact_array() -> None:
    ix = NoveltyIndex(window_s=60, max_entries=4)
    ix.decide("a", LONG_STORY, 0, ())
    story = ix._stories[0]
    assert story is not None and story.hashes.base is None and story.hashes.nbytes == MAX_FEATURES * 4


def test_feature_hashes_are_the_sorted_distinct_crc32_values() -> None:
    hashes = feature_hashes(["b", "a", "b", "c"])
    assert hashes.tolist() == sorted({int(h) for h in hashes}) and hashes.size == 3
