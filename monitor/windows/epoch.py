"""Noticing that Redis lost the windows under a running daemon (a restart without persistence, a FLUSHALL,
a failover to an empty replica).

Measured before this module: the demo replayed into Redis with a FLUSHALL half-way went on without a word,
and the Wells Fargo surge it should page on never fired (its baseline was gone): a monitor blind for a
day, silently. Now the namespace holds one marker key, ``{P}:epoch``, with no TTL (the only key without
one, so retention never removes it). The store adopts it at start (creating it on an empty Redis is a first
start, not a loss) and reads it again at most every ``check_every_s`` while it writes. Gone, or changed by
another instance that found it gone first, means the data was lost: an ERROR line that says what is now
blind and for how long, ``finsent_window_store_resets_total``, and the Prometheus rule
``FinsentWindowStoreLostData``. Nothing can bring the lost buckets back; the point is that people know.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import structlog

from monitor import metrics
from monitor.redis_connect import RedisClient

log = structlog.get_logger(__name__)

CHECK_EVERY_S = 30.0
"""How often a writing store reads the marker (one GET): how late a loss is noticed at most."""


class StoreEpoch:
    """The marker of one key namespace; ``check`` says whether it vanished since the last look."""

    def __init__(self, key: str, *, check_every_s: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.check_every_s = check_every_s
        self._clock = clock
        self._token: str | None = None
        self._checked_at: float | None = None

    async def adopt(self, client: RedisClient) -> None:
        """At start: the marker as it is now (created when absent, which is how every namespace begins)."""
        self._token = await self._ensure(client)
        self._checked_at = self._clock()

    def due(self) -> bool:
        return self._checked_at is None or self._clock() - self._checked_at >= self.check_every_s

    async def check(self, client: RedisClient) -> bool:
        """True (once per loss) when the marker is gone or was replaced since ``adopt`` or the last check."""
        self._checked_at = self._clock()
        token = await self._ensure(client)
        lost = self._token is not None and token != self._token
        self._token = token
        return lost

    async def _ensure(self, client: RedisClient) -> str:
        """The marker's token, written first if absent: one ``SET NX GET`` round trip (Redis >= 7.0)."""
        fresh = secrets.token_hex(8)
        found = await client.set(self.key, fresh, nx=True, get=True)
        return fresh if found is None else str(found)


def report_loss(url: str, retention_s: int) -> None:
    metrics.WINDOW_STORE_RESETS.inc()
    log.error("window_store_lost_data", store=url, retention_s=retention_s,
              impact="windows, baselines, alert state and dedup markers written before now are gone: detection "
                     "is blind to what came before and its baselines rebuild from here (alerts.baseline_buckets "
                     "buckets); a message redelivered from before may count again",
              fix="give Redis persistence (appendonly yes) and a maxmemory-policy of noeviction")
