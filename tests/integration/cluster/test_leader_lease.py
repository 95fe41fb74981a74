"""The detection leader keeps its lease through a pass longer than the lease, and stops once it lost it (found by
review: a 0.8 s pass under a 2 s lease had 3 instances evaluating at once, and both leaders delivered)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from monitor.cluster.watermark import ClusterWatermark
from monitor.engine.batching import MicroBatcher
from monitor.engine.pipeline import Pipeline
from monitor.windows.memory import MemoryWindowStore
from tests.fakes import CollectingDeadLetter, ListSource, RecordingClassifier
from tests.kafka_broker import unique_name

pytestmark = pytest.mark.integration

BUCKET_S = 60
LEASE_S = 0.5


class SlowEvaluator:
    """Takes ``step_s`` per evaluation point, then runs ``after`` (if any) with the point."""

    def __init__(self, step_s: float, after: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.step_s = step_s
        self.after = after
        self.points: list[int] = []

    async def evaluate(self, now_s: int) -> Sequence[object]:
        await asyncio.sleep(self.step_s)
        self.points.append(now_s)
        if self.after is not None:
            await self.after(now_s)
        return []


class LeaderSide:
    """What a leader pass and the cluster tick use of a ClusterMember: the cluster watermark stands at ``until_s``."""

    def __init__(self, cluster: ClusterWatermark, until_s: int) -> None:
        self.cluster = cluster
        self.until_s = until_s

    async def evaluable_until_s(self, beyond_s: int) -> int | None:
        return self.until_s if self.until_s > beyond_s else None

    async def refresh_floor(self) -> None:
        return None

    async def publish(self) -> None:
        await self.cluster.heartbeat()


@contextlib.asynccontextmanager
async def _pipeline(evaluator: SlowEvaluator) -> AsyncIterator[Pipeline]:
    async with MicroBatcher(RecordingClassifier(), max_batch_size=1, max_wait_ms=1, max_queue_messages=10) as batcher:
        yield Pipeline(ListSource([]), batcher, MemoryWindowStore(bucket_s=BUCKET_S, retention_s=10**6),
                       CollectingDeadLetter(), evaluator, allowed_lateness_s=0, max_batch_size=1, max_wait_ms=1,
                       max_in_flight_batches=1)


async def _leads_meanwhile(other: ClusterWatermark, pass_: asyncio.Task[None]) -> bool:
    """Whether ``other`` takes the lead at any time while ``pass_`` runs."""
    while not pass_.done():
        if await other.lead():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_catch_up_pass_longer_than_the_lease_renews_it_between_points(redis_url: str) -> None:
    prefix = unique_name("lease")
    evaluator = SlowEvaluator(step_s=0.05)
    async with ClusterWatermark(redis_url, prefix, lease_s=LEASE_S, instance_id="a") as a, \
            ClusterWatermark(redis_url, prefix, lease_s=LEASE_S, instance_id="b") as b, _pipeline(evaluator) as pipe:
        await a.set_evaluated_until(0)
        assert await a.lead()
        pass_ = asyncio.create_task(pipe._evaluate_cluster(LeaderSide(a, 30 * BUCKET_S)))  # type: ignore[arg-type]
        assert not await _leads_meanwhile(b, pass_)  # 1.5 s of evaluation under a 0.5 s lease
        await pass_
        assert evaluator.points == list(range(BUCKET_S, 31 * BUCKET_S, BUCKET_S))
        assert pipe.is_leader and await a.evaluated_until_s() == 30 * BUCKET_S


async def test_the_cluster_tick_renews_the_lease_while_one_evaluation_point_outlasts_it(redis_url: str) -> None:
    prefix = unique_name("lease")
    evaluator = SlowEvaluator(step_s=4 * LEASE_S)
    async with ClusterWatermark(redis_url, prefix, lease_s=LEASE_S, instance_id="a") as a, \
            ClusterWatermark(redis_url, prefix, lease_s=LEASE_S, instance_id="b") as b, _pipeline(evaluator) as pipe:
        await a.set_evaluated_until(0)
        assert await a.lead()
        member = LeaderSide(a, BUCKET_S)
        pipe.member = member  # type: ignore[assignment]

        async def ticks() -> None:
            while True:
                await asyncio.sleep(LEASE_S / 3)
                await pipe.cluster_tick()

        ticking = asyncio.create_task(ticks())
        pass_ = asyncio.create_task(pipe._evaluate_cluster(member))  # type: ignore[arg-type]
        try:
            assert not await _leads_meanwhile(b, pass_)
        finally:
            ticking.cancel()
        await pass_
        assert pipe.is_leader and await a.evaluated_until_s() == BUCKET_S


async def test_a_leader_whose_lease_was_taken_stops_evaluating_and_leaves_the_cursor(redis_url: str) -> None:
    prefix = unique_name("lease")
    async with ClusterWatermark(redis_url, prefix, lease_s=LEASE_S, instance_id="a") as a:

        async def taken_after_the_third(point_s: int) -> None:
            if point_s == 3 * BUCKET_S:  # the lease lapsed (a pause) and another instance took it
                await a.redis.set(a.leader_key, "b", px=10_000)

        evaluator = SlowEvaluator(step_s=LEASE_S / 2, after=taken_after_the_third)
        async with _pipeline(evaluator) as pipe:
            await a.set_evaluated_until(0)
            await pipe._evaluate_cluster(LeaderSide(a, 30 * BUCKET_S))  # type: ignore[arg-type]
        assert evaluator.points == [BUCKET_S, 2 * BUCKET_S, 3 * BUCKET_S]
        assert not pipe.is_leader and await a.evaluated_until_s() == 0
