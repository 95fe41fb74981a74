"""Records this install cannot decompress: a snappy/lz4/zstd batch read by aiokafka 0.14 without ``cramjam`` raises
``UnsupportedCodecError`` (naming neither partition nor offset) while the batch is unpacked. Before, it escaped
``KafkaSource.batches`` and ended the daemon, which restarted into the same batch (a crash loop); the replay's
range reader ended with a line blaming the broker. The data is fine, so it is held, never dead-lettered.

The consumer is the stand-in of test_kafka_unreadable_records; like aiokafka (consumer/fetcher.py), the failing
partition's position does not move, partitions drained before it in the same call have moved past records the
caller never gets, and a paused partition is not fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import UnsupportedCodecError
from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from consumers.kafka_range import KafkaRangeReader
from monitor.config import load_settings
from monitor.fatal import fatal_line
from monitor.retry import DEPENDENCIES
from tests.fakes import CollectingDeadLetter
from tests.unit.consumers.test_kafka_lag_gauge import PausingConsumer
from tests.unit.consumers.test_kafka_range_unreadable_records import RangeConsumer
from tests.unit.consumers.test_kafka_unreadable_records import (
    NO_LZ4,
    UNDECODABLE,
    consume,
    good,
    news,
    offsets,
    source_over,
)

LZ4 = UNDECODABLE


class CodecConsumer(PausingConsumer, RangeConsumer):
    """``LZ4`` marks a record inside a batch this install cannot decompress; paused partitions fetch nothing."""


@pytest.fixture(autouse=True)
def _fresh_readiness() -> Iterator[None]:
    DEPENDENCIES.clear()
    yield
    DEPENDENCIES.clear()


def committed_at_most(consumer: CodecConsumer, tp: TopicPartition) -> int:
    return max((commit[tp] for commit in consumer.commits if tp in commit), default=0)


def held_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "kafka_partition_held"]


async def test_records_this_install_cannot_decompress_hold_their_partition_without_dead_letter_or_commit() -> None:
    p0, p1 = news(0), news(1)
    consumer = CodecConsumer({p0: [good("a"), good("b"), LZ4, good("c")], p1: [good("x"), good("y"), good("z")]})
    source, dead = source_over(consumer)
    with capture_logs() as logs:
        got = await consume(source, rounds=10)
    assert offsets(got) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]  # the other partition goes on, nothing lost
    assert dead.items == []  # fine data: never dead-lettered
    assert committed_at_most(consumer, p0) == 2 and consumer.positions[p0] == 2
    assert p0 in consumer.paused and p1 not in consumer.paused
    [line] = held_lines(logs)
    assert (line["log_level"], line["partition"], line["offset"]) == ("error", f"{p0.topic}:0", 2)
    assert "pip install cramjam" in line["fix"] and "aiokafka[lz4,snappy,zstd]" in line["fix"]
    [reason] = DEPENDENCIES.reasons()
    assert f"{p0.topic}:0@2" in reason and NO_LZ4 in reason and "pip install cramjam" in reason


async def test_a_held_partition_stays_paused_when_consumption_resumes_after_a_store_outage() -> None:
    p0, p1 = news(0), news(1)
    consumer = CodecConsumer({p0: [LZ4, good("a")], p1: [good("x")]})
    source, _ = source_over(consumer)
    with capture_logs() as logs:
        await consume(source, rounds=3)
        await source.hold()  # pauses every partition; the next batches step resumes them
        await consume(source, rounds=3)
    assert p0 in consumer.paused and p1 not in consumer.paused
    assert consumer.positions[p0] == 0
    assert len(held_lines(logs)) == 1  # one ERROR line, not one a poll


async def test_a_revoked_held_partition_leaves_readiness_to_its_new_owner() -> None:
    p0 = news(0)
    consumer = CodecConsumer({p0: [LZ4]})
    source, _ = source_over(consumer)
    await consume(source, rounds=2)
    assert DEPENDENCIES.reasons()
    source._forget([p0])
    assert DEPENDENCIES.reasons() == []


async def test_a_range_scan_over_records_this_install_cannot_decompress_ends_naming_the_partition_and_the_fix(
) -> None:
    """A replay without a partition's records would report a result that is not the stream's: it ends, and says
    what to install instead of blaming the broker."""
    p0 = news(0)
    settings = load_settings()
    dead = CollectingDeadLetter()
    reader = KafkaRangeReader(settings, [settings.kafka.news_topic], start=datetime(2026, 1, 1, tzinfo=UTC),
                              dead_letter=dead)
    reader._consumer = CodecConsumer({p0: [good("a"), LZ4, good("b")]})  # type: ignore[assignment]
    with capture_logs() as logs, pytest.raises(UnsupportedCodecError) as err:
        async for _ in reader.batches(100, 10):
            pass
    assert dead.items == []
    [line] = held_lines(logs)
    assert (line["log_level"], line["partition"], line["offset"]) == ("error", f"{p0.topic}:0", 1)
    fatal = fatal_line(err.value, "replay")
    assert f"{p0.topic}:0 from offset 1" in fatal and "pip install cramjam" in fatal
    assert "up and reachable" not in fatal
