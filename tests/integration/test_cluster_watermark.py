"""ClusterWatermark against a real Redis: minimum over live instances, expiry, one leader at a time."""

from __future__ import annotations

import asyncio

import pytest

from monitor.cluster import NO_CONSTRAINT_S, ClusterView, ClusterWatermark
from tests.kafka_broker import unique_name

pytestmark = pytest.mark.integration


async def test_cluster_watermark_is_the_minimum_over_live_instances_and_waits_for_all(redis_url: str) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="a") as a, \
            ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="b") as b:
        await a.publish(600)
        assert await a.closed_until_s() is None  # b is alive but has not published: hold
        await b.publish(300)
        assert await a.closed_until_s() == 300
        await b.publish(900)
        assert await b.closed_until_s() == 600
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="c") as c:
        assert await c.closed_until_s() is None  # a and b left cleanly; c has not published
        await c.publish(NO_CONSTRAINT_S)
        assert await c.closed_until_s() is None  # nobody has data: nothing to evaluate


async def test_idle_claims_of_live_instances_are_read_with_the_watermarks_and_cleared_by_data(
    redis_url: str,
) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="busy") as busy, \
            ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="idle") as idle:
        await busy.publish(600)
        await idle.publish_idle({"news:1": 42})
        view = await busy.view()
        assert view.closed_until_s == 600  # the idle instance holds nobody back...
        assert view.idle_claims == ({"news:1": 42},)  # ...as of these offsets, which the leader checks
        await idle.publish(300)  # data arrived: a real watermark replaces the claim
        assert await busy.view() == ClusterView(300, ())
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="c") as c:
        assert (await c.view()).idle_claims == ()  # a clean stop withdraws the claim


async def test_an_instance_that_stops_heartbeating_drops_out(redis_url: str) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=0.3, instance_id="dead") as dead, \
            ClusterWatermark(redis_url, prefix, lease_s=30, instance_id="live") as live:
        await dead.publish(100)
        await live.publish(500)
        assert await live.closed_until_s() == 100
        await asyncio.sleep(0.5)  # "dead" misses its heartbeat
        assert await live.closed_until_s() == 500


async def test_only_one_instance_leads_until_its_lease_lapses(redis_url: str) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=0.4, instance_id="a") as a, \
            ClusterWatermark(redis_url, prefix, lease_s=0.4, instance_id="b") as b:
        assert await a.lead()
        assert not await b.lead()
        assert await a.lead()  # renewal
        await asyncio.sleep(0.6)
        assert await b.lead()  # a's lease lapsed
        assert not await a.lead()
