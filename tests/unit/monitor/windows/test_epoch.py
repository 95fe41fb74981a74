"""StoreEpoch's bookkeeping without Redis: the write generation and the eviction counter."""

from __future__ import annotations

from typing import Any, cast

from monitor.redis_connect import RedisClient
from monitor.windows.epoch import StoreEpoch


class InfoOnly:
    """Answers ``INFO stats`` with a settable ``evicted_keys``, as one Redis server does."""

    def __init__(self) -> None:
        self.evicted = 0

    async def info(self, section: str) -> dict[str, Any]:
        return {"evicted_keys": self.evicted}


def epoch() -> StoreEpoch:
    return StoreEpoch("{p}:epoch", "{p}:gen")


async def test_evictions_after_a_redis_restart_reset_its_counter_are_reported_not_swallowed() -> None:
    redis = InfoOnly()
    marks = epoch()
    client = cast(RedisClient, redis)
    redis.evicted = 4_455
    await marks.evictions(client)
    redis.evicted = 2_640  # restarted: INFO counts from 0 again, and 2,640 keys went since

    assert await marks.evictions(client) == 2_640
    redis.evicted = 2_700
    assert await marks.evictions(client) == 60


def test_a_rising_write_generation_is_no_rollback() -> None:
    marks = epoch()

    assert [marks.went_back(g) for g in (1, 2, 5, 6)] == [0, 0, 0, 0]  # 3-4: another instance's writes


def test_a_write_generation_not_above_the_highest_seen_counts_the_calls_lost() -> None:
    marks = epoch()
    for generation in (7, 8, 9):
        marks.went_back(generation)

    assert marks.went_back(7) == 3  # 7, 8 and 9 were lost; this call is the new 7
    assert marks.went_back(8) == 0  # counting goes on from the older copy
