"""``finsent_consumer_lag_records`` keeps counting while no fetch returns records: held for a store outage, or
paused while the backlog exceeds ``max_buffered_records``. It was set only after a fetch returned records, so it
froze exactly when the lag grows, and FinsentConsumerLag could not fire during a Redis outage (found by
review). Also: ``finsent_kafka_records_expired_total`` is born at 0 for every subscribed topic when the source
starts, so ``increase()`` sees the first loss. The consumer is the stand-in of test_kafka_unreadable_records
with end offsets and pausing."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.structs import TopicPartition

import consumers.kafka as kafka_module
from consumers.kafka import KafkaSource
from monitor import metrics
from monitor.config import load_settings
from tests.unit.consumers.test_kafka_rebalance import Record
from tests.unit.consumers.test_kafka_unreadable_records import Consumer, good, source_over


class PausingConsumer(Consumer):
    """Paused partitions fetch nothing; the broker's end offset is the log's length."""

    def __init__(self, logs: dict[TopicPartition, list[object]]) -> None:
        super().__init__(logs)
        self.paused: set[TopicPartition] = set()

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp]) for tp in partitions}

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        wanted = [tp for tp in partitions or sorted(self.logs) if tp not in self.paused]
        return await super().getmany(*wanted, timeout_ms=timeout_ms, max_records=max_records) if wanted else {}


def lag(tp: TopicPartition) -> float | None:
    return metrics.prometheus_client_value("finsent_consumer_lag_records", topic=tp.topic, partition=str(tp.partition))


@pytest.fixture(autouse=True)
def no_probe_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step below may ask the broker again (the daemon asks at most once a second)."""
    monkeypatch.setattr(kafka_module, "LAG_PROBE_CACHE_S", 0.0)


def news(partition: int) -> TopicPartition:
    return TopicPartition(load_settings().kafka.news_topic, partition)


async def test_the_lag_gauge_grows_while_consumption_is_held_for_a_store_outage() -> None:
    p0 = news(7)
    consumer = PausingConsumer({p0: [good(f"a{i}") for i in range(5)]})
    source, _ = source_over(consumer)
    batches = aiter(source.batches(100, 10))
    got = await anext(batches)  # handed out, not committed: the store is down
    assert len(got) == 5 and lag(p0) is None  # the stand-in has no high watermark: nothing said yet
    await source.hold()
    assert lag(p0) == 0
    consumer.logs[p0].extend(good(f"b{i}") for i in range(7))  # the producers go on during the outage
    await source.hold()
    assert consumer.paused == {p0}
    assert lag(p0) == 7, "the lag of a held partition is what is still to read (position), not the uncommitted"
    consumer.logs[p0].extend(good(f"c{i}") for i in range(3))
    await source.hold()
    assert lag(p0) == 10


async def test_the_lag_gauge_grows_while_partitions_are_paused_on_the_backlog() -> None:
    p0 = news(8)
    consumer = PausingConsumer({p0: [good(f"a{i}") for i in range(4)]})
    settings = load_settings(source={"kind": "kafka"}, kafka={"max_buffered_records": 3})
    source = KafkaSource(settings, source_over(consumer)[1])
    source._consumer = consumer  # type: ignore[assignment]
    source._adopt([p0])
    batches = aiter(source.batches(100, 10))
    assert len(await anext(batches)) == 4 and source.paused  # not committed: over max_buffered_records
    consumer.logs[p0].extend(good(f"b{i}") for i in range(6))
    assert await anext(batches) == []
    assert lag(p0) == 6


async def test_the_lane_probe_sets_the_lag_gauge_too() -> None:
    p0, p1 = news(9), news(10)
    consumer = PausingConsumer({p0: [good("a")] * 3, p1: [good("b")] * 2})
    source, _ = source_over(consumer)
    consumer.positions[p1] = 2
    assert await source.lagging(frozenset({p0, p1})) == {p0}
    assert (lag(p0), lag(p1)) == (3, 0)


async def test_the_expired_records_counter_is_born_at_zero_for_every_subscribed_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``increase()`` never sees a series' first value: a counter born at 3,800 pages for nothing."""
    settings = load_settings(source={"kind": "kafka"}, kafka={"news_topic": "news-born-at-0",
                                                               "comments_topic": "comments-born-at-0"})

    class Started:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def subscribe(self, topics: list[str], listener: object) -> None:
            pass

    async def nothing(*args: object) -> None:
        return None

    monkeypatch.setattr(kafka_module, "AIOKafkaConsumer", Started)
    monkeypatch.setattr(kafka_module, "require_topics", nothing)
    monkeypatch.setattr(kafka_module, "start_client", nothing)
    source = KafkaSource(settings, source_over(PausingConsumer({}))[1])
    before = [metrics.prometheus_client_value("finsent_kafka_records_expired_total", topic=t)
              for t in ("news-born-at-0", "comments-born-at-0")]
    assert before == [None, None]
    await source._start()
    after = [metrics.prometheus_client_value("finsent_kafka_records_expired_total", topic=t)
             for t in ("news-born-at-0", "comments-born-at-0")]
    assert after == [0.0, 0.0]
