"""In-process ``WindowStore`` for the embedded default and unit tests (same contract as Redis)."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence

from monitor.lifecycle import Service
from monitor.types import ClassifiedMessage
from monitor.windows.buckets import BucketStats, EvidenceItem, evidence_of, increments


def _evidence_order(ev: EvidenceItem) -> tuple[float, str]:
    return (ev.score, ev.message_id)


class MemoryWindowStore(Service):
    """Dict-backed buckets with the same idempotency and retention rules as ``RedisWindowStore``.

    Retention is by event time relative to the newest bucket seen (so replays of old history
    keep their buckets), and dedup markers expire by wall clock after ``retention_s``.
    """

    def __init__(
        self,
        bucket_s: int,
        retention_s: int,
        top_negative_per_bucket: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        self.top_n = top_negative_per_bucket
        self._clock = clock
        self._buckets: dict[tuple[str, int], BucketStats] = {}
        self._evidence: dict[tuple[str, int], list[EvidenceItem]] = {}
        self._seen: dict[str, float] = {}
        self._newest_start_s = 0

    async def apply(self, items: Sequence[ClassifiedMessage]) -> int:
        now = self._clock()
        fresh = 0
        for item in items:
            seen_at = self._seen.get(item.message.id)
            if seen_at is not None and now - seen_at < self.retention_s:
                continue
            self._seen[item.message.id] = now
            fresh += 1
            ev = evidence_of(item) if item.repeat_of is None else None
            for inc in increments(item, self.bucket_s):
                slot = (inc.key, inc.start_s)
                current = self._buckets.get(slot)
                stats = inc.as_stats()
                self._buckets[slot] = stats if current is None else current.merge(stats)
                self._newest_start_s = max(self._newest_start_s, inc.start_s)
                self._keep_evidence(slot, ev)
        self._expire(now)
        return fresh

    def _keep_evidence(self, slot: tuple[str, int], ev: EvidenceItem | None) -> None:
        if ev is None or self.top_n <= 0 or ev.score >= 0:  # repeats are never evidence: one story, one line
            return
        # keep the N smallest (score, message_id): the order top_negative reads and Redis keeps
        kept = self._evidence.setdefault(slot, [])
        bisect.insort(kept, ev, key=_evidence_order)
        del kept[self.top_n :]

    def _expire(self, now: float) -> None:
        horizon = self._newest_start_s - self.retention_s
        for slot in [s for s in self._buckets if s[1] < horizon]:
            del self._buckets[slot]
            self._evidence.pop(slot, None)
        if len(self._seen) > 1024:
            for mid in [m for m, t in self._seen.items() if now - t >= self.retention_s]:
                del self._seen[mid]

    async def buckets(self, key: str, start_s: int, end_s: int) -> list[BucketStats]:
        found = [s for (k, b), s in self._buckets.items() if k == key and start_s <= b < end_s]
        return sorted(found, key=lambda s: s.start_s)

    async def active_keys(self, since_s: int, until_s: int | None = None) -> list[str]:
        return sorted({k for (k, b) in self._buckets if b >= since_s and (until_s is None or b < until_s)})

    async def top_negative(self, key: str, start_s: int, end_s: int, limit: int) -> list[EvidenceItem]:
        items = [
            ev
            for (k, b), kept in self._evidence.items()
            if k == key and start_s <= b < end_s
            for ev in kept
        ]
        items.sort(key=_evidence_order)
        return items[:limit]
