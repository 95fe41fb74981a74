"""Records aiokafka cannot read: a record over the fetch size (``RecordTooLargeError``) or a batch that fails its
CRC or does not parse (``CorruptRecordException``). Before, either one raised out of ``KafkaSource.batches`` and
ended the pipeline; the restarted daemon met the same record at its committed offset again: a crash loop from
one record. A real broker cannot serve a corrupt record, so the consumer here is a stand-in that behaves as
aiokafka 0.14 does (consumer/fetcher.py):

- ``RecordTooLargeError(text, tp, offset, fetch_size)``: the position is already one past the record when it is
  raised, and records drained from other partitions are returned first (the error comes at the next call);
- ``CorruptRecordException``: raised while a partition's batch is unpacked; that position does not move, while
  partitions drained before it in the same call have moved past records the caller never gets.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka.errors import (
    CorruptRecordException,
    IllegalStateError,
    KafkaTimeoutError,
    RecordTooLargeError,
    UnsupportedCodecError,
)
from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from consumers.kafka import KafkaSource, unreadable_at
from consumers.kafka_client import Unreadable, probe_partition
from consumers.kafka_range import KafkaRangeReader
from monitor.config import load_settings
from monitor.types import SourceRecord
from tests.fakes import CollectingDeadLetter
from tests.unit.consumers.test_kafka_rebalance import Record

TOO_LARGE = "too large"
CORRUPT = "corrupt"
UNNAMED_CORRUPT = "corrupt, no partition named"
UNDECODABLE = "a batch this install cannot decompress"
BINARY_HEADER_NAME = "a header whose name is not UTF-8"
NO_LZ4 = "Libraries for lz4 compression codec not found"  # aiokafka 0.14's text (record/default_records.py)


def good(msg_id: str) -> bytes:
    return json.dumps({"id": msg_id, "text": "ACME shares fall", "published_at": "2026-03-01T10:00:00Z",
                       "source": "news"}).encode()


class Consumer:
    """Partitions as lists of values by offset (``TOO_LARGE``/``CORRUPT`` mark records that cannot be read)."""

    def __init__(self, logs: dict[TopicPartition, list[object]], committed: int | None = 0) -> None:
        self.logs = logs
        self.positions = dict.fromkeys(logs, 0 if committed is None else committed)
        self._committed = dict.fromkeys(logs, committed)
        self.errors: dict[TopicPartition, RecordTooLargeError] = {}
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The topic's partitions in the client's metadata (None: not in it)."""
        return {tp.partition for tp in self.logs if tp.topic == topic} or None

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.positions[tp] = offset

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._committed[tp]

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        self._committed.update(offsets)

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        left = max_records or 10_000
        drained: dict[TopicPartition, list[Record]] = {}
        for tp in partitions or sorted(self.logs):
            position = self.positions[tp]
            log = self.logs[tp]
            if tp not in self.errors and position < len(log) and log[position] == TOO_LARGE:
                self.errors[tp] = RecordTooLargeError(
                    "There are some messages at [Partition=Offset]: %s=%s whose size is larger than the fetch size %s"
                    " and hence cannot be ever returned. Increase the fetch size, or decrease the maximum message "
                    "size the broker will allow.", tp, position, 1_048_576)
                self.positions[tp] = position + 1  # fetcher.py: tp_state.consumed_to(tp_state.position + 1)
            if tp in self.errors:
                if drained:
                    return drained
                raise self.errors.pop(tp)
            taken: list[Record] = []
            for offset in range(position, min(len(log), position + left)):
                if log[offset] == CORRUPT:
                    raise CorruptRecordException(f"Invalid CRC - {tp}")  # what was drained is lost
                if log[offset] == UNDECODABLE:
                    raise UnsupportedCodecError(NO_LZ4)  # what was drained is lost
                if log[offset] == UNNAMED_CORRUPT:
                    raise CorruptRecordException("Record size is less than the minimum record overhead (14)")
                if log[offset] == BINARY_HEADER_NAME:  # aiokafka decodes every header key as UTF-8
                    raise UnicodeDecodeError("utf-8", b"\xff\xfe\x00bin", 0, 1, "invalid start byte")
                if log[offset] == TOO_LARGE:
                    break
                value = log[offset]
                assert isinstance(value, bytes)
                taken.append(Record(tp.topic, tp.partition, offset, value))
            if taken:
                self.positions[tp] = taken[-1].offset + 1
                drained[tp] = taken
                left -= len(taken)
                if not left:
                    break
        return drained


async def consume(source: KafkaSource, rounds: int = 30, max_records: int = 100) -> list[SourceRecord]:
    """Run ``batches`` as the pipeline does (commit each batch) for a bounded number of rounds."""
    got: list[SourceRecord] = []
    steps = 0
    async for batch in source.batches(max_records, 10):
        got.extend(batch)
        await source.commit(batch)
        steps += 1
        if steps >= rounds:
            break
    return got


def offsets(records: list[SourceRecord]) -> list[tuple[int, int]]:
    return sorted((tp.partition, offset) for tp, offset in (r.position for r in records))


def source_over(consumer: Consumer) -> tuple[KafkaSource, CollectingDeadLetter]:
    settings = load_settings(source={"kind": "kafka"})
    dead = CollectingDeadLetter()
    source = KafkaSource(settings, dead)
    source._consumer = consumer  # type: ignore[assignment]
    source._adopt(list(consumer.logs))
    return source, dead


def news(settings_partition: int) -> TopicPartition:
    return TopicPartition(load_settings().kafka.news_topic, settings_partition)


async def test_a_record_too_large_to_fetch_is_dead_lettered_by_offset_and_reading_goes_on() -> None:
    p0 = news(0)
    consumer = Consumer({p0: [good("a"), good("b"), TOO_LARGE, good("c")]})
    source, dead = source_over(consumer)
    with capture_logs() as logs:
        got = await consume(source)
    assert offsets(got) == [(0, 0), (0, 1), (0, 3)]
    assert [(raw, reason, dict(origin)) for raw, reason, _, origin in dead.items] == [
        (b"", "record_too_large", {"topic": p0.topic, "partition": 0, "offset": 2})]
    assert "1048576 bytes" in dead.items[0][2]
    [error] = [e for e in logs if e["event"] == "kafka_record_unreadable"]
    assert (error["log_level"], error["partition"], error["offset"]) == ("error", f"{p0.topic}:0", 2)
    assert consumer._committed[p0] == 4  # the stub counts as processed: a restart does not meet it again
    assert source.dead_count == 1


async def test_a_corrupt_record_is_dead_lettered_and_skipped_and_no_record_around_it_is_lost() -> None:
    """p0 is drained before p1's corrupt batch raises in the same call: aiokafka moved p0 past records it never
    returned, so p0 is sought back; p1 is read one record at a time up to the corrupt one, which is skipped."""
    p0, p1 = news(0), news(1)
    consumer = Consumer({p0: [good("a0"), good("a1"), good("a2")],
                         p1: [good("b0"), good("b1"), CORRUPT, good("b3"), good("b4")]})
    source, dead = source_over(consumer)
    with capture_logs() as logs:
        got = await consume(source)
    assert offsets(got) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 3), (1, 4)]
    assert len(got) == len({r.position for r in got})  # each once
    assert [(reason, origin["partition"], origin["offset"]) for _, reason, _, origin in dead.items] == [
        ("corrupt_record", 1, 2)]
    assert "Invalid CRC" in dead.items[0][2]
    [error] = [e for e in logs if e["event"] == "kafka_record_unreadable"]
    assert (error["partition"], error["offset"]) == (f"{p1.topic}:1", 2)
    assert (p1, 3) in consumer.seeks
    assert (consumer._committed[p0], consumer._committed[p1]) == (3, 5)


async def test_a_corrupt_record_whose_partition_aiokafka_does_not_name_is_found_by_reading_each_partition() -> None:
    p0, p1 = news(0), news(1)
    consumer = Consumer({p0: [good("a0")], p1: [good("b0"), UNNAMED_CORRUPT, good("b2")]}, committed=None)
    source, dead = source_over(consumer)
    got = await consume(source)
    assert offsets(got) == [(0, 0), (1, 0), (1, 2)]
    assert [(reason, origin["partition"], origin["offset"]) for _, reason, _, origin in dead.items] == [
        ("corrupt_record", 1, 1)]


async def test_a_record_whose_header_name_is_not_utf8_is_dead_lettered_not_a_crash_loop() -> None:
    """Found by review: the UnicodeDecodeError left getmany and ended the daemon, and each restart met it again."""
    p0, p1 = news(0), news(1)
    consumer = Consumer({p0: [good("a0")], p1: [good("b0"), BINARY_HEADER_NAME, good("b2")]}, committed=None)
    source, dead = source_over(consumer)
    got = await consume(source)
    assert offsets(got) == [(0, 0), (1, 0), (1, 2)]
    assert [(reason, origin["partition"], origin["offset"]) for _, reason, _, origin in dead.items] == [
        ("corrupt_record", 1, 1)]
    assert "invalid start byte" in dead.items[0][2]


async def test_a_record_too_large_met_while_consumption_is_held_is_dead_lettered_not_passed_over() -> None:
    """aiokafka raises it even for a paused partition, after moving past the record: a warning and nothing
    else would have lost it without a trace."""
    p0 = news(0)
    consumer = Consumer({p0: [TOO_LARGE, good("a")]})
    source, dead = source_over(consumer)
    consumer.pause = consumer.resume = lambda *tps: None  # type: ignore[attr-defined]
    await source.hold()
    assert [(reason, origin["offset"]) for _, reason, _, origin in dead.items] == [("record_too_large", 0)]
    assert offsets(await consume(source, rounds=3)) == [(0, 1)]


def test_the_partition_and_offset_are_read_from_aiokafka_errors_as_it_builds_them() -> None:
    tp = TopicPartition("news.v2-eu", 11)
    assert unreadable_at(RecordTooLargeError("... %s=%s ... %s", tp, 42, 1_048_576)) == (tp, 42)
    assert unreadable_at(CorruptRecordException(f"Invalid CRC - {tp}")) == (tp, None)
    assert unreadable_at(CorruptRecordException("Found invalid number of record headers -1")) == (None, None)


class NoCoordinator(Consumer):
    """The group coordinator does not answer (slow or unavailable): ``committed()`` fails."""

    async def committed(self, tp: TopicPartition) -> int | None:
        raise KafkaTimeoutError("coordinator not available")


@pytest.mark.parametrize(("committed", "reset"), [(0, "earliest"), (None, "latest")])
async def test_records_drained_before_a_corrupt_batch_are_handed_out_even_when_the_committed_offset_is_unknown(
    committed: int | None, reset: str,
) -> None:
    """Found by review: the rewind target of a partition not read yet came from committed()/beginning_offsets();
    when that failed (or with auto_offset_reset = latest) p0's drained records were never handed out and later
    commits moved past them. The positions before the failed fetch are the target now."""
    p0, p1 = news(0), news(1)
    consumer = NoCoordinator({p0: [good("a0"), good("a1"), good("a2"), good("a3")],
                              p1: [good("b0"), CORRUPT, good("b2")]}, committed=committed)
    source, _ = source_over(consumer)
    source.kafka.auto_offset_reset = reset  # type: ignore[assignment]
    got = await consume(source, rounds=10)
    assert offsets(got) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 2)]
    assert (p0, 0) in consumer.seeks


class RevokedWhileWaiting(Consumer):
    """``position()`` of a partition revoked while aiokafka waited for its position (aiokafka 0.14 raises)."""

    def __init__(self, *args: Any, revoked: TopicPartition, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.revoked = revoked

    async def position(self, tp: TopicPartition) -> int:
        if tp == self.revoked:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        return await super().position(tp)


async def test_a_partition_revoked_while_its_position_is_awaited_stops_the_probe_instead_of_ending_the_pipeline(
) -> None:
    p0 = news(0)
    consumer = RevokedWhileWaiting({p0: [good("a0"), CORRUPT]}, revoked=p0)
    accepted: list[object] = []

    async def accept(tp: TopicPartition, records: list[Any]) -> None:
        accepted.extend(records)

    assert await probe_partition(consumer, p0, 10, 10, accept, lambda: True) is None  # type: ignore[arg-type]
    assert accepted == []


async def test_a_partition_revoked_while_its_position_is_awaited_skips_the_seek_past_a_dead_lettered_record(
) -> None:
    p0 = news(0)
    consumer = RevokedWhileWaiting({p0: [good("a0"), CORRUPT]}, revoked=p0)
    source, dead = source_over(consumer)
    await source._dead_letter_unreadable(Unreadable(p0, 1, "corrupt_record", "x", "fix"))
    assert len(dead.items) == 1 and consumer.seeks == []


async def test_the_range_reader_skips_the_seek_when_the_partition_is_unassigned_while_its_position_is_awaited(
) -> None:
    p0 = news(0)
    consumer = RevokedWhileWaiting({p0: [good("a0"), CORRUPT]}, revoked=p0)
    reader = KafkaRangeReader(load_settings(source={"kind": "kafka"}), dead_letter=CollectingDeadLetter())  # type: ignore[arg-type]
    reader._consumer = consumer  # type: ignore[assignment]
    reader._remaining = {p0}
    assert await reader._dead_letter(Unreadable(p0, 1, "corrupt_record", "x", "fix")) is True
    assert consumer.seeks == []


async def test_positions_before_a_fetch_are_read_from_aiokafkas_state_leaving_out_partitions_without_one() -> None:
    """``position()`` would wait (up to request_timeout_ms) for a partition awaiting its reset."""
    from aiokafka.consumer.subscription_state import SubscriptionState

    from consumers.kafka_client import positions_held

    class Real:
        _subscription = SubscriptionState()

    p0, p1 = news(0), news(1)
    Real._subscription.assign_from_user([p0, p1])
    Real._subscription.seek(p0, 5)
    assert await positions_held(Real(), [p0, p1, news(2)]) == {p0: 5}  # type: ignore[arg-type]
