"""The idle sweep never moves event time past a partition that has unread data or cannot be fetched."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Hashable

import pytest

from monitor.engine.batching import MicroBatcher
from monitor.engine.pipeline import Pipeline
from monitor.types import SourceRecord
from monitor.windows.memory import MemoryWindowStore
from tests.fakes import CollectingDeadLetter, ListSource, RecordingClassifier, msg

BUCKET_S = 60
LANES = frozenset({"p0", "p1"})


class PartitionedListSource(ListSource):
    def __init__(self, lagging: set[Hashable]) -> None:
        super().__init__([])
        self.behind = lagging

    def lanes(self) -> frozenset[Hashable]:
        return LANES  # type: ignore[return-value]

    async def lagging(self, lanes: frozenset[Hashable]) -> set[Hashable]:
        return set(lanes) & self.behind


async def _after_quiet(lagging: set[Hashable]) -> int | None:
    store = MemoryWindowStore(bucket_s=BUCKET_S, retention_s=10**6)
    pipe = Pipeline(PartitionedListSource(lagging), None, store, CollectingDeadLetter(), None,  # type: ignore[arg-type]
                    allowed_lateness_s=0, max_batch_size=1, max_wait_ms=1, max_in_flight_batches=10)
    await pipe._sync_lanes()
    pipe.watermark.observe(10_000, "p0")  # the fast partition
    pipe.watermark.observe(5_000, "p1")  # the slow one, with a backlog behind it
    pipe._lane_seen = {"p0": 0.0, "p1": 0.0}
    pipe._last_data_at = 0.0
    await pipe.idle_tick(now_monotonic=300.0, idle_after_s=2.0)  # five minutes without a record
    return pipe.watermark.value_s


@pytest.mark.parametrize("lagging", [{"p1"}, {"p0", "p1"}], ids=["slow-partition-has-backlog", "broker-unreachable"])
async def test_silence_with_lag_or_unknown_lag_does_not_advance_event_time(lagging: set[Hashable]) -> None:
    assert await _after_quiet(lagging) == 5_000


async def test_silence_with_every_partition_caught_up_follows_the_wall_clock() -> None:
    assert await _after_quiet(set()) == 10_000 + 300 - 2


async def test_time_while_a_partition_could_not_be_fetched_does_not_count_as_quiet() -> None:
    store = MemoryWindowStore(bucket_s=BUCKET_S, retention_s=10**6)
    source = PartitionedListSource({"p0", "p1"})  # the broker is unreachable...
    pipe = Pipeline(source, None, store, CollectingDeadLetter(), None,  # type: ignore[arg-type]
                    allowed_lateness_s=0, max_batch_size=1, max_wait_ms=1, max_in_flight_batches=10)
    await pipe._sync_lanes()
    pipe.watermark.observe(10_000, "p0")
    pipe.watermark.observe(10_000, "p1")
    pipe._lane_seen = {"p0": 0.0, "p1": 0.0}
    pipe._last_data_at = 0.0
    await pipe.idle_tick(now_monotonic=300.0, idle_after_s=2.0)
    source.behind = set()  # ...and back: caught up, but only just
    await pipe.idle_tick(now_monotonic=301.0, idle_after_s=2.0)
    assert pipe.watermark.value_s == 10_000
    await pipe.idle_tick(now_monotonic=310.0, idle_after_s=2.0)
    assert pipe.watermark.value_s is not None and 10_000 + 7 <= pipe.watermark.value_s <= 10_000 + 8


async def test_a_batch_waiting_for_room_in_the_queue_is_never_overtaken_by_the_idle_sweep() -> None:
    """The writer is stuck (a store outage) and a read batch waits to be queued: the sweep must not close its
    buckets, or detection evaluates them before the batch is written and never sees it."""
    store = MemoryWindowStore(bucket_s=BUCKET_S, retention_s=10**6)
    async with MicroBatcher(RecordingClassifier(), max_batch_size=8, max_wait_ms=1, max_queue_messages=100) as b:
        pipe = Pipeline(PartitionedListSource(set()), b, store, CollectingDeadLetter(), None,
                        allowed_lateness_s=0, max_batch_size=8, max_wait_ms=1, max_in_flight_batches=1)
        await pipe._sync_lanes()
        pipe.watermark.observe(10_000, "p1")
        await pipe._queue.put(None)  # the writer is stuck: the in-flight queue is full
        waiting = asyncio.create_task(pipe._submit([SourceRecord(msg("b", "x", 9_000), 0, lane="p0")]))
        await asyncio.sleep(0.1)
        before = pipe.watermark.value_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pipe.idle_tick(now_monotonic=time.monotonic() + 300, idle_after_s=2.0), 1)
        assert pipe.watermark.value_s == before and pipe._queue.qsize() == 1
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting


async def test_a_restart_in_a_quiet_spell_moves_event_time_on_from_the_detection_cursor() -> None:
    """Found by review: with nothing to read after a restart, event time stayed unset, so no bucket closed, firing
    alerts never resolved and FinsentDetectionLag paged with a consumer lag of 0."""
    from tests.unit.monitor.engine.test_pipeline import CursorEvaluator

    cursor_s = 10_020
    store = MemoryWindowStore(bucket_s=BUCKET_S, retention_s=10**6)
    pipe = Pipeline(PartitionedListSource(set()), None, store, CollectingDeadLetter(),  # type: ignore[arg-type]
                    CursorEvaluator(cursor_s), allowed_lateness_s=600, max_batch_size=1, max_wait_ms=1,
                    max_in_flight_batches=10)
    await pipe._resume_detection()
    await pipe._sync_lanes()
    assert pipe._resumed_at is not None
    started = pipe._resumed_at[1]
    await pipe.idle_tick(now_monotonic=started + 1.0, idle_after_s=2.0)
    assert pipe.watermark.value_s is None  # not quiet for long enough yet
    await pipe.idle_tick(now_monotonic=started + 302.0, idle_after_s=2.0)
    # the newest event before the restart was at least the lateness past the cursor (its bucket was closed), and
    # five quiet minutes went by since
    assert pipe.watermark.value_s == cursor_s + 600 + 300
    assert pipe.watermark.closed_until_s is not None and pipe.watermark.closed_until_s > cursor_s


async def test_after_a_restart_event_time_waits_until_every_lane_assigned_since_was_probed() -> None:
    from tests.unit.monitor.engine.test_pipeline import CursorEvaluator

    store = MemoryWindowStore(bucket_s=BUCKET_S, retention_s=10**6)
    source = PartitionedListSource({"p1"})  # p1 holds what was produced during the downtime
    pipe = Pipeline(source, None, store, CollectingDeadLetter(), CursorEvaluator(10_020),  # type: ignore[arg-type]
                    allowed_lateness_s=600, max_batch_size=1, max_wait_ms=1, max_in_flight_batches=10)
    await pipe._resume_detection()
    assert pipe._resumed_at is not None
    started = pipe._resumed_at[1]
    await pipe._sync_lanes()
    pipe._lane_seen["p1"] = started + 290.0  # assigned late: not silent for idle_after_s yet, so never probed
    await pipe.idle_tick(now_monotonic=started + 291.0, idle_after_s=2.0)
    assert pipe.watermark.value_s is None
