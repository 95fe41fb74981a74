"""ClusterWatermark against a real Redis: minimum over live instances, expiry, one leader at a time."""

from __future__ import annotations

import asyncio

import pytest

from monitor.cluster.watermark import ClusterView, ClusterWatermark
from tests.kafka_broker import unique_name

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """Each test on a standalone redis-server and on a real 3-master Redis Cluster."""
    return str(request.getfixturevalue("redis_cluster_url")) if request.param == "redis-cluster" else redis_url


ALL = ("news:0", "news:1")


async def test_cluster_watermark_is_the_minimum_over_every_partition_and_waits_for_all(redis_url: str) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="a") as a, \
            ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="b") as b:
        await a.publish({"news:0": (600, None)})
        assert (await a.view(ALL)).closed_until_s is None  # b is alive but has not published: hold
        await b.publish({})
        assert await a.view(ALL) == ClusterView(None, {}, frozenset({"news:1"}))  # news:1 has no mark: hold
        await b.publish({"news:1": (300, None)})
        assert (await a.view(ALL)).closed_until_s == 300
        await b.publish({"news:1": (900, None)})
        assert (await b.view(ALL)).closed_until_s == 600
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="c") as c:
        assert (await c.view(ALL)).closed_until_s is None  # a and b left cleanly: their marks went with them
        await c.publish({"news:0": (None, 5), "news:1": (None, 7)})
        assert await c.view(ALL) == ClusterView(None, {"news:0": 5, "news:1": 7})  # all idle, no data


async def test_idle_marks_constrain_by_their_owners_watermark_and_carry_their_offsets(redis_url: str) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="busy") as busy, \
            ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="idle") as idle:
        await busy.publish({"news:0": (600, None)})
        await idle.publish({"news:1": (None, 42)})
        assert await busy.view(ALL) == ClusterView(600, {"news:1": 42})  # checked by the leader
        await idle.publish({"news:1": (480, 42)})  # idle, but its owner's own data is at 480
        assert (await busy.view(ALL)).closed_until_s == 480


async def test_a_partition_marked_by_two_instances_counts_with_the_lower_mark(redis_url: str) -> None:
    """Mid-rebalance the old owner's mark may still be live: the lower promise wins, and the new
    owner inherits the old owner's promise so it judges lateness the same way."""
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="old") as old, \
            ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="new") as new:
        await old.publish({"news:0": (600, None), "news:1": (660, None)})
        assert await new.promises({"news:1"}) == {"news:1": 660}
        await new.publish({"news:1": (540, None)})
        assert (await new.view(ALL)).closed_until_s == 540


async def test_an_instance_that_stops_heartbeating_drops_out_with_its_marks(redis_url: str) -> None:
    prefix = unique_name("cw")
    async with ClusterWatermark(redis_url, prefix, lease_s=0.3, instance_id="dead") as dead, \
            ClusterWatermark(redis_url, prefix, lease_s=30, instance_id="live") as live:
        await dead.publish({"news:0": (100, None)})
        await live.publish({"news:0": (500, None), "news:1": (500, None)})
        assert (await live.view(ALL)).closed_until_s == 100
        await asyncio.sleep(0.5)  # "dead" misses its heartbeat
        assert (await live.view(ALL)).closed_until_s == 500
        assert await live.promises({"news:0"}) == {"news:0": 500}


async def test_heartbeats_are_judged_on_the_redis_clock_not_a_members_own(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: a member whose clock ran 20 s behind (lease 15 s) was judged dead at every view, its
    marks deleted, and the cluster watermark never formed."""
    import time

    prefix = unique_name("cw")
    real = time.time
    async with ClusterWatermark(redis_url, prefix, lease_s=15, instance_id="leader") as leader:
        monkeypatch.setattr(time, "time", lambda: real() - 20)  # the member's host clock
        async with ClusterWatermark(redis_url, prefix, lease_s=15, instance_id="member") as member:
            await member.publish({"news:1": (600, None)})
            monkeypatch.setattr(time, "time", real)
            await leader.publish({"news:0": (900, None)})
            assert (await leader.view(ALL)).closed_until_s == 600


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


async def test_the_evaluated_cursor_only_moves_forward(redis_url: str) -> None:
    async with ClusterWatermark(redis_url, unique_name("cw"), lease_s=5) as cw:
        await cw.publish_first(300)
        await cw.set_evaluated_until(600)
        assert await cw.first_boundary_s() is None, "first boundaries go once a cursor exists (they piled up)"
        await cw.set_evaluated_until(300)  # a stale leader finishing late
        assert await cw.evaluated_until_s() == 600
        await cw.set_evaluated_until(660)
        assert await cw.evaluated_until_s() == 660
