"""A ``sync_lanes`` whose publish failed publishes when it is tried again (found by the regression review: the
retry returned early, since the lanes were already recorded, and a revoked partition's mark stayed)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from monitor.cluster.member import ClusterMember
from monitor.engine.watermark import Watermark


class FlakyCluster:
    def __init__(self) -> None:
        self.published: list[dict[str, object]] = []
        self.failures = 0

    async def promises(self, keys: Mapping[str, Hashable]) -> dict[str, int]:
        return {}

    async def evaluated_until_s(self) -> int | None:
        return None

    async def publish_first(self, boundary_s: int) -> None:
        return None

    async def publish(self, marks: Mapping[str, object]) -> None:
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("Redis down")
        self.published.append(dict(marks))


class Lanes:
    def lane_key(self, lane: Hashable) -> str:
        return f"t:{lane}"

    async def durable_offsets(self) -> dict[str, int]:
        return {}


async def test_a_revoked_partitions_mark_leaves_once_the_failed_publish_is_retried() -> None:
    cluster = FlakyCluster()
    member = ClusterMember(cluster, Lanes(), Watermark(bucket_s=300, allowed_lateness_s=0))  # type: ignore[arg-type]
    await member.sync_lanes(frozenset({0, 1}))
    await member.durable({0: 600, 1: 600}, [600])
    cluster.failures = 1
    with pytest.raises(RedisConnectionError):
        await member.sync_lanes(frozenset({0}))
    await member.sync_lanes(frozenset({0}))  # the retry
    assert cluster.published[-1] == {"t:0": (600, None)}
