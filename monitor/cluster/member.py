"""One instance's side of cluster mode: the marks it publishes and how far its leader may evaluate.

The pipeline tells the member when its partitions change (``sync_lanes``), what its watermark had
closed when a batch was read (``snapshot``) and when that batch became durable (``durable``). Marks
are published only for durable data (see monitor/cluster/watermark.py for what a mark promises); each data
mark is also recorded as this instance's lateness promise for the partition, so a later record the
mark declared final is dead-lettered as ``late`` instead of counted after its bucket was judged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from monitor import metrics
from monitor.cluster.watermark import ClusterWatermark, LaneMark
from monitor.engine.watermark import Watermark
from monitor.types import SharedSource


class ClusterMember:
    def __init__(self, cluster: ClusterWatermark, source: SharedSource, watermark: Watermark) -> None:
        self.cluster = cluster
        self.source = source
        self.watermark = watermark
        watermark.per_lane_promises = True
        if watermark.wall_clock is not None:  # a host whose clock runs slow must not hold the whole cluster back
            watermark.wall_clock = cluster.clock.now_s
        self._lanes: frozenset[Hashable] = frozenset()
        self._lane_closed: dict[Hashable, int] = {}
        """Per owned lane: what its durable data has closed."""
        self._closed_s: int | None = None
        """What this instance's durable data has closed over all its lanes (its own watermark)."""
        self._published: dict[str, LaneMark] | None = None
        self._published_first = False
        self._sync_lock = asyncio.Lock()
        self._lanes_published = True
        """False between a change of lanes and the publish of the marks it changed (a retried ``sync_lanes``
        whose publish failed must publish again: it returned early and a revoked partition's mark stayed)."""

    async def sync_lanes(self, lanes: frozenset[Hashable]) -> None:
        """Partitions changed hands. Adopted ones start from their previous owner's live promise and
        the cluster's evaluated buckets *before* any of their data is judged; revoked ones leave
        this instance's marks at once, so no stale mark covers a partition someone else now reads.
        Serialised: the reader and the scheduler both call this, and neither may judge an adopted
        partition's records before its inheritance is in place."""
        async with self._sync_lock:
            if lanes == self._lanes:
                if not self._lanes_published:
                    await self.publish()
                    self._lanes_published = True
                return
            self._lanes_published = False
            adopted = lanes - self._lanes
            for gone in self._lanes - lanes:
                self._lane_closed.pop(gone, None)
            self._lanes = self._lanes & lanes  # revoked ones leave now; adopted ones once they inherited
            if adopted:
                keys = {self.source.lane_key(lane): lane for lane in adopted}
                for key, closed in (await self.cluster.promises(keys)).items():
                    self.watermark.promise(keys[key], closed)
                await self.refresh_floor()
            self._lanes = lanes
            await self.publish()
            self._lanes_published = True

    async def refresh_floor(self) -> None:
        """Buckets the leader has evaluated are closed here too."""
        evaluated = await self.cluster.evaluated_until_s()
        if evaluated is not None:
            self.watermark.close_through(evaluated)

    def snapshot(self) -> dict[Hashable, int]:
        """Per lane, what its data has closed as of now (carried with a batch until it is durable)."""
        return self.watermark.lane_closed_s()

    async def durable(self, snapshot: dict[Hashable, int], closes: list[int]) -> None:
        """A batch read with this ``snapshot`` (which closed ``closes``) is durable: publish what changed."""
        for lane, closed in snapshot.items():
            if lane in self._lanes and closed > self._lane_closed.get(lane, closed - 1):
                self._lane_closed[lane] = closed
        if closes:
            if not self._published_first:
                await self.cluster.publish_first(closes[0])
                self._published_first = True
            self._closed_s = max(closes[-1], self._closed_s or closes[-1])
        await self.publish(only_if_changed=True)

    def _idle_closed_s(self) -> int | None:
        """What an idle partition of this instance holds the cluster to: its own watermark, so a quiet cluster moves at
        the pace of its slowest member's idle sweep (the one whose data is newest, as one daemon would); None (no
        constraint) while its partitions carry no event time of its own, as a member that has read nothing yet. A
        member whose partitions came back empty after a rebalance (it had stepped aside) has nothing to sweep from:
        its old watermark stayed below the cluster's cursor and its idle marks held detection there for good (found
        by CI). Releasing idle marks once the cursor reached them instead let a quiet cluster run at its fastest
        member's sweep and judge a slower member's on-time data late (found by review)."""
        return self._closed_s if self.watermark.max_event_s is not None else None

    async def _marks(self) -> dict[str, LaneMark]:
        idle = self.watermark.idle_lanes
        offsets = await self.source.durable_offsets() if idle & self._lanes else {}
        idle_closed = self._idle_closed_s()
        marks: dict[str, LaneMark] = {}
        for lane in self._lanes:
            key = self.source.lane_key(lane)
            if lane in idle and key in offsets:
                marks[key] = (idle_closed, offsets[key])
            elif lane in self._lane_closed and self._closed_s is not None:
                promised = min(self._lane_closed[lane], self._closed_s)
                self.watermark.promise(lane, promised)  # judged final here before anyone relies on it
                marks[key] = (promised, None)
        return marks

    async def publish(self, *, only_if_changed: bool = False) -> None:
        """Publish the marks (doubles as the heartbeat when they did not change)."""
        marks = await self._marks()
        if only_if_changed and marks == self._published:
            return
        await self.cluster.publish(marks)
        self._published = marks

    async def evaluable_until_s(self, beyond_s: int) -> int | None:
        """Leader: how far past ``beyond_s`` detection may go now -- the cluster watermark, unless a
        partition has no mark or records landed past an idle mark (their owner has not fetched them
        yet). The broker is asked only when there is something new to evaluate."""
        partitions = self.source.partitions()
        if partitions is None:
            return None
        view = await self.cluster.view(partitions)
        metrics.CLUSTER_UNMARKED_PARTITIONS.set(len(view.unmarked))
        if view.closed_until_s is None or view.closed_until_s <= beyond_s:
            return None
        backlog = bool(view.idle_claims) and await self.source.has_records_beyond(view.idle_claims)
        metrics.CLUSTER_IDLE_BACKLOG.set(int(backlog))
        return None if backlog else view.closed_until_s
