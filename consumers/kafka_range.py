"""Payload-time range reads of Kafka topics for ``monitor replay --kafka-topic`` and backtests.

No consumer group: a range read never moves production offsets. Selection is by the payload's
``published_at`` (broker timestamps are log-append time and ``offsets_for_times`` is unreliable on
some brokers), so the reader scans each partition from its beginning offset.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Hashable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, RecordTooLargeError, UnsupportedCodecError

from consumers.kafka_client import (
    CORRUPT_ERRORS,
    Unreadable,
    client_kwargs,
    parse_record,
    probe_partition,
    reject,
    seek_back,
    start_client,
    too_large,
    topic_kinds,
    unreadable_at,
    wire_record,
)
from consumers.schema import InvalidMessage
from monitor.config import InputError, Settings
from monitor.lifecycle import Service
from monitor.time_bounds import EventTimeBounds
from monitor.types import RawMessage, SourceKind, SourceRecord

if TYPE_CHECKING:
    from consumers.deadletter import DeadLetterSink

log = structlog.get_logger(__name__)

RANGE_IDLE_MS = 500
RANGE_MAX_IDLE_ROUNDS = 3


class KafkaRangeReader(Service):
    """``Source`` over [start, end) by *payload* event time, for replay and backtests.

    ``topics`` defaults to the news + comments topics (other topics: the payload must carry ``source``);
    ``None`` bounds are open. Scans every partition from its beginning offset up to the end offset seen at
    start (later records are not read), keeping records whose ``published_at`` falls in the range. No
    consumer group: production offsets never move; ``commit`` only records progress. It scans rather than
    seeking with ``offsets_for_times``: broker timestamps are not payload times (late publishers,
    log-append time), so they cannot bound the scan safely, and tansu answers that request wrongly.
    Malformed records go to ``dead_letter`` when given (a backtest should not feed the production DLQ),
    else they are only counted. So do records aiokafka cannot read at all (``RecordTooLargeError``,
    ``CorruptRecordException``), as a stub (empty value; reason ``record_too_large``/``corrupt_record``), after
    an ERROR ``kafka_record_unreadable`` naming partition and offset: the scan goes on past them, as
    ``KafkaSource`` does (a corrupt record is found by reading its partition one record at a time).
    Records this install cannot decompress (``UnsupportedCodecError``: a snappy/lz4/zstd batch without
    ``cramjam``) are found the same way and end the scan: an ERROR ``kafka_partition_held`` and the error name
    the partition, the offset and what to install. They are fine data, so they are not dead-lettered, and a
    replay without a partition's records would report a result that is not the stream's.
    Only committed records are read (``read_committed``): an aborted transaction's records are not news.
    Batches come in partition order, not global event-time order: the pipeline's watermark handles that.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str] | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        dead_letter: DeadLetterSink | None = None,
    ) -> None:
        if (start is not None and start.tzinfo is None) or (end is not None and end.tzinfo is None):
            raise ValueError("start and end must be timezone-aware datetimes")
        self.kafka = settings.kafka
        self.source_settings = settings.source
        self.start_time, self.end_time = start, end
        self.dead_letter = dead_letter
        self.bounds = EventTimeBounds.from_settings(settings.source)
        self.read_count = 0
        self.dead_count = 0
        self.skipped_count = 0
        self.committed: tuple[TopicPartition, int] | None = None
        known = topic_kinds(settings.kafka)
        # Other topics: the payload must say its ``source``.
        self._kinds = {t: known.get(t) for t in topics} if topics else dict[str, SourceKind | None](known)
        self._consumer: AIOKafkaConsumer | None = None
        self._remaining: set[TopicPartition] = set()
        self._next: dict[TopicPartition, int] = {}
        """Per partition: the offset after the last record read (or dead-lettered): where a failed fetch resumes."""

    def lanes(self) -> frozenset[TopicPartition]:
        """Partitions still being scanned: a finished partition stops holding the watermark."""
        return frozenset(self._remaining)

    async def lagging(self, lanes: frozenset[Hashable]) -> set[Hashable]:
        """A range scan never marks partitions idle (they leave ``lanes()`` when finished)."""
        return set()

    async def _start(self) -> None:
        consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, max_poll_records=self.kafka.max_poll_records,
            isolation_level="read_committed",
            **client_kwargs(self.kafka, "range-reader"),
        )
        await start_client(consumer, self.kafka, "range reader")
        try:
            await consumer.topics()  # refreshes metadata
            missing = sorted(t for t in self._kinds if consumer.partitions_for_topic(t) is None)
        except BaseException:
            await consumer.stop()
            raise
        if missing:  # a warning in the log, then "replayed 0 messages" and exit 0 (found by review)
            await consumer.stop()
            raise InputError(f"topic(s) {', '.join(missing)} do not exist on {self.kafka.bootstrap_servers} -- check "
                             "the names given to --kafka-topic (kafka-topics --list shows them)")
        self._consumer = consumer

    async def _stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        await consumer.topics()  # refreshes metadata
        tps: list[TopicPartition] = []
        for topic in self._kinds:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                log.warning("range_topic_missing", topic=topic)
                continue
            tps.extend(TopicPartition(topic, p) for p in sorted(partitions))
        return tps

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncGenerator[list[SourceRecord], None]:
        """Yield the in-range records up to (at least) the end offsets seen at start, then end.

        A partition is finished once its position reached that end offset *and* a fetch round
        of ``RANGE_IDLE_MS`` returned nothing: the end offset is only a hint (tansu under-reports
        it), so the scan reads on until the partition is caught up. Records appended past the
        snapshot are harmless: selection is by payload event time."""
        if self._consumer is None:
            raise RuntimeError("KafkaRangeReader is not started")
        consumer = self._consumer
        tps = await self._partitions(consumer)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > begin[tp]}
        self._remaining = remaining
        consumer.assign(list(remaining))
        for tp in remaining:
            consumer.seek(tp, begin[tp])
        self._next = {tp: begin[tp] for tp in remaining}
        log.info("range_scan_started", partitions=len(remaining), records=sum(end[t] - begin[t] for t in tps))
        empty_rounds = 0
        while remaining:
            at_end = {tp for tp in remaining if await consumer.position(tp) >= end[tp]}
            wait_ms = max(timeout_ms, RANGE_IDLE_MS) if at_end == remaining else timeout_ms
            batch: list[SourceRecord] = []
            try:
                fetched = await consumer.getmany(*remaining, timeout_ms=wait_ms, max_records=max_records)
            except RecordTooLargeError as exc:  # aiokafka already moved past it
                fetched, progress = {}, await self._dead_letter(too_large(exc))
            except (*CORRUPT_ERRORS, UnsupportedCodecError) as exc:
                fetched, progress = {}, await self._skip_corrupt(consumer, exc, batch, max_records, timeout_ms)
            else:
                progress = any(fetched.values())
            for tp, records in fetched.items():
                batch.extend(await self._take(tp, records))
            empty_rounds = 0 if progress else empty_rounds + 1
            if empty_rounds:
                # caught up; after a few idle rounds even a partition short of its end offset
                # (control records, a broker's inexact end offset) is done: bounded, never hangs
                done = set(remaining) if empty_rounds >= RANGE_MAX_IDLE_ROUNDS else at_end
                if done - at_end:
                    log.warning("range_scan_stalled", partitions=[f"{t.topic}:{t.partition}" for t in done - at_end])
                for tp in done:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if batch:
                yield batch
        log.info("range_scan_finished", read=self.read_count, dead=self.dead_count,
                 skipped=self.skipped_count)

    async def _take(self, tp: TopicPartition, records: Sequence[Any]) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        for record in records:
            msg = await self._parse(tp, record)
            if msg is not None:
                out.append(SourceRecord(msg, (tp, record.offset), lane=tp, wire=wire_record(record)))
        if records:
            self._next[tp] = records[-1].offset + 1
        return out

    async def _skip_corrupt(self, consumer: AIOKafkaConsumer, exc: Exception,
                            batch: list[SourceRecord], limit: int, timeout_ms: int) -> bool:
        """Find the record (``probe_partition``, as ``KafkaSource`` does), dead-letter a stub and seek past it
        (or end the scan on records this install cannot decompress: ``_dead_letter``);
        records read meanwhile go into ``batch``. Partitions aiokafka drained in the failed call moved past
        records never returned: they are sought back first. True once the record was found and skipped."""
        await seek_back(consumer, {tp: self._next[tp] for tp in self._remaining if tp in self._next})

        async def accept(tp: TopicPartition, records: list[Any]) -> None:
            batch.extend(await self._take(tp, records))

        named, _ = unreadable_at(exc)
        candidates = [named] if named is not None and named in self._remaining else sorted(self._remaining)
        for tp in candidates:
            unreadable = await probe_partition(consumer, tp, limit, timeout_ms, accept,
                                               functools.partial(self._remaining.__contains__, tp))
            if unreadable is not None:
                return await self._dead_letter(unreadable)
        log.warning("kafka_corrupt_record_not_found", partition=f"{named.topic}:{named.partition}" if named else None,
                    error=repr(exc)[:300], why="the partition read on without the error this time")
        return bool(batch)

    async def _dead_letter(self, unreadable: Unreadable) -> bool:
        """ERROR line, stub dead letter (when a sink is given) and the position past it; records this install
        cannot decompress raise ``UnsupportedCodecError`` naming the partition instead (nothing is skipped)."""
        tp, offset = unreadable.partition, unreadable.offset
        if unreadable.held:
            log.error("kafka_partition_held", partition=f"{tp.topic}:{tp.partition}" if tp else None, offset=offset,
                      reason=unreadable.reason, error=unreadable.detail, fix=unreadable.fix)
            raise UnsupportedCodecError(unreadable.detail)
        self.dead_count += 1
        if tp is None or offset is None:
            log.error("kafka_record_unreadable", reason=unreadable.reason, error=unreadable.detail,
                      why="aiokafka did not say which record; it has moved past it")
            return True
        log.error("kafka_record_unreadable", partition=f"{tp.topic}:{tp.partition}", offset=offset,
                  reason=unreadable.reason, error=unreadable.detail, fix=unreadable.fix)
        if self.dead_letter is not None:
            await self.dead_letter.send(b"", unreadable.reason, unreadable.detail, unreadable.origin)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)
        consumer = self._consumer
        try:
            behind = consumer is not None and tp in self._remaining and await consumer.position(tp) <= offset
        except IllegalStateError:  # unassigned while position() waited: nothing left to seek
            return True
        if behind and consumer is not None:
            consumer.seek(tp, offset + 1)
        return True

    async def _parse(self, tp: TopicPartition, record: Any) -> RawMessage | None:
        try:
            msg = parse_record(record, self.source_settings, self._kinds[tp.topic], self.bounds)
        except InvalidMessage as exc:
            self.dead_count += 1
            if self.dead_letter is not None:
                await reject(self.dead_letter, record, exc)
            return None
        if (self.start_time is not None and msg.event_time < self.start_time) or (
            self.end_time is not None and msg.event_time >= self.end_time
        ):
            self.skipped_count += 1
            return None
        self.read_count += 1
        return msg

    async def commit(self, records: Sequence[SourceRecord]) -> None:
        if records:
            self.committed = records[-1].position
