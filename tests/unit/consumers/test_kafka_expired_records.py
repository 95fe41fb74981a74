"""The Kafka source says, once and loudly, when records of a partition were deleted by retention before it
read them (it resumes past its committed offset): an ERROR with the count, the offsets and the fix, and
``finsent_kafka_records_expired_total``. A real broker cannot be made to do this here (tansu 0.6 has no
DeleteRecords and no retention), so the consumer is a stand-in answering the three calls involved."""

from __future__ import annotations

from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from consumers.kafka import KafkaSource
from monitor import metrics
from monitor.config import load_settings
from monitor.lifecycle import Service
from tests.unit.consumers.test_kafka_rebalance import GOOD, Record


class NoDeadLetters(Service):
    async def send(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("nothing here is malformed")


class Consumer:
    """The broker's view: committed offsets and log starts."""

    def __init__(self, committed: dict[TopicPartition, int | None], log_start: dict[TopicPartition, int]) -> None:
        self._committed = committed
        self.log_start = log_start

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._committed[tp]

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.log_start[tp] for tp in partitions}

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


def expired(topic: str) -> float:
    return metrics.prometheus_client_value("finsent_kafka_records_expired_total", topic=topic) or 0.0


async def fetch(source: KafkaSource, consumer: Consumer, tp: TopicPartition, offset: int) -> list[dict[str, object]]:
    source._consumer = consumer  # type: ignore[assignment]
    with capture_logs() as logs:
        got = await source._accept(tp, [Record(tp.topic, tp.partition, offset, GOOD)])
        await source._check_gaps()
    assert [r.position for r in got] == [(tp, offset)]
    return [e for e in logs if e["event"] == "kafka_records_expired"]


async def test_resuming_past_a_committed_offset_the_broker_deleted_is_an_error_with_count_offsets_and_fix() -> None:
    settings = load_settings(source={"kind": "kafka"})
    tp = TopicPartition(settings.kafka.news_topic, 3)
    source = KafkaSource(settings, NoDeadLetters())
    source._adopt([tp])
    before = expired(tp.topic)
    [report] = await fetch(source, Consumer({tp: 1_200}, {tp: 5_000}), tp, 5_000)
    assert report["log_level"] == "error" and report["records"] == 3_800
    assert report["partition"] == f"{tp.topic}:3" and report["offsets"] == "1200-4999"
    assert "retention.ms" in str(report["fix"])
    assert expired(tp.topic) - before == 3_800


async def test_resuming_at_the_committed_offset_reports_nothing() -> None:
    settings = load_settings(source={"kind": "kafka"})
    tp = TopicPartition(settings.kafka.news_topic, 0)
    source = KafkaSource(settings, NoDeadLetters())
    source._adopt([tp])
    assert await fetch(source, Consumer({tp: 42}, {tp: 0}), tp, 42) == []
