"""Records a partition lost before this daemon read them: the broker's retention deleted them.

A daemon down (or lagging) longer than a topic's ``retention.ms`` finds its committed offset, or its
fetch position, below the log start. The consumer then resets (``kafka.auto_offset_reset``) and reads
on from the log start, or from the end with ``latest``, and aiokafka says so only at INFO. Those
messages are in no window and no backtest: the desk must be told, with how many and where.

How a loss is told apart from an ordinary offset gap (transaction markers and compaction also skip
offsets): every jump past the expected next offset is *suspected*, and confirmed only when the
partition's log start, asked of the broker *after* the jump was seen, lies beyond the expected offset.
Log starts only grow, so an expiry that caused the jump is always confirmed; a marker or a compacted
record below the log start is not a record anyone could have read. The broker is asked at most once per
``VERIFY_INTERVAL_S`` for every suspected partition together, off the per-record path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass

VERIFY_INTERVAL_S = 1.0
"""Least time between two log-start queries (a compacted or transactional topic jumps on every fetch)."""
MAX_SUSPECTS_PER_PARTITION = 16
"""Jumps of one partition kept between two queries (bounded memory); more in one interval are not checked."""


@dataclass(frozen=True, slots=True)
class Loss:
    """Offsets ``[expected, first_read)`` of ``partition`` were never read; the log now starts at ``log_start``."""

    partition: Hashable
    expected: int
    first_read: int
    log_start: int

    @property
    def records(self) -> int:
        return self.first_read - self.expected


LogStarts = Callable[[list[Hashable]], Awaitable[dict[Hashable, int]]]
"""Asks the broker for the current log start offset of each partition given."""


class GapWatch:
    """Per partition: the next offset expected, and any jump past it waiting for the broker's word."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[Hashable, int] = {}
        self._suspects: dict[Hashable, list[tuple[int, int]]] = {}
        self._asked_at = float("-inf")

    def start_at(self, partition: Hashable, committed: int | None) -> None:
        """A partition assigned: its reading resumes at ``committed`` (None: no commit, nothing expected)."""
        self._suspects.pop(partition, None)
        if committed is None:
            self._next.pop(partition, None)
        else:
            self._next[partition] = committed

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """Partitions revoked: their new owner watches them."""
        for partition in partitions:
            self._next.pop(partition, None)
            self._suspects.pop(partition, None)

    def observe(self, partition: Hashable, first: int, last: int) -> None:
        """A fetch of ``partition`` returned offsets ``first..last``."""
        expected = self._next.get(partition)
        if expected is not None and first > expected:
            jumps = self._suspects.setdefault(partition, [])
            if len(jumps) < MAX_SUSPECTS_PER_PARTITION:  # past it, a compacted topic's jumps (an expiry is
                jumps.append((expected, first))  # one jump, seen within a query of the first ones)
        self._next[partition] = last + 1

    @property
    def suspected(self) -> int:
        """Jumps waiting for the broker's word."""
        return sum(len(jumps) for jumps in self._suspects.values())

    async def verify(self, log_starts: LogStarts) -> list[Loss]:
        """Confirm or clear the suspected jumps (at most once per ``VERIFY_INTERVAL_S``); a failed query
        keeps them for the next call. Returns the confirmed losses."""
        now = self._clock()
        if not self._suspects or now - self._asked_at < VERIFY_INTERVAL_S:
            return []
        self._asked_at = now
        asked = {partition: list(jumps) for partition, jumps in self._suspects.items()}
        starts = await log_starts(list(asked))
        losses: list[Loss] = []
        for partition, jumps in asked.items():
            held = self._suspects.get(partition)
            if partition not in starts or held is None or held[: len(jumps)] != jumps:
                continue  # not answered, or revoked / re-assigned meanwhile
            del held[: len(jumps)]
            if not held:
                del self._suspects[partition]
            losses.extend(Loss(partition, expected, first, starts[partition])
                          for expected, first in jumps if starts[partition] > expected)
        return losses
