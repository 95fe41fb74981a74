"""A subscribed topic deleted (and maybe recreated) while the daemon runs: the recreated topic starts at offset 0
while the group's committed offset stays, so its first records were skipped, or the partition stalled, without a
log line (found by review). Now its leaving the consumer's metadata is one ERROR naming the fix."""

from __future__ import annotations

from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from tests.unit.consumers.test_kafka_unreadable_records import Consumer, consume, good, news, source_over


class MetadataConsumer(Consumer):
    """Its metadata lists the topics in ``topics`` (a deleted topic is taken out)."""

    def __init__(self, logs: dict[TopicPartition, list[object]]) -> None:
        super().__init__(logs)
        self.topics = {tp.topic for tp in logs}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {tp.partition for tp in self.logs if tp.topic == topic} if topic in self.topics else None


async def test_a_subscribed_topic_leaving_the_metadata_is_one_error_naming_the_offset_reset_fix() -> None:
    p0 = news(0)
    consumer = MetadataConsumer({p0: [good("a")]})
    source, _ = source_over(consumer)
    with capture_logs() as logs:
        await consume(source, rounds=2)
        consumer.topics.discard(p0.topic)  # deleted
        await consume(source, rounds=3)
        consumer.topics.add(p0.topic)  # recreated
        await consume(source, rounds=2)
    [missing] = [e for e in logs if e["event"] == "kafka_topic_missing"]
    assert (missing["log_level"], missing["topic"]) == ("error", p0.topic)
    assert "reset the group's offsets" in missing["fix"] and "before recreating a topic" in missing["fix"]
    assert [e["event"] for e in logs if e["event"].startswith("kafka_topic_")] == ["kafka_topic_missing",
                                                                                   "kafka_topic_back"]


async def test_a_topic_not_in_the_metadata_yet_at_start_is_not_reported_missing() -> None:
    p0 = news(0)
    consumer = MetadataConsumer({p0: [good("a")]})
    consumer.topics.clear()
    source, _ = source_over(consumer)
    with capture_logs() as logs:
        await consume(source, rounds=2)
    assert not [e for e in logs if e["event"] == "kafka_topic_missing"]
