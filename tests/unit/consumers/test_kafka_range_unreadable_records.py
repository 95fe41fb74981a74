"""``monitor replay --kafka-topic`` (``KafkaRangeReader``) over records aiokafka cannot read: before, a
``RecordTooLargeError`` or ``CorruptRecordException`` ended the replay. Now, as in ``KafkaSource``, each is an
ERROR naming partition and offset and a stub dead letter, and the scan reads on past it without losing the
records around it. The consumer is the stand-in of test_kafka_unreadable_records (aiokafka 0.14's behaviour)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from consumers.kafka_range import KafkaRangeReader
from monitor.config import load_settings
from monitor.types import SourceRecord
from tests.fakes import CollectingDeadLetter
from tests.unit.consumers.test_kafka_unreadable_records import (
    BINARY_HEADER_NAME,
    CORRUPT,
    TOO_LARGE,
    UNNAMED_CORRUPT,
    Consumer,
    good,
    news,
    offsets,
)


class RangeConsumer(Consumer):
    """What the range reader asks besides: the topic's partitions, end offsets, assign and pause."""

    def __init__(self, logs: dict[TopicPartition, list[object]]) -> None:
        super().__init__(logs, committed=None)

    async def topics(self) -> set[str]:
        return {tp.topic for tp in self.logs}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp]) for tp in partitions}

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def pause(self, *tps: TopicPartition) -> None:
        pass


async def scan(consumer: RangeConsumer, max_records: int = 100) -> tuple[KafkaRangeReader, CollectingDeadLetter,
                                                                         list[SourceRecord]]:
    settings = load_settings()
    dead = CollectingDeadLetter()
    reader = KafkaRangeReader(settings, [settings.kafka.news_topic], start=datetime(2026, 1, 1, tzinfo=UTC),
                              dead_letter=dead)
    reader._consumer = consumer  # type: ignore[assignment]
    got: list[SourceRecord] = []
    async for batch in reader.batches(max_records, 10):
        got.extend(batch)
    return reader, dead, got


def stubs(dead: CollectingDeadLetter) -> list[tuple[bytes, str, int, int]]:
    return [(raw, reason, int(str(o["partition"])), int(str(o["offset"]))) for raw, reason, _, o in dead.items]


async def test_a_record_too_large_to_fetch_is_dead_lettered_by_offset_and_the_replay_reads_on() -> None:
    p0 = news(0)
    with capture_logs() as logs:
        reader, dead, got = await scan(RangeConsumer({p0: [good("a"), good("b"), TOO_LARGE, good("c")]}))
    assert offsets(got) == [(0, 0), (0, 1), (0, 3)]
    assert stubs(dead) == [(b"", "record_too_large", 0, 2)]
    assert "1048576 bytes" in dead.items[0][2]
    [error] = [e for e in logs if e["event"] == "kafka_record_unreadable"]
    assert (error["log_level"], error["partition"], error["offset"]) == ("error", f"{p0.topic}:0", 2)
    assert reader.dead_count == 1


async def test_a_corrupt_record_is_dead_lettered_and_skipped_and_no_record_around_it_is_lost() -> None:
    """p0 is drained before p1's corrupt batch raises in the same call: its records are read again."""
    p0, p1 = news(0), news(1)
    consumer = RangeConsumer({p0: [good("a0"), good("a1"), good("a2")],
                              p1: [good("b0"), good("b1"), CORRUPT, good("b3"), good("b4")]})
    with capture_logs() as logs:
        _, dead, got = await scan(consumer)
    assert offsets(got) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 3), (1, 4)]
    assert len(got) == len({r.position for r in got})  # each once
    assert stubs(dead) == [(b"", "corrupt_record", 1, 2)]
    assert "Invalid CRC" in dead.items[0][2]
    [error] = [e for e in logs if e["event"] == "kafka_record_unreadable"]
    assert (error["partition"], error["offset"]) == (f"{p1.topic}:1", 2)
    assert (p1, 3) in consumer.seeks


async def test_a_corrupt_record_whose_partition_aiokafka_does_not_name_is_found_by_reading_each_partition() -> None:
    p0, p1 = news(0), news(1)
    _, dead, got = await scan(RangeConsumer({p0: [good("a0")], p1: [good("b0"), UNNAMED_CORRUPT, good("b2")]}))
    assert offsets(got) == [(0, 0), (1, 0), (1, 2)]
    assert stubs(dead) == [(b"", "corrupt_record", 1, 1)]


async def test_without_a_dead_letter_sink_unreadable_records_are_counted() -> None:
    p0 = news(0)
    settings = load_settings()
    reader = KafkaRangeReader(settings, [settings.kafka.news_topic])
    reader._consumer = RangeConsumer({p0: [CORRUPT, good("a"), TOO_LARGE]})  # type: ignore[assignment]
    got = [r async for batch in reader.batches(10, 10) for r in batch]
    assert offsets(got) == [(0, 1)]
    assert reader.dead_count == 2


async def test_a_record_whose_header_name_is_not_utf8_is_dead_lettered_and_the_replay_reads_on() -> None:
    p0, p1 = news(0), news(1)
    _, dead, got = await scan(RangeConsumer({p0: [good("a0")], p1: [good("b0"), BINARY_HEADER_NAME, good("b2")]}))
    assert offsets(got) == [(0, 0), (1, 0), (1, 2)]
    assert stubs(dead) == [(b"", "corrupt_record", 1, 1)]
