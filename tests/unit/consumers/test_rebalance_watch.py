"""A consumer-group join or rebalance that does not complete is reported from the watch's own task (aiokafka's
start() and getmany() wait for it with no timeout), once, with a readiness reason that its completion clears."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from consumers.kafka import _Listener
from consumers.rebalance_watch import COMPONENT, RebalanceWatch
from monitor.retry import DEPENDENCIES
from tests.unit.consumers.test_kafka_step_aside import GroupConsumer
from tests.unit.consumers.test_kafka_unreadable_records import good, news, source_over


@pytest.fixture(autouse=True)
def _clean_dependencies() -> None:
    DEPENDENCIES.clear()


def _reasons() -> list[str]:
    return [r for r in DEPENDENCIES.reasons() if COMPONENT in r]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_rebalance_open_past_the_grace_is_one_error_and_a_readiness_reason_until_it_completes() -> None:
    clock = Clock()
    watch = RebalanceWatch("g", grace_s=60, clock=clock)
    with capture_logs() as logs:
        watch.begin()
        clock.now += 59
        watch.check()
        assert _reasons() == [] and not logs, "a rebalance takes a while"
        clock.now += 1
        watch.begin()  # a revocation while open keeps the start
        watch.check()
        clock.now += 30
        watch.check()  # once, not at every look
        assert [e["event"] for e in logs] == ["kafka_rebalance_stuck"]
        assert logs[0]["waited_s"] == 60 and "kafka-consumer-groups" in logs[0]["fix"]
        assert len(_reasons()) == 1 and "'g' has not completed its rebalance" in _reasons()[0]
        watch.end()
    assert [e["event"] for e in logs][1:] == ["dependency_recovered", "kafka_rebalance_completed"]
    assert logs[2]["waited_s"] == 90
    assert _reasons() == []


def test_a_rebalance_that_completes_within_the_grace_says_nothing() -> None:
    clock = Clock()
    watch = RebalanceWatch("g", grace_s=60, clock=clock)
    with capture_logs() as logs:
        watch.begin()
        clock.now += 30
        watch.end()
        clock.now += 3600
        watch.check()
    assert logs == [] and _reasons() == []


async def test_the_watch_reports_from_its_own_task_while_the_reader_is_blocked() -> None:
    watch = RebalanceWatch("g", grace_s=0.05, check_every_s=0.01)
    blocked = asyncio.Event()  # stands for getmany() waiting for an assignment that never comes
    async with watch:
        watch.begin()
        with capture_logs() as logs, pytest.raises(TimeoutError):
            await asyncio.wait_for(blocked.wait(), 0.5)
        assert [e["event"] for e in logs] == ["kafka_rebalance_stuck"]
        assert len(_reasons()) == 1
    assert _reasons() == [], "a stopped source is not waiting for a rebalance"


async def test_stopping_clears_the_reason_without_calling_the_rebalance_completed() -> None:
    clock = Clock()
    watch = RebalanceWatch("g", grace_s=1, clock=clock)
    await watch.start()
    watch.begin()
    clock.now += 2
    watch.check()
    with capture_logs() as logs:
        await watch.stop()
    assert _reasons() == [] and [e["event"] for e in logs] == ["dependency_recovered"]
    assert watch.open_s is None


async def test_the_source_opens_a_rebalance_at_each_revocation_and_closes_it_at_each_assignment() -> None:
    consumer = GroupConsumer({news(0): [good("a")]})
    source, _ = source_over(consumer)
    listener = _Listener(source, consumer)
    assert source.rebalance.open_s is None
    await listener.on_partitions_revoked({news(0)})
    assert source.rebalance.open_s is not None
    await listener.on_partitions_assigned(set())  # an empty assignment completes a rebalance too
    assert source.rebalance.open_s is None


async def test_a_member_out_of_the_group_on_purpose_has_no_rebalance_open_and_rejoining_opens_one() -> None:
    consumer = GroupConsumer({news(0): [good("a")]})
    source, _ = source_over(consumer)
    source.rebalance.begin()
    await source.step_aside()
    assert source.rebalance.open_s is None, "stepping aside (cluster mode) must not read as a stuck rebalance"
    source.rejoin()
    assert source.rebalance.open_s is not None
