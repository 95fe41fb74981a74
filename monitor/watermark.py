"""Event-time watermark: which buckets are closed, and which messages arrive too late.

Pure and order-dependent only: judging each message against the watermark as it was when the
message arrived makes the result independent of how the source chopped the stream into batches,
so a live run and a replay of the same ordered stream close the same buckets and drop the same
late messages.

Policy: ``watermark = max event time seen - allowed_lateness_s``. A bucket is closed once the
watermark passes its end; a message whose bucket is already closed is *late*: it is counted in
``finsent_late_messages_total`` and dead-lettered with reason ``late`` (never silently dropped),
because its bucket has already been evaluated for alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_BOUNDARIES_PER_ADVANCE = 10_000


@dataclass(slots=True)
class Watermark:
    bucket_s: int
    allowed_lateness_s: int
    max_event_s: int | None = None
    _reported_until_s: int | None = field(default=None)

    @property
    def value_s(self) -> int | None:
        return None if self.max_event_s is None else self.max_event_s - self.allowed_lateness_s

    @property
    def closed_until_s(self) -> int | None:
        """End of the newest closed bucket (a bucket boundary), or None before any message."""
        wm = self.value_s
        return None if wm is None else wm - wm % self.bucket_s

    def is_late(self, event_s: int) -> bool:
        closed = self.closed_until_s
        if closed is None:
            return False
        bucket_end = event_s - event_s % self.bucket_s + self.bucket_s
        return bucket_end <= closed

    def observe(self, event_s: int) -> bool:
        """Record a message; returns False (and records nothing) if it is late."""
        if self.is_late(event_s):
            return False
        if self.max_event_s is None or event_s > self.max_event_s:
            self.max_event_s = event_s
        return True

    def advance_to(self, event_s: int) -> None:
        """Move event time forward without a message (idle source, end of replay)."""
        if self.max_event_s is None or event_s > self.max_event_s:
            self.max_event_s = event_s

    def newly_closed(self) -> list[int]:
        """Bucket boundaries closed since the previous call, oldest first (bounded)."""
        closed = self.closed_until_s
        if closed is None:
            return []
        if self._reported_until_s is None:
            self._reported_until_s = closed
            return [closed]
        start = self._reported_until_s + self.bucket_s
        if closed < start:
            return []
        first = max(start, closed - (MAX_BOUNDARIES_PER_ADVANCE - 1) * self.bucket_s)
        self._reported_until_s = closed
        return list(range(first, closed + 1, self.bucket_s))
