"""The heartbeat measures this host's clock against the Redis server's ``TIME`` (one script call, no extra trip)."""

from __future__ import annotations

import pytest

from monitor.cluster.watermark import ClusterWatermark
from tests.kafka_broker import unique_name

pytestmark = pytest.mark.integration


async def test_joining_the_cluster_measures_the_hosts_clock_against_redis(redis_url: str) -> None:
    async with ClusterWatermark(redis_url, unique_name("clock"), lease_s=5) as cluster:
        assert cluster.clock.offset_s is not None and abs(cluster.clock.offset_s) < 1  # same host: same clock
        await cluster.publish({})
        assert abs(cluster.clock.offset_s) < 1
