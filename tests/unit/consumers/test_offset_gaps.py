"""Records retention deleted before the daemon read them are told apart from ordinary offset gaps
(transaction markers, compaction) by the broker's log start, asked after the jump was seen."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from consumers.offset_gaps import MAX_SUSPECTS_PER_PARTITION, VERIFY_INTERVAL_S, GapWatch, Loss


class Broker:
    """Log starts by partition; counts the queries."""

    def __init__(self, starts: dict[Hashable, int]) -> None:
        self.starts = starts
        self.queries = 0
        self.fail = False

    async def log_starts(self, partitions: list[Hashable]) -> dict[Hashable, int]:
        self.queries += 1
        if self.fail:
            raise OSError("broker down")
        return {p: self.starts[p] for p in partitions if p in self.starts}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_first_fetch_past_the_committed_offset_below_the_log_start_is_a_loss_of_those_records() -> None:
    watch, broker = GapWatch(Clock()), Broker({"p0": 500})
    watch.start_at("p0", 120)
    watch.observe("p0", 500, 599)
    assert await watch.verify(broker.log_starts) == [Loss("p0", 120, 500, 500)]
    assert Loss("p0", 120, 500, 500).records == 380 and watch.suspected == 0


async def test_a_jump_mid_stream_while_lagging_is_confirmed_when_the_log_start_passed_the_expected_offset() -> None:
    clock = Clock()
    watch, broker = GapWatch(clock), Broker({"p0": 0})
    watch.start_at("p0", 0)
    watch.observe("p0", 0, 99)
    assert await watch.verify(broker.log_starts) == [] and broker.queries == 0  # no jump, no query
    watch.observe("p0", 1_000, 1_099)  # position went out of range; reset to the new log start
    broker.starts["p0"] = 1_000
    assert await watch.verify(broker.log_starts) == [Loss("p0", 100, 1_000, 1_000)]


async def test_a_gap_the_log_still_starts_below_is_a_marker_or_compaction_and_is_not_reported() -> None:
    watch, broker = GapWatch(Clock()), Broker({"p0": 0})
    watch.start_at("p0", 10)
    watch.observe("p0", 10, 19)
    watch.observe("p0", 21, 30)  # a transaction marker at 20
    assert await watch.verify(broker.log_starts) == [] and watch.suspected == 0


async def test_a_latest_reset_reports_every_offset_skipped_not_only_the_deleted_ones() -> None:
    watch, broker = GapWatch(Clock()), Broker({"p0": 400})
    watch.start_at("p0", 100)
    watch.observe("p0", 900, 950)  # auto_offset_reset = latest jumped to the end
    [loss] = await watch.verify(broker.log_starts)
    assert (loss.records, loss.log_start) == (800, 400)


async def test_without_a_committed_offset_the_first_fetch_is_not_a_gap() -> None:
    watch, broker = GapWatch(Clock()), Broker({"p0": 700})
    watch.start_at("p0", None)
    watch.observe("p0", 700, 710)
    assert watch.suspected == 0 and await watch.verify(broker.log_starts) == []


async def test_reading_backwards_after_a_seek_or_a_redelivery_is_not_a_gap() -> None:
    watch = GapWatch(Clock())
    watch.start_at("p0", 50)
    watch.observe("p0", 50, 80)
    watch.observe("p0", 60, 90)
    assert watch.suspected == 0


async def test_the_broker_is_asked_at_most_once_per_interval_and_later_jumps_wait_for_the_next_query() -> None:
    clock = Clock()
    watch, broker = GapWatch(clock), Broker({"p0": 0, "p1": 0})
    watch.start_at("p0", 0)
    watch.start_at("p1", 0)
    watch.observe("p0", 5, 9)
    assert await watch.verify(broker.log_starts) == [] and broker.queries == 1
    watch.observe("p1", 5, 9)
    broker.starts["p1"] = 5
    assert await watch.verify(broker.log_starts) == [] and broker.queries == 1 and watch.suspected == 1
    clock.now += VERIFY_INTERVAL_S
    assert await watch.verify(broker.log_starts) == [Loss("p1", 0, 5, 5)] and broker.queries == 2


async def test_a_failed_query_keeps_the_suspicion_for_the_next_one() -> None:
    clock = Clock()
    watch, broker = GapWatch(clock), Broker({"p0": 300})
    watch.start_at("p0", 0)
    watch.observe("p0", 300, 310)
    broker.fail = True
    with pytest.raises(OSError):
        await watch.verify(broker.log_starts)
    broker.fail = False
    clock.now += VERIFY_INTERVAL_S
    assert await watch.verify(broker.log_starts) == [Loss("p0", 0, 300, 300)]


async def test_a_partition_revoked_while_its_log_start_is_asked_is_left_to_its_new_owner() -> None:
    watch = GapWatch(Clock())
    watch.start_at("p0", 0)
    watch.observe("p0", 300, 310)

    async def revoking(partitions: list[Hashable]) -> dict[Hashable, int]:
        watch.forget(["p0"])
        return {"p0": 300}

    assert await watch.verify(revoking) == [] and watch.suspected == 0


async def test_jumps_kept_per_partition_are_bounded() -> None:
    watch = GapWatch(Clock())
    watch.start_at("p0", 0)
    for i in range(MAX_SUSPECTS_PER_PARTITION * 3):
        watch.observe("p0", 2 * i + 1, 2 * i + 1)
    assert watch.suspected == MAX_SUSPECTS_PER_PARTITION
