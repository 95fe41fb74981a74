"""Per-key bucket history kept between detection passes, so a pass reads only its new buckets.

The per-bucket detectors look ``history_s`` back from every bucket they judge. Reading that whole
history for every evaluated key on every pass sent the same buckets again and again (at 10-minute
buckets and 24 h of history, ~150 buckets per key per pass where ~1-12 are new): on Redis that
was most of detection's time (benchmarks/RESULTS.md). Closed buckets are final -- a later message
for one is dead-lettered as late, a redelivered one is counted once -- so a bucket read once stays
right: each pass adds what it read of its own range ``[first, closed_end)`` and drops what fell out
of the history window.

Trusted only for a pass that starts where the previous one ended (``until_s == first``) and only
while it is *complete*: it holds every bucket since ``complete_since_s`` of every key that has one
(a key missing from it has none there). To stay complete, a pass adds the new buckets of every key
active in its range, evaluated or not (``max_keys_per_evaluation`` may leave some out). Anything
else -- the first pass, a restart, a pass retried after a failure, a skipped stretch -- re-reads the
whole history from the store, so detection stays a pure function of the stored buckets.
Bounded: it holds the last ``history_s`` of buckets of the keys that have any (what the store holds
for them anyway), trimmed every pass.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from monitor.windows.buckets import BucketStats


def _start(stats: BucketStats) -> int:
    return stats.start_s


class SeriesCache:
    """The buckets of ``[complete_since_s, until_s)`` of every key that has any, oldest first."""

    def __init__(self) -> None:
        self._buckets: dict[str, list[BucketStats]] = {}
        self.complete_since_s: int | None = None
        self.until_s: int | None = None

    def covers(self, since_s: int, first_s: int) -> bool:
        """Whether a pass starting at ``first_s`` that needs history from ``since_s`` can use it."""
        return self.until_s == first_s and self.complete_since_s is not None and self.complete_since_s <= since_s

    def reset(self, since_s: int, until_s: int, found: Mapping[str, Sequence[BucketStats]]) -> None:
        """Start over from a full read of ``[since_s, until_s)`` (every key active there)."""
        self._buckets = {key: list(stats) for key, stats in found.items() if stats}
        self.complete_since_s, self.until_s = since_s, until_s

    def extend(self, until_s: int, found: Mapping[str, Sequence[BucketStats]]) -> None:
        """Add a pass's buckets of ``[self.until_s, until_s)`` (every key active there)."""
        for key, stats in found.items():
            if stats:
                self._buckets.setdefault(key, []).extend(stats)
        self.until_s = until_s

    def trim(self, since_s: int) -> None:
        """Forget buckets before ``since_s`` (out of every later pass's history)."""
        for key in list(self._buckets):
            kept = self._buckets[key]
            cut = bisect.bisect_left(kept, since_s, key=_start)
            if cut == len(kept):
                del self._buckets[key]
            elif cut:
                del kept[:cut]
        if self.complete_since_s is not None:
            self.complete_since_s = max(self.complete_since_s, since_s)

    def history(self, key: str) -> list[BucketStats]:
        """``key``'s buckets, oldest first (a copy)."""
        return list(self._buckets.get(key, ()))

    def __len__(self) -> int:
        """Keys held."""
        return len(self._buckets)
