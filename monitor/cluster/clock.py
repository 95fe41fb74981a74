"""This host's clock against the Redis server's (``TIME``), measured at each cluster heartbeat.

Each instance caps its partitions' event time at its wall clock + ``max_ahead_s`` (monitor/engine/watermark.py)
and the cluster watermark is the minimum over partitions, so one member whose clock runs 10 min slow held every
page of the whole cluster back by 10 min, silently (found by review). The heartbeat already reads ``TIME``: the
offset is exported (``finsent_clock_offset_seconds``), warned about, and a slow host's cap follows Redis's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from monitor import metrics
from monitor.durations import iso_utc

log = structlog.get_logger(__name__)

CLOCK_OFFSET_WARN_S = 5.0
"""A host this far off the Redis server's clock is warned about: NTP keeps hosts within milliseconds, and a
few seconds of skew already delay bucket closes (and every page of the cluster) by as much."""
CLOCK_WARN_EVERY_S = 600.0
"""At most one warning per this long (the heartbeat runs every few seconds)."""


class ClockOffset:
    def __init__(self, *, wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.offset_s: float | None = None
        """Redis's clock minus this host's, as of the last heartbeat (None before the first)."""
        self._warned_at = float("-inf")

    def measure(self, server_ms: int, sent_s: float, received_s: float) -> None:
        """A ``TIME`` read between ``sent_s`` and ``received_s`` (this host's clock): it was taken about halfway,
        so the round trip adds at most half itself to the error."""
        self.offset_s = offset_s = server_ms / 1000 - (sent_s + received_s) / 2
        metrics.CLOCK_OFFSET.set(offset_s)
        now = self.monotonic()
        if abs(offset_s) <= CLOCK_OFFSET_WARN_S or now - self._warned_at < CLOCK_WARN_EVERY_S:
            return
        self._warned_at = now
        log.warning("host_clock_off", offset_s=round(offset_s, 3), host_clock=iso_utc(int(received_s)),
                    redis_clock=iso_utc(server_ms // 1000),
                    why="this host's clock is behind the Redis server's: event time on its partitions is capped by "
                        "Redis's clock instead" if offset_s > 0 else
                        "this host's clock is ahead of the Redis server's: a record dated up to the difference "
                        "ahead closes buckets early on its partitions",
                    fix="check this host's NTP (timedatectl, chronyc tracking); every cluster member (and the Redis "
                        "server) needs a synchronised clock")

    def now_s(self) -> float:
        """The wall clock for the event-time cap: this host's, moved forward to Redis's when it is behind. Never
        back: a host ahead keeps its own (looser) cap as before, so this can only remove a delay, never add one
        when it is Redis's clock that is behind."""
        return self.wall_clock() + max(0.0, self.offset_s or 0.0)
