"""KafkaSource through a downstream outage (held: stays in its group, skips nothing) and a broker
freeze (lag unknown: every partition counts as lagging, and the dependency is reported down)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consumers.deadletter import KafkaDeadLetter
from consumers.kafka import KafkaSource
from monitor.retry import DEPENDENCIES
from monitor.types import SourceRecord
from tests.chaos.harness import BrokerProcess
from tests.integration.consumers.test_kafka_source import T0, iso, make_settings, payload, produce, read_topic

pytestmark = pytest.mark.integration


async def _next_nonempty(batches: AsyncIterator[list[SourceRecord]]) -> list[SourceRecord]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        batch = await anext(batches)
        if batch:
            return batch
    raise AssertionError("no records within 15 s")


async def test_a_held_source_stays_in_its_group_fetches_nothing_and_skips_nothing_when_released(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap, max_poll_records=5)
    k = settings.kafka
    await produce(kafka_bootstrap, k.news_topic, [payload(f"n{i}", iso(T0)) for i in range(30)])
    async with KafkaDeadLetter(k) as dlq, KafkaSource(settings, dlq) as source:
        batches = aiter(source.batches(5, 100))
        got = await _next_nonempty(batches)
        assigned = source.lanes()
        for _ in range(15):  # 3 s on hold: three session timeouts
            await source.hold()
            await asyncio.sleep(0.2)
        assert source.lanes() == assigned, "the held consumer must not lose its partitions"
        assert len(got) == 5
        while len(got) < 30:
            got += await _next_nonempty(batches)
    assert [r.position[1] for r in got] == list(range(30))


async def test_the_consumer_lag_gauge_counts_records_produced_while_consumption_is_held(kafka_bootstrap: str) -> None:
    """It was set only when a fetch returned records: held through a Redis outage it froze, and
    FinsentConsumerLag could not fire during the outage (found by review)."""
    from monitor import metrics

    settings = await make_settings(kafka_bootstrap)
    k = settings.kafka
    await produce(kafka_bootstrap, k.news_topic, [payload(f"n{i}", iso(T0)) for i in range(5)])

    def lag() -> float | None:
        return metrics.prometheus_client_value("finsent_consumer_lag_records", topic=k.news_topic, partition="0")

    async with KafkaDeadLetter(k) as dlq, KafkaSource(settings, dlq) as source:
        batches = aiter(source.batches(100, 100))
        got = await _next_nonempty(batches)
        while len(got) < 5:
            got += await _next_nonempty(batches)
        await source.hold()  # the store is down: nothing handed out is committed
        assert lag() == 0
        await produce(kafka_bootstrap, k.news_topic, [payload(f"m{i}", iso(T0)) for i in range(7)])
        deadline = time.monotonic() + 10
        while lag() != 7 and time.monotonic() < deadline:
            await source.hold()
            await asyncio.sleep(0.2)
        assert lag() == 7
        got += await _next_nonempty(batches)  # released: the held records are read, the lag drains
    assert [r.position[1] for r in got][:6] == list(range(6))


async def test_while_the_broker_is_frozen_every_partition_counts_as_lagging_and_kafka_is_not_ready(
    tmp_path: Path,
) -> None:
    broker = BrokerProcess(tmp_path / "tansu.log").start()
    try:
        settings = await make_settings(broker.bootstrap, news_partitions=2)
        await produce(broker.bootstrap, settings.kafka.news_topic, [payload("n0", iso(T0))])
        async with KafkaDeadLetter(settings.kafka) as dlq, KafkaSource(settings, dlq) as source:
            batches = aiter(source.batches(10, 100))
            await _next_nonempty(batches)
            lanes = source.lanes()
            assert len(lanes) == 3 and await source.lagging(lanes) == set()
            broker.freeze()
            try:
                await asyncio.sleep(1.1)  # past the cached end offsets
                assert await source.lagging(lanes) == set(lanes)
                assert any(r.startswith("kafka unreachable") for r in DEPENDENCIES.reasons())
            finally:
                broker.thaw()
            for _ in range(100):
                if not await source.lagging(lanes):
                    break
                await asyncio.sleep(0.2)
            assert await source.lagging(lanes) == set()
            assert not any(r.startswith("kafka") for r in DEPENDENCIES.reasons())
    finally:
        broker.stop()


async def test_a_dead_letter_sent_while_the_broker_is_frozen_waits_for_it_instead_of_failing(
    tmp_path: Path,
) -> None:
    """aiokafka gives up on a produce after ``request_timeout_ms``; the dead letter must not (before, the
    KafkaTimeoutError ended the daemon when a malformed record met a broker outage longer than that)."""
    broker = BrokerProcess(tmp_path / "tansu.log").start()
    try:
        settings = await make_settings(broker.bootstrap, request_timeout_ms=1000)
        async with KafkaDeadLetter(settings.kafka) as dlq:
            await dlq.send(b"warm-up", "bad_json", "connects the producer", {"partition": 0, "offset": 0})
            broker.freeze()
            try:
                sending = asyncio.create_task(dlq.send(b"{not json", "bad_json", "while frozen",
                                                       {"partition": 0, "offset": 1}))
                await asyncio.sleep(3.5)  # more than three request timeouts
                assert not sending.done(), sending
                assert any(r.startswith("dead_letter unreachable") for r in DEPENDENCIES.reasons())
            finally:
                broker.thaw()
            await asyncio.wait_for(sending, 60)
        assert not any(r.startswith("dead_letter") for r in DEPENDENCIES.reasons())
        values = [r.value for r in await read_topic(broker.bootstrap, settings.kafka.dead_letter_topic, 2)]
        assert b"{not json" in values
    finally:
        broker.stop()
