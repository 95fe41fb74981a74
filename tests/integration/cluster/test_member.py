"""ClusterMember on a real Redis with a scripted source: what it publishes, and when."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from monitor.cluster.member import ClusterMember
from monitor.cluster.watermark import ClusterWatermark
from monitor.engine.watermark import Watermark
from tests.kafka_broker import unique_name

pytestmark = pytest.mark.integration


class ScriptedSource:
    """A SharedSource whose partitions, durable offsets and broker end offsets the test sets."""

    def __init__(self) -> None:
        self.owned: frozenset[Hashable] = frozenset()
        self.durable: dict[str, int] = {}
        self.ends: dict[str, int] = {}

    def lanes(self) -> frozenset[Hashable]:
        return self.owned

    async def lagging(self, lanes: frozenset[Hashable]) -> set[Hashable]:
        return set()

    def lane_key(self, lane: Hashable) -> str:
        return str(lane)

    def partitions(self) -> frozenset[str] | None:
        return frozenset({"t:0", "t:1"})

    async def durable_offsets(self) -> dict[str, int]:
        return {k: v for k, v in self.durable.items() if k in self.owned}

    async def has_records_beyond(self, offsets: dict[str, int]) -> bool:
        return any(self.ends.get(k, 0) > v for k, v in offsets.items())


def _member(cluster: ClusterWatermark, source: ScriptedSource) -> tuple[ClusterMember, Watermark]:
    watermark = Watermark(bucket_s=60, allowed_lateness_s=0)
    return ClusterMember(cluster, source, watermark), watermark


async def test_marks_cover_only_durable_data_and_idle_partitions_carry_their_offsets(redis_url: str) -> None:
    async with ClusterWatermark(redis_url, unique_name("cm"), lease_s=5) as cluster:
        source = ScriptedSource()
        member, wm = _member(cluster, source)
        source.owned = frozenset({"t:0", "t:1"})
        wm.expect_lanes(source.owned)
        await member.sync_lanes(source.owned)
        assert await member.evaluable_until_s(beyond_s=0) is None  # no partition has a mark yet
        wm.observe(630, "t:0")
        wm.observe(650, "t:1")
        snapshot, closes = member.snapshot(), wm.newly_closed()
        await member.publish()
        assert await member.evaluable_until_s(beyond_s=0) is None  # read, but not durable yet
        await member.durable(snapshot, closes)
        assert await member.evaluable_until_s(beyond_s=0) == 600
        assert not wm.observe(599, "t:0"), "what was published final is late here"
        source.durable["t:1"] = 7
        wm.mark_idle({"t:1"})
        await member.publish()
        assert await member.evaluable_until_s(beyond_s=0) == 600
        source.ends["t:1"] = 8  # a record landed on the idle partition, not fetched yet
        assert await member.evaluable_until_s(beyond_s=0) is None


async def test_an_adopted_partition_starts_from_its_previous_owners_promise(redis_url: str) -> None:
    prefix = unique_name("cm")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="old") as old, \
            ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="new") as new:
        await old.publish({"t:0": (600, None), "t:1": (540, None)})
        source = ScriptedSource()
        member, wm = _member(new, source)
        source.owned = frozenset({"t:1"})
        wm.expect_lanes(source.owned)
        await member.sync_lanes(source.owned)
        assert not wm.observe(500, "t:1"), "the old owner promised t:1 final up to 540"
        assert wm.observe(545, "t:1")
        assert wm.observe(700, "t:1")
        await member.durable(member.snapshot(), wm.newly_closed())
        assert await old.promises({"t:1"}) == {"t:1": 660}  # the higher of the two live promises
        source.owned = frozenset()
        await member.sync_lanes(source.owned)  # revoked: its mark goes at once
        assert await old.promises({"t:1"}) == {"t:1": 540}


async def test_an_idle_partition_holds_a_quiet_cluster_to_its_owner_unless_the_owner_has_no_event_time_of_its_own(
    redis_url: str,
) -> None:
    """Found by CI: a member whose partitions came back empty after a rebalance kept publishing its old watermark
    on them, below the cluster's cursor, and detection never moved again. Found by review of the first fix: an
    idle member at the cursor must still hold it (releasing it let the cluster run at a faster member's pace)."""
    prefix = unique_name("cm")
    async with ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="behind") as behind, \
            ClusterWatermark(redis_url, prefix, lease_s=5, instance_id="ahead") as ahead:
        await ahead.publish({"t:0": (1200, None)})
        source = ScriptedSource()
        member, wm = _member(behind, source)
        source.owned = frozenset({"t:1"})
        wm.expect_lanes(source.owned)
        await member.sync_lanes(source.owned)
        wm.observe(630, "t:1")
        await member.durable(member.snapshot(), wm.newly_closed())
        source.durable["t:1"] = 7
        wm.mark_idle({"t:1"})
        await member.publish()
        assert await member.evaluable_until_s(beyond_s=0) == 600, "its own watermark paces a quiet partition"
        await behind.set_evaluated_until(600)
        await member.refresh_floor()
        await member.publish()
        assert await member.evaluable_until_s(beyond_s=600) is None, "still its pace, at the cursor too"
        for lanes in (frozenset(), frozenset({"t:1"})):  # stepped aside, then the partition came back, empty
            source.owned = lanes
            wm.expect_lanes(lanes)
            await member.sync_lanes(lanes)
        wm.mark_idle({"t:1"})
        await member.publish()
        assert await member.evaluable_until_s(beyond_s=600) == 1200
