"""How long the daemon's event loop was blocked: every part of the daemon shares that one loop.

Kafka heartbeats, the instance and leader leases, ``/healthz`` and every Redis call wait while one
callback runs long (a detection pass over many keys, a hostile text, the GC). A probe that asks to wake
every ``PROBE_INTERVAL_S`` and measures how late it woke sees any such stall, whatever caused it: the
lateness goes to ``finsent_event_loop_lag_seconds`` and a stall of ``STALL_S`` or more is logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from monitor import metrics
from monitor.lifecycle import Service, cancel_and_wait

log = structlog.get_logger(__name__)

PROBE_INTERVAL_S = 0.25
"""How often the probe asks to wake; its lateness is the loop's lag."""
STALL_S = 1.0
"""Lag logged as ``event_loop_stalled``: long enough to delay heartbeats and lease renewals visibly."""
STALL_LOG_EVERY_S = 60.0
"""At most one ``event_loop_stalled`` line this often; it counts the stalls it stands for."""


class LoopLagProbe(Service):
    """Measures the event loop's lateness while the daemon runs."""

    def __init__(self, interval_s: float = PROBE_INTERVAL_S, stall_s: float = STALL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.stall_s = stall_s
        self.worst_s = 0.0
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._unlogged = 0
        self._logged_at = float("-inf")

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._probe(), name="loop-lag-probe")

    async def _stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _probe(self) -> None:
        while True:
            asked = self._clock()
            await asyncio.sleep(self.interval_s)
            self.observe(max(0.0, self._clock() - asked - self.interval_s))

    def observe(self, lag_s: float) -> None:
        metrics.EVENT_LOOP_LAG.observe(lag_s)
        self.worst_s = max(self.worst_s, lag_s)
        if lag_s < self.stall_s:
            return
        self._unlogged += 1
        now = self._clock()
        if now - self._logged_at < STALL_LOG_EVERY_S:
            return
        log.warning("event_loop_stalled", lag_s=round(lag_s, 3), stalls=self._unlogged,
                    why="one callback held the event loop: Kafka heartbeats, leases, /healthz and Redis calls waited",
                    fix="if it repeats, look at finsent_event_loop_lag_seconds against detection passes "
                        "(alerts.*), the host's CPU steal, and classifier.worker = \"process\"")
        self._unlogged = 0
        self._logged_at = now
