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

The marker cannot see Redis going back to an older copy of the namespace (a restart from a minutes-old RDB
snapshot, a failover to a lagging replica, an AOF that lost its last second): the old copy holds the same
marker. A review measured it: 10 of 16 messages gone, Kafka offsets already committed past them, no word.
So every apply call also INCRs ``{P}:gen`` (no TTL either) and returns it: a value lower than the highest
this store saw is a rollback, noticed at the next write. The store's writes run one at a time (the
pipeline's single writer), so its replies are in Redis' order.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import structlog
from redis.exceptions import ResponseError

from monitor import metrics
from monitor.redis_connect import RedisClient, node_values

log = structlog.get_logger(__name__)

CHECK_EVERY_S = 30.0
"""How often a writing store reads the marker (one GET): how late a loss is noticed at most."""


class StoreEpoch:
    """The marker of one key namespace; ``check`` says whether it vanished since the last look."""

    def __init__(self, key: str, generation_key: str, *, check_every_s: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.generation_key = generation_key
        self.check_every_s = check_every_s
        self._clock = clock
        self._token: str | None = None
        self._checked_at: float | None = None
        self._evicted: int | None = None
        self._generation: int | None = None
        self.created_at_start = False
        """This start wrote the marker: the namespace was empty (a first start, or data lost while every instance
        was down: ``report_loss_while_down`` tells them apart by the Kafka group's committed offsets)."""

    async def adopt(self, client: RedisClient) -> None:
        """At start: the marker as it is now (created when absent, which is how every namespace begins)."""
        self._token, self.created_at_start = await self._ensure(client)
        self._checked_at = self._clock()
        found = await client.get(self.generation_key)
        self._generation = int(found) if found is not None and str(found).isdigit() else None

    def due(self) -> bool:
        return self._checked_at is None or self._clock() - self._checked_at >= self.check_every_s

    async def check(self, client: RedisClient) -> bool:
        """True (once per loss) when the marker is gone or was replaced since ``adopt`` or the last check."""
        self._checked_at = self._clock()
        token, _ = await self._ensure(client)
        lost = self._token is not None and token != self._token
        self._token = token
        if lost:
            self._generation = None  # counting starts again in the new namespace: not a rollback as well
        return lost

    def went_back(self, generation: int) -> int:
        """The write generation an apply call returned: how many calls' writes went missing since the highest
        this store saw (0: none; a rollback, or the namespace emptied, otherwise)."""
        highest, self._generation = self._generation, generation
        return 0 if highest is None or generation > highest else highest - generation + 1

    async def evictions(self, client: RedisClient) -> int:
        """Keys Redis evicted since the last call (0 on the first, or where INFO is refused)."""
        now = await evicted_keys(client)
        before, self._evicted = self._evicted, now
        if now is None or before is None:
            return 0
        return now if now < before else now - before  # lower: Redis restarted, and its count with it

    async def _ensure(self, client: RedisClient) -> tuple[str, bool]:
        """The marker's token, written first if absent, and whether this call wrote it. A plain GET first: Redis
        refuses every write while it is full, read-only or unable to persist, even a ``SET NX`` of a key that
        exists, so checking with ``SET NX GET`` alone failed each check (and every start) in exactly the outages
        the daemon should ride out."""
        found = await client.get(self.key)
        if found is not None:
            return str(found), False
        fresh = secrets.token_hex(8)
        winner = await client.set(self.key, fresh, nx=True, get=True)  # Redis >= 7.0; another instance may win
        return (fresh, True) if winner is None else (str(winner), False)


async def evicted_keys(client: RedisClient) -> int | None:
    """Keys Redis has evicted since it started (every node of a cluster together), None when INFO is refused."""
    try:
        found = node_values(await client.info("stats"), "evicted_keys")
    except ResponseError:
        return None
    return sum(int(n) for n in found) if found else None


def warn_if_evicting(url: str, policy: str | None) -> None:
    """Under an eviction policy Redis removes keys when full: every key of the daemon but the marker has a TTL, so
    ``volatile-*`` policies (the default of several managed services) empty windows and dedup markers and leave the
    marker, and the loss went unnoticed: counts wrong, redelivered messages counted twice (found by review)."""
    if policy is not None and policy != "noeviction":
        log.error("redis_evicts_keys", store=url, maxmemory_policy=policy,
                  impact="when Redis is full it deletes windows, baselines and dedup markers without a word: counts "
                         "go wrong and redelivered messages count twice",
                  fix="set maxmemory-policy noeviction (a full Redis then pauses the daemon, the reason on /readyz)")


def report_evictions(url: str, evicted: int) -> None:
    log.error("redis_evicted_keys", store=url, evicted=evicted,
              impact="Redis deleted keys to make room since the last check; if they were this daemon's, windows, "
                     "baselines or dedup markers are incomplete",
              fix="set maxmemory-policy noeviction and give Redis more memory (or lower windows.retention_s)")


def report_loss_while_down(url: str, retention_s: int, partition: str, committed: int) -> None:
    """The store started empty while the Kafka group had read before: Redis lost its data while every instance was
    down (or ``windows.key_prefix`` changed). Before, that looked like a first start, and nobody knew detection was
    blind (a known limitation until found here)."""
    metrics.WINDOW_STORE_RESETS.inc()
    log.error("window_store_lost_data", store=url, retention_s=retention_s, when="while the daemon was down",
              evidence=f"the window store had no data at start, but the Kafka consumer group had committed offsets "
                       f"({partition} at {committed})",
              impact="windows, baselines, alert state and dedup markers from before this start are gone (or "
                     "windows.key_prefix changed): detection is blind to what came before and its baselines rebuild "
                     "from here",
              fix="give Redis persistence (appendonly yes) and a maxmemory-policy of noeviction; if the prefix "
                  "changed on purpose, this is expected once")


def report_rollback(url: str, lost_calls: int) -> None:
    """Counted as a loss (``FinsentWindowStoreLostData`` pages): what was lost is the newest data, not the past."""
    metrics.WINDOW_STORE_RESETS.inc()
    log.error("window_store_rolled_back", store=url, lost_apply_calls=lost_calls,
              evidence="the namespace's write generation ({P}:gen) went back: Redis is serving an older copy of its "
                       "data (a restart from an RDB snapshot, a failover to a replica that lagged, an AOF that lost "
                       "its last writes)",
              impact="messages counted since that copy was taken are gone from the windows, and their Kafka offsets "
                     "were committed: they will not come again, so recent counts are short and a surge in them may "
                     "not page; alert states and the detection cursor may have gone back too (notices may repeat)",
              fix="give Redis appendonly yes (appendfsync always loses nothing, everysec up to a second) and fail "
                  "over only to an in-sync replica; to restore the counts, replay the lost span into the daemon's "
                  "namespace (deploy/RUNBOOK.md, FinsentWindowStoreLostData)")


def report_loss(url: str, retention_s: int) -> None:
    metrics.WINDOW_STORE_RESETS.inc()
    log.error("window_store_lost_data", store=url, retention_s=retention_s,
              impact="windows, baselines, alert state and dedup markers written before now are gone: detection "
                     "is blind to what came before and its baselines rebuild from here (alerts.min_history_s with "
                     "multi-scale detection, alerts.min_baseline_buckets buckets per bucket); a message "
                     "redelivered from before may count again",
              fix="give Redis persistence (appendonly yes) and a maxmemory-policy of noeviction")
