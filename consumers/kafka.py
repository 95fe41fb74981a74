"""Kafka source: the news and comments topics, consumed in a group, acknowledged at-least-once.

Message schema (record value; see consumers/schema.py for the validator) -- one UTF-8 JSON object::

    {"id": "reuters-0001",                 # required, unique (the dedup key downstream)
     "source": "news" | "comment",         # optional: defaults from the topic (news topic -> news)
     "text": "Acme shares plunge ...",     # required, non-empty, <= source.max_text_chars
     "published_at": "2026-11-24T14:03:00Z" | 1795960980 | 1795960980000,  # ISO-8601 or epoch s/ms
     "tickers": ["ACME"], "lang": "en", "url": "https://...", "meta": {...}}  # optional

Event time is the payload's ``published_at``; the broker timestamp is ignored (brokers may stamp
log-append time). Keys are not read (a dead letter keeps them); ordering only matters per partition.

How the pipeline uses ``KafkaSource`` (at-least-once end to end)::

    async with build_dead_letter(settings) as dlq, KafkaSource(settings, dlq) as source:
        async for batch in source.batches(max_records, timeout_ms):   # [] when idle for timeout_ms
            ...classify, update windows durably...
            await source.commit(batch)      # only after the window updates are durable

- ``commit(records)`` commits, per partition, the highest offset + 1 among ``records``: everything
  before it in that partition counts as done. Commits never move a partition's offset backwards, and
  commits for partitions this consumer no longer owns are skipped (the new owner redelivers them).
- Malformed records never reach the pipeline: they go to the dead-letter sink (``send`` awaited, so a
  DLQ outage stops consumption instead of losing data) and count as processed. That includes event
  times outside ``source.max_future_s``/``source.min_event_time`` (``implausible_time``) and, as a last
  resort, any unforeseen parser exception (``parse_error``, logged with its traceback). A dead record right
  after a committed record is committed along with it; a run of dead records with nothing pending
  before it is committed by the source itself. So a poison message is written to the DLQ once, and
  neither crashes the consumer nor blocks its partition.
- Bounded prefetch: at most ``max_poll_records`` per poll; when more than ``max_buffered_records``
  records are yielded but not committed, every assigned partition is paused (aiokafka's fetcher stops)
  until commits bring the backlog down to half of it. Meanwhile (and while held for a store outage) the lag
  gauge ``finsent_consumer_lag_records`` is probed from the broker's end offsets at most once a second, so it
  keeps growing with the input instead of freezing at the last fetch. ``max_buffered_records`` must exceed what the
  pipeline holds before it commits (``max_poll_records`` x in-flight batches), or consumption stalls.
- Rebalance: revoked partitions lose their uncommitted tracking; their records will be redelivered to
  the new owner, which the idempotent window store absorbs.
- Records that cannot be read at all: aiokafka's ``RecordTooLargeError`` (a record over the fetch size) and
  ``CorruptRecordException`` (a failed CRC, a malformed batch) used to end the pipeline, and the restarted
  daemon met the same record at its committed offset again: a crash loop from one record. Now each is an
  ERROR ``kafka_record_unreadable`` naming the partition and offset, a stub dead letter (empty value; reason
  ``record_too_large`` or ``corrupt_record``; the origin names topic/partition/offset), and reading goes on
  past it (aiokafka moves past a too-large record itself; a corrupt one is found by reading its partition one
  record at a time, and skipped with a seek). Records of other partitions that aiokafka counted as consumed in
  the failed call but never returned are read again.
- Records this install cannot decompress (``UnsupportedCodecError``: a snappy/lz4/zstd batch without
  ``cramjam``, the extras of ``aiokafka[lz4,snappy,zstd]``) are fine data: their partition is found the same
  way, then *held* at that offset (paused; never dead-lettered, never committed past) with an ERROR
  ``kafka_partition_held`` and the ``kafka_records`` readiness reason naming the partition and the fix. The
  other partitions are read and counted, but event time (bucket closes, alerts) waits for the held one, as for
  any partition that cannot be fetched. Before, the error ended the daemon, and every restart met the same batch.
- Read committed: records of aborted transactions (exactly-once producers: Flink, Kafka Streams, Debezium)
  are never read; an open transaction holds its partition until it ends.
- A subscribed topic that leaves the broker's metadata (deleted) is an ERROR ``kafka_topic_missing``: a topic
  recreated under the same name restarts its offsets at 0 while the group's committed offset stays, so its
  first records would be skipped, or the partition stalls. Stop the daemon and reset the group's offsets
  before recreating a topic.
- Records the broker deleted before they were read (retention outran an outage or the lag): a
  partition that resumes past its committed offset, or jumps while lagging, below the log start, is
  an ERROR ``kafka_records_expired`` with the count and offsets, and ``finsent_kafka_records_expired_total``
  (consumers/offset_gaps.py). Nothing can bring them back; the desk must know they are missing.

``consumers.kafka_range.KafkaRangeReader`` reads the same topics between two *payload* event times for
replays and backtests, with no consumer group (it never moves production offsets).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalStateError,
    KafkaError,
    RecordTooLargeError,
    UnsupportedCodecError,
)

from consumers.kafka_client import (
    CORRUPT_ERRORS,
    Unreadable,
    client_kwargs,
    parse_record,
    positions_held,
    probe_partition,
    reject,
    require_topics,
    seek_back,
    start_client,
    too_large,
    topic_kinds,
    unreadable_at,
    wire_record,
)
from consumers.offset_gaps import GapWatch, Loss
from consumers.rebalance_watch import RebalanceWatch
from consumers.schema import InvalidMessage
from monitor import metrics
from monitor.config import Settings
from monitor.lifecycle import Service
from monitor.retry import DEPENDENCIES
from monitor.time_bounds import EventTimeBounds
from monitor.types import SourceRecord

if TYPE_CHECKING:
    from consumers.deadletter import DeadLetterSink

log = structlog.get_logger(__name__)
LAG_PROBE_TIMEOUT_S = 3.0
"""How long the lag probe waits for the broker before the lag counts as unknown (= lagging)."""
LAG_PROBE_CACHE_S = 1.0
"""End offsets asked of the broker are reused this long (the probe runs on the read path too)."""
HELD_COMPONENT = "kafka_records"
"""The readiness component of partitions held because this install cannot decompress their records."""
RECREATE_FIX = ("stop the daemon and reset the group's offsets (kafka-consumer-groups --reset-offsets --group "
                "<kafka.group_id> --topic <topic> --to-earliest --execute) before recreating a topic: a recreated "
                "topic starts at offset 0 while the group's committed offset stays")


@dataclass(slots=True)
class _Seen:
    offset: int
    dead: bool


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer) -> None:
        self._source = source
        self._consumer = consumer
        """The first assignment can come before ``KafkaSource._consumer`` is set (during start)."""

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._source.rebalance.begin()
        self._source._forget(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._source.rebalance.end()
        self._source._adopt(assigned)
        self._source._check_sole_owner(self._consumer)


def _partition_key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


def _parse_partition_key(key: str) -> TopicPartition:
    topic, _, partition = key.rpartition(":")
    return TopicPartition(topic, int(partition))


def _report_loss(loss: Loss, reset: str) -> None:
    tp = cast(TopicPartition, loss.partition)  # the source watches TopicPartitions only
    metrics.KAFKA_RECORDS_EXPIRED.labels(tp.topic).inc(loss.records)
    log.error("kafka_records_expired", partition=_partition_key(tp), records=loss.records,
              offsets=f"{loss.expected}-{loss.first_read - 1}", log_start=loss.log_start, auto_offset_reset=reset,
              why="the broker deleted them (topic retention) before this daemon read them: their messages are in "
                  "no window, no alert and no backtest",
              fix="keep the topics' retention.ms above the longest outage or lag you must survive (watch "
                  "finsent_consumer_lag_records); replay the gap from an archive with monitor replay if one exists")


def _drop_lag(partitions: Iterable[TopicPartition]) -> None:
    """A partition this instance no longer owns has no lag of ours (its new owner reports it)."""
    for tp in partitions:
        with contextlib.suppress(KeyError):
            metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))


class KafkaSource(Service):
    """``Source`` over the news + comments topics; a record's ``position`` is ``(TopicPartition, offset)``."""

    def __init__(self, settings: Settings, dead_letter: DeadLetterSink) -> None:
        self.kafka = settings.kafka
        self.source_settings = settings.source
        self.shares_group = settings.alerts.cluster_mode
        """Cluster mode splits the partitions between instances on purpose; otherwise this daemon must own all."""
        self.dead_letter = dead_letter
        self.bounds = EventTimeBounds.from_settings(settings.source)
        self.read_count = 0
        self.dead_count = 0
        self._kinds = topic_kinds(settings.kafka)
        self._consumer: AIOKafkaConsumer | None = None
        # Per owned partition: offsets handed out (or dead-lettered) and not committed yet, in order.
        self._pending: dict[TopicPartition, deque[_Seen]] = {}
        # Per owned partition: the committed (or start) offset in this assignment; commits only go up.
        self._committed: dict[TopicPartition, int] = {}
        self._commit_lock = asyncio.Lock()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._held = False
        self._aside = False
        """Out of the consumer group (``step_aside``) until ``rejoin``."""
        self._ends: tuple[float, dict[Any, int]] = (0.0, {})
        self._lag_refreshed_at = float("-inf")
        self._gaps = GapWatch()
        """Offsets skipped between fetches, checked against the log start: records retention deleted unread."""
        self._next_offset: dict[TopicPartition, int] = {}
        """Per owned partition: the offset after the last record this source was given (or dead-lettered)."""
        self._undecodable: dict[TopicPartition, Unreadable] = {}
        """Owned partitions held at records this install cannot decompress (paused until revoked or stopped)."""
        self.rebalance = RebalanceWatch(settings.kafka.group_id, settings.kafka.rebalance_report_after_s)
        """Joins and rebalances that do not complete: aiokafka waits for them with no timeout, reading nothing."""
        self._topics_seen: set[str] = set()
        self._topics_missing: set[str] = set()
        self.on_group_read_before: Callable[[str, int], None] | None = None
        """Called once, with a partition and its committed offset, when the group had read a partition before this
        start (the app checks the window store did not start empty: data lost while the daemon was down). Asked only
        in the first assignment and before this source commits anything: a committed offset found later may be this
        process's own (a new group's first rebalance paged a loss that never happened; found by review)."""

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaSource is not started")
        return self._consumer

    @property
    def backlog(self) -> int:
        """Records handed out (or dead-lettered) and not committed yet, over all owned partitions."""
        return sum(len(q) for q in self._pending.values())

    @property
    def paused(self) -> bool:
        """True while consumption is paused because the backlog exceeds ``max_buffered_records``."""
        return not self._resumed.is_set()

    def lanes(self) -> frozenset[TopicPartition]:
        """Assigned partitions: each is a watermark lane (see monitor/engine/watermark.py)."""
        return frozenset(self._consumer.assignment()) if self._consumer is not None else frozenset()

    async def lagging(self, lanes: frozenset[Hashable]) -> set[Hashable]:
        """Partitions among ``lanes`` with records on the broker not handed out yet: silent, but not
        idle. Lag is the broker's end offset (asked at most every ``LAG_PROBE_CACHE_S``) or the high
        watermark of the last fetch, whichever is higher, against the position. When the broker
        cannot answer (down, frozen, metadata stale), *every* lane counts as lagging: event time must
        not advance past a partition that cannot be fetched."""
        consumer = self._consumer
        if consumer is None:
            return set(lanes)
        owned = consumer.assignment()
        wanted = [tp for tp in lanes if isinstance(tp, TopicPartition) and tp in owned]
        if not wanted:
            return set()
        try:
            lag = await self._probe_lag(consumer, wanted)
        except (KafkaError, TimeoutError, OSError) as exc:
            DEPENDENCIES.down("kafka", exc)
            log.warning("kafka_lag_unknown", partitions=len(wanted), error=repr(exc)[:300])
            return set(lanes)
        DEPENDENCIES.up("kafka")
        return {tp for tp, records in lag.items() if records > 0}

    async def _probe_lag(self, consumer: AIOKafkaConsumer, wanted: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Lag per partition = max(broker end offset, high watermark of the last fetch) - position (the next
        record not handed out yet: records handed out and not committed are not on the broker's side of it),
        asked within ``LAG_PROBE_TIMEOUT_S``. Sets ``finsent_consumer_lag_records`` for those still owned."""
        async with asyncio.timeout(LAG_PROBE_TIMEOUT_S):
            ends = await self._end_offsets(consumer, wanted)
            positions = {tp: await consumer.position(tp) for tp in wanted}
        lag = {tp: max(0, max(ends.get(tp) or 0, consumer.highwater(tp) or 0) - position)
               for tp, position in positions.items()}
        for tp, records in lag.items():
            if self._consumer is consumer and tp in self._pending:  # not stopped or revoked while the broker answered
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(records)
        return lag

    async def _refresh_lag(self) -> None:
        """No fetch returns records while every partition is paused (held for a store outage, or the backlog
        over ``max_buffered_records``), so ``_observe_lag`` is not reached and the lag gauge would freeze just
        when it should grow: ask the broker's end offsets and the positions instead, at most every
        ``LAG_PROBE_CACHE_S``, waiting at most ``LAG_PROBE_TIMEOUT_S``."""
        consumer = self._consumer
        now = time.monotonic()
        if consumer is None or now - self._lag_refreshed_at < LAG_PROBE_CACHE_S:
            return
        self._lag_refreshed_at = now
        owned = sorted(consumer.assignment())
        if not owned:
            return
        try:
            await self._probe_lag(consumer, owned)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("kafka_lag_unknown", partitions=len(owned), error=repr(exc)[:300])

    async def _end_offsets(self, consumer: AIOKafkaConsumer, wanted: list[TopicPartition]) -> dict[Any, int]:
        now = time.monotonic()
        cached_at, cached = self._ends
        if now - cached_at < LAG_PROBE_CACHE_S and all(tp in cached for tp in wanted):
            return cached
        ends: dict[Any, int] = await consumer.end_offsets(wanted)
        self._ends = (now, ends)
        return ends

    @property
    def keepalive_s(self) -> float:
        """A quarter of ``kafka.max_poll_interval_ms`` (at most 5 s): several polls fit before the group
        would give this consumer's partitions away."""
        return min(5.0, self.kafka.max_poll_interval_ms / 4000)

    async def hold(self) -> None:
        """The pipeline cannot take more (a store outage): pause every partition and poll, which
        fetches nothing but keeps this consumer in its group (aiokafka leaves the group when
        ``getmany`` is not called for ``max_poll_interval_ms``). Released by the next ``batches``
        step. Anything a racing fetch still returns is sought back, so nothing is skipped."""
        consumer = self._consumer
        if consumer is None or self._aside:  # out of the group: nothing to keep alive
            return
        if not self._held:
            self._held = True
            consumer.pause(*consumer.assignment())
            log.info("consumption_held", backlog=self.backlog)
        try:
            fetched = await consumer.getmany(timeout_ms=0)
        except RecordTooLargeError as exc:  # raised even for a paused partition; aiokafka already moved past it
            await self._dead_letter_unreadable(too_large(exc))
            return
        except (ConsumerStoppedError, KafkaError) as exc:
            log.warning("kafka_hold_poll_failed", error=repr(exc)[:300])
            return
        for tp, records in fetched.items():
            if records:
                consumer.seek(tp, records[0].offset)
        await self._refresh_lag()  # the lag grows during the outage: FinsentConsumerLag must be able to fire

    async def step_aside(self) -> None:
        """Leave the consumer group, so its other members take this one's partitions now: in cluster mode a member
        that lost Redis kept them while its marks expired, and detection waited for them, for every key, as long as
        the outage lasted (found by review). Records fetched and not committed are read again by the new owners
        (the windows count each message once). ``rejoin`` joins the group again. Idempotent."""
        consumer = self._consumer
        if consumer is None or self._aside:
            return
        self._aside = True
        revoked = sorted(consumer.assignment())
        consumer.unsubscribe()  # leaves the group at once (LeaveGroup): the others rebalance without waiting
        self.rebalance.end()  # out of the group on purpose: no rebalance of this member is open
        self._forget(revoked)
        log.warning("kafka_group_left", partitions=[_partition_key(tp) for tp in revoked], group_id=self.kafka.group_id,
                    why="this member's cluster heartbeat has not reached Redis for long (cluster mode)",
                    action="the other members take these partitions; this one joins again once Redis answers")

    def rejoin(self) -> None:
        consumer = self._consumer
        if consumer is not None and self._aside:
            self._aside = False
            self.rebalance.begin()
            consumer.subscribe(list(self._kinds), listener=_Listener(self, consumer))
            log.info("kafka_group_rejoined", group_id=self.kafka.group_id)

    def _release_hold(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._consumer is not None and not self.paused:
            self._consumer.resume(*self._readable(self._consumer))
        log.info("consumption_released", backlog=self.backlog)

    def _readable(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Assigned partitions that may be resumed: not those held at records this install cannot decompress."""
        return [tp for tp in consumer.assignment() if tp not in self._undecodable]

    def lane_key(self, lane: Hashable) -> str:
        assert isinstance(lane, TopicPartition)
        return _partition_key(lane)

    def partitions(self) -> frozenset[str] | None:
        """From the consumer's cached metadata (refreshed by aiokafka as the group works)."""
        consumer = self.consumer
        out: set[str] = set()
        for topic in self._kinds:
            ids = consumer.partitions_for_topic(topic)
            if not ids:
                return None
            out.update(_partition_key(TopicPartition(topic, p)) for p in ids)
        return frozenset(out)

    async def durable_offsets(self) -> dict[str, int]:
        """Per owned partition: the first record not yet durable (the oldest one handed out and not
        committed), or the consumer position when nothing is outstanding."""
        consumer = self.consumer
        out: dict[str, int] = {}
        for tp in consumer.assignment():
            pending = self._pending.get(tp)
            out[_partition_key(tp)] = pending[0].offset if pending else await consumer.position(tp)
        return out

    async def has_records_beyond(self, offsets: dict[str, int]) -> bool:
        """Asks the broker for the end offsets of ``offsets``' partitions (any partition, owned or not).
        If the broker cannot answer, the answer is yes: detection waits rather than guesses."""
        if not offsets:
            return False
        wanted = {_parse_partition_key(key): offset for key, offset in offsets.items()}
        try:
            ends = await self.consumer.end_offsets(list(wanted))
        except KafkaError as exc:
            log.warning("end_offsets_failed", error=repr(exc))
            return True
        return any(ends.get(tp, 0) > offset for tp, offset in wanted.items())

    async def _start(self) -> None:
        k = self.kafka
        await require_topics(k, ("news_topic", "comments_topic"), "consumer")
        consumer = AIOKafkaConsumer(
            group_id=k.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",  # an aborted transaction's records are not news
            auto_offset_reset=k.auto_offset_reset,
            max_poll_records=k.max_poll_records,
            session_timeout_ms=k.session_timeout_ms,
            heartbeat_interval_ms=max(100, k.session_timeout_ms // 3),
            max_poll_interval_ms=k.max_poll_interval_ms,
            **client_kwargs(k, "source"),
        )
        consumer.subscribe(list(self._kinds), listener=_Listener(self, consumer))
        for topic in self._kinds:  # born at 0: increase() never sees a series' first value (the first loss)
            metrics.KAFKA_RECORDS_EXPIRED.labels(topic).inc(0)
        await self.rebalance.start()
        self.rebalance.begin()  # start() waits for the first assignment
        try:
            await start_client(consumer, k, "consumer")
        except BaseException:
            await self.rebalance.stop()
            raise
        self._consumer = consumer
        log.info("kafka_source_started", topics=list(self._kinds), group_id=k.group_id)

    async def _stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._pending.clear()
        self._committed.clear()
        self._resumed.set()
        self._forget_undecodable(list(self._undecodable))
        await self.rebalance.stop()
        if consumer is not None:
            _drop_lag(consumer.assignment())
            await consumer.stop()
        log.info("kafka_source_stopped", read=self.read_count, dead=self.dead_count)

    # --- rebalance callbacks -------------------------------------------------------------------------

    def _forget(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        if revoked:  # only the first assignment tells what the group had read before (the first join revokes none)
            self.on_group_read_before = None
        for tp in revoked:
            self._pending.pop(tp, None)
            self._committed.pop(tp, None)
            self._next_offset.pop(tp, None)
        self._forget_undecodable(revoked)
        self._gaps.forget(revoked)
        _drop_lag(revoked)
        log.info("partitions_revoked", partitions=[_partition_key(tp) for tp in revoked])
        self._maybe_resume()

    def _adopt(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        for tp in assigned:
            self._pending.setdefault(tp, deque())
        if (self.paused or self._held) and self._consumer is not None:
            self._consumer.pause(*assigned)
        log.info("partitions_assigned", partitions=[_partition_key(tp) for tp in assigned])

    async def _note_resume(self, tp: TopicPartition, first: int) -> None:
        """A partition's first fetch in this assignment: where its committed offset says reading resumes,
        so a fetch that starts later shows records lost to retention. Asked here, not in the rebalance
        callback: a broker may answer the group's offsets only once the rebalance completed (tansu does),
        and no commit of ours can have moved it before this fetch. A broker that does not answer in
        time leaves the partition unchecked this time."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            async with asyncio.timeout(LAG_PROBE_TIMEOUT_S):
                committed = await consumer.committed(tp)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("kafka_committed_unknown", partition=_partition_key(tp), error=repr(exc)[:300])
            return
        self._gaps.start_at(tp, committed)
        log.info("partition_resumes", partition=_partition_key(tp), committed=committed, first_offset=first)
        if committed is not None and self.on_group_read_before is not None:
            notify, self.on_group_read_before = self.on_group_read_before, None
            notify(_partition_key(tp), committed)

    def _check_sole_owner(self, consumer: AIOKafkaConsumer) -> None:
        """Without cluster mode, another member of the group (a stray daemon on another Redis prefix, another
        application reusing the group id) takes part of the stream away without a word: say so, loudly."""
        if self.shares_group:
            metrics.PARTITIONS_ELSEWHERE.set(0)
            return
        owned = set(consumer.assignment())
        elsewhere = sorted(
            _partition_key(tp) for topic in self._kinds
            for tp in (TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ())
            if tp not in owned
        )
        metrics.PARTITIONS_ELSEWHERE.set(len(elsewhere))
        if elsewhere:
            log.error("partitions_elsewhere", partitions=elsewhere[:50], group_id=self.kafka.group_id,
                      why="another member of the consumer group reads them: this daemon sees part of the stream",
                      fix="stop the other consumer or give this daemon its own kafka.group_id; several daemons "
                          "need alerts.cluster_mode = true")

    # --- consuming ----------------------------------------------------------------------------------

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncGenerator[list[SourceRecord], None]:
        """Yield batches of valid records until stopped; malformed ones are dead-lettered.

        A batch is empty when nothing valid arrived within ``timeout_ms`` (or while paused), so a caller
        blocked in ``async for`` still sees its stop flag on an idle stream.
        """
        limit = max(1, min(max_records, self.kafka.max_poll_records))
        while self._consumer is not None:
            if self._aside:  # out of the group: nothing to read until it joins again
                await asyncio.sleep(timeout_ms / 1000)
                yield []
                continue
            self._release_hold()  # the pipeline asks for more: it has room again
            fetch_timeout_ms = timeout_ms
            if self.paused:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._resumed.wait(), timeout_ms / 1000)
                # Still poll (returns at once, nothing from paused partitions): aiokafka leaves the
                # group when getmany is not called for max_poll_interval_ms.
                fetch_timeout_ms = 0
                if self._consumer is None:
                    return
                await self._refresh_lag()
            batch: list[SourceRecord] = []
            # where each partition stood: a corrupt batch raises after aiokafka moved others past records it
            # never returns, and these are sought back to (see _rewind_unreturned)
            before = await positions_held(self._consumer, self._consumer.assignment())
            try:
                fetched = await self._consumer.getmany(timeout_ms=fetch_timeout_ms, max_records=limit)
            except ConsumerStoppedError:
                return
            except RecordTooLargeError as exc:
                fetched = {}
                await self._dead_letter_unreadable(too_large(exc))
            except (*CORRUPT_ERRORS, UnsupportedCodecError) as exc:
                fetched = {}
                batch = await self._skip_corrupt(exc, limit, timeout_ms, before)
            for tp, records in fetched.items():
                batch.extend(await self._accept(tp, records))
            if self.backlog > self.kafka.max_buffered_records:
                self._pause()
            await self._check_gaps()
            self._check_topics()
            yield batch  # possibly empty: the caller regains control every timeout_ms, e.g. to stop

    async def _accept(self, tp: TopicPartition, records: Sequence[Any]) -> list[SourceRecord]:
        pending = self._pending.get(tp)
        if pending is None or not records:  # revoked while the fetch was in flight
            return []
        if tp not in self._committed:
            await self._note_resume(tp, records[0].offset)
            if self._pending.get(tp) is not pending:
                return []  # revoked while the broker answered
            self._committed[tp] = records[0].offset
        self._gaps.observe(tp, records[0].offset, records[-1].offset)
        self._next_offset[tp] = records[-1].offset + 1
        kind = self._kinds[tp.topic]
        good: list[SourceRecord] = []
        for record in records:
            try:
                msg = parse_record(record, self.source_settings, kind, self.bounds)
            except InvalidMessage as exc:
                await reject(self.dead_letter, record, exc)
                self.dead_count += 1
                if self._pending.get(tp) is not pending:  # revoked while the dead letter was sent (a broker
                    return []  # outage makes that wait long): the new owner reads from the committed offset
                pending.append(_Seen(record.offset, dead=True))
                continue
            self.read_count += 1
            pending.append(_Seen(record.offset, dead=False))
            good.append(SourceRecord(msg, (tp, record.offset), lane=tp, wire=wire_record(record)))
        if pending[0].dead:  # nothing handed out is pending before these: they are done already
            await self._commit_partitions({tp: self._committed[tp]})
        self._observe_lag(tp, records[-1].offset + 1)
        return good

    # --- records that cannot be read ------------------------------------------------------------------

    async def _skip_corrupt(self, exc: Exception, limit: int, timeout_ms: int,
                            before: dict[TopicPartition, int]) -> list[SourceRecord]:
        """A batch failed its CRC, does not parse, or cannot be decompressed here. aiokafka does not move past it,
        and says which partition only for a CRC failure, never which offset: read the partition (each owned one
        when it is not named) one record at a time from its position until the error comes again, then
        dead-letter a stub for the record at that position and seek past it, or hold the partition there (a codec
        this install lacks: ``_hold_undecodable``). Records read meanwhile are handed out as usual.
        Records of other partitions that aiokafka took in the failed call are lost with its answer while
        their positions moved past them: those partitions are sought back to ``before`` (their positions when
        that call began) first."""
        consumer = self._consumer
        if consumer is None:
            return []
        named, _ = unreadable_at(exc)
        await self._rewind_unreturned(consumer, before)
        candidates = [named] if named is not None else sorted(self._readable(consumer))
        good: list[SourceRecord] = []
        for tp in candidates:
            found, records = await self._probe(tp, limit, timeout_ms)
            good.extend(records)
            if found:
                return good
        log.warning("kafka_corrupt_record_not_found", partition=_partition_key(named) if named else None,
                    error=repr(exc)[:300], why="the partition read on without the error this time; it is retried "
                    "at the next fetch if it comes back")
        return good

    async def _rewind_unreturned(self, consumer: AIOKafkaConsumer, before: dict[TopicPartition, int]) -> None:
        """Seek every owned partition whose position moved past where it stood before the failed ``getmany``
        back to that position: the records aiokafka drained from it in that call were never returned. Both
        positions are read locally (``positions_held``): no coordinator lookup that can fail or time out.
        A partition with no valid position before the call was not fetched from (aiokafka fetches only from
        a valid position)."""
        for tp, position, start in await seek_back(consumer, before):
            log.warning("kafka_fetch_rewound", partition=_partition_key(tp), position=position, to=start,
                        why="a fetch failed on another partition after aiokafka took these records")

    async def _probe(self, tp: TopicPartition, limit: int, timeout_ms: int) -> tuple[bool, list[SourceRecord]]:
        """Read ``tp`` one record at a time (at most ``limit``): ``(True, records before it)`` once a record
        cannot be read (it is dead-lettered and skipped), ``(False, records)`` when none failed."""
        good: list[SourceRecord] = []

        async def accept(tp: TopicPartition, records: list[Any]) -> None:
            good.extend(await self._accept(tp, records))

        def go_on() -> bool:
            consumer = self._consumer
            return not (consumer is None or tp not in self._pending or tp not in consumer.assignment()
                        or self.paused or self._held or self.backlog > self.kafka.max_buffered_records)

        consumer = self._consumer
        if consumer is None:
            return False, good
        unreadable = await probe_partition(consumer, tp, limit, timeout_ms, accept, go_on)
        if unreadable is None:
            return False, good
        if unreadable.held:
            await self._hold_undecodable(unreadable)
        else:
            await self._dead_letter_unreadable(unreadable)
        return True, good

    async def _hold_undecodable(self, unreadable: Unreadable) -> None:
        """Pause the partition at the first record this install cannot decompress: the data is fine, so it is
        neither dead-lettered nor committed past; a restart with the codec installed reads on from there. One
        ERROR line and the ``kafka_records`` readiness reason say which partition and what to install."""
        tp, offset, consumer = unreadable.partition, unreadable.offset, self._consumer
        if tp is None or offset is None or consumer is None or tp not in self._pending:
            return  # not ours any more: its new owner meets it
        consumer.pause(tp)
        try:
            if await consumer.position(tp) != offset:
                consumer.seek(tp, offset)
        except IllegalStateError:  # revoked while position() waited
            return
        self._undecodable[tp] = unreadable
        log.error("kafka_partition_held", partition=_partition_key(tp), offset=offset, reason=unreadable.reason,
                  error=unreadable.detail, fix=unreadable.fix)
        self._report_undecodable()

    def _forget_undecodable(self, partitions: Iterable[TopicPartition]) -> None:
        if [tp for tp in partitions if self._undecodable.pop(tp, None) is not None]:
            self._report_undecodable()

    def _report_undecodable(self) -> None:
        """Readiness: down while a partition is held (named, with the fix), up again once none is."""
        if not self._undecodable:
            DEPENDENCIES.up(HELD_COMPONENT)
            return
        held = sorted(self._undecodable)
        first = self._undecodable[held[0]]
        names = ", ".join(f"{_partition_key(tp)}@{self._undecodable[tp].offset}" for tp in held[:10])
        DEPENDENCIES.down(HELD_COMPONENT, f"partitions held at records this install cannot decompress ({names}): "
                                          f"{first.detail} -- {first.fix}")

    def _check_topics(self) -> None:
        """An ERROR ``kafka_topic_missing`` once when a subscribed topic seen before leaves the consumer's
        metadata (deleted; aiokafka refreshes it when a fetch fails), a warning when it is back."""
        consumer = self._consumer
        if consumer is None:  # stopped
            return
        for topic in self._kinds:
            if consumer.partitions_for_topic(topic):
                self._topics_seen.add(topic)
                if topic in self._topics_missing:
                    self._topics_missing.discard(topic)
                    log.warning("kafka_topic_back", topic=topic,
                                why="the topic is visible again: if it was recreated (not only hidden by a refused ACL "
                                    "or a leader election), its first records are skipped or its partitions stall",
                                fix=RECREATE_FIX)
            elif topic in self._topics_seen and topic not in self._topics_missing:
                self._topics_missing.add(topic)
                log.error("kafka_topic_missing", topic=topic, why="the topic left this client's metadata (deleted, or "
                          "its ACL no longer allows this principal, or no leader): nothing is read from it",
                          fix="check the topic exists and the principal may read it; " + RECREATE_FIX)

    async def _dead_letter_unreadable(self, unreadable: Unreadable) -> None:
        """ERROR line, stub dead letter (no bytes to keep), position past its offset, tracked and committed
        like any dead record, so a restart does not meet it again."""
        tp, offset, reason, detail = unreadable.partition, unreadable.offset, unreadable.reason, unreadable.detail
        if tp is None or offset is None:
            log.error("kafka_record_unreadable", reason=reason, error=detail,
                      why="aiokafka did not say which record; it has moved past it")
            return
        pending, consumer = self._pending.get(tp), self._consumer
        if pending is None or consumer is None:  # not ours any more: its new owner meets it
            return
        if tp not in self._committed:
            await self._note_resume(tp, offset)
            if self._pending.get(tp) is not pending:
                return
            self._committed[tp] = offset
        log.error("kafka_record_unreadable", partition=_partition_key(tp), offset=offset, reason=reason,
                  error=detail, fix=unreadable.fix)
        await self.dead_letter.send(b"", reason, detail, unreadable.origin)
        self.dead_count += 1
        if self._pending.get(tp) is not pending:  # revoked while the dead letter was sent
            return
        pending.append(_Seen(offset, dead=True))
        self._gaps.observe(tp, offset, offset)
        self._next_offset[tp] = offset + 1
        try:
            behind = tp in consumer.assignment() and await consumer.position(tp) <= offset
        except IllegalStateError:  # revoked while position() waited: its new owner reads from the commit
            return
        if behind:
            consumer.seek(tp, offset + 1)
        if pending[0].dead:  # nothing handed out is pending before it: commit past it now
            await self._commit_partitions({tp: self._committed[tp]})

    async def _check_gaps(self) -> None:
        """Confirm skipped offsets against the broker's log start (at most once a second); each loss is
        an ERROR with the fix and counts in ``finsent_kafka_records_expired_total``."""
        consumer = self._consumer
        if consumer is None or not self._gaps.suspected:
            return
        try:
            async with asyncio.timeout(LAG_PROBE_TIMEOUT_S):
                losses = await self._gaps.verify(consumer.beginning_offsets)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("kafka_log_start_unknown", error=repr(exc)[:300])
            return
        for loss in losses:
            _report_loss(loss, self.kafka.auto_offset_reset)

    def _observe_lag(self, tp: TopicPartition, next_offset: int) -> None:
        """Consumer lag = the broker's high watermark (as of this fetch) - the next offset to read."""
        highwater = self._consumer.highwater(tp) if self._consumer is not None else None
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - next_offset))

    def _pause(self) -> None:
        if self.paused or self._consumer is None:
            return
        self._resumed.clear()
        self._consumer.pause(*self._consumer.assignment())
        log.info("consumption_paused", backlog=self.backlog, max_buffered=self.kafka.max_buffered_records)

    def _maybe_resume(self) -> None:
        if not self.paused or self.backlog > self.kafka.max_buffered_records // 2:
            return
        self._resumed.set()
        if self._consumer is not None and not self._held:
            self._consumer.resume(*self._readable(self._consumer))
        log.info("consumption_resumed", backlog=self.backlog)

    # --- acknowledging ------------------------------------------------------------------------------

    async def commit(self, records: Sequence[SourceRecord]) -> None:
        """Commit, per partition, the highest offset + 1 among ``records`` (and dead records right after)."""
        upto: dict[TopicPartition, int] = {}
        for record in records:
            tp, offset = record.position
            upto[tp] = max(upto.get(tp, 0), offset + 1)
        await self._commit_partitions(upto)

    async def _commit_partitions(self, upto: dict[TopicPartition, int]) -> None:
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            for tp, target in upto.items():
                pending = self._pending.get(tp)
                if pending is None or tp not in self._committed:
                    log.debug("commit_skipped_not_owned", topic=tp.topic, partition=tp.partition)
                    continue
                while pending and pending[0].offset < target:
                    pending.popleft()
                while pending and pending[0].dead:  # dead letters are processed: carry them along
                    target = pending.popleft().offset + 1
                if target > self._committed[tp]:
                    offsets[tp] = target
            if offsets and self._consumer is not None:
                self.on_group_read_before = None  # from here a committed offset may be this process's own
                try:
                    await self._consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError) as exc:
                    # A rebalance took the partitions: the new owner redelivers (at-least-once).
                    log.warning("commit_failed", error=str(exc), partitions=len(offsets))
                else:
                    for tp, offset in offsets.items():
                        if tp in self._committed:
                            self._committed[tp] = offset
        self._maybe_resume()
