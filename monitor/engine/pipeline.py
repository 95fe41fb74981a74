"""The processing loop: source → micro-batched classification → durable windows → commit → detection.

Three tasks joined by bounded queues: the reader pulls a source batch, filters late messages, and
starts its classification (at most ``max_in_flight_batches`` batches in flight); the writer awaits
classifications *in source order*, applies them to the window store, and only then commits the
source offsets (at-least-once; the store's per-id idempotency turns redelivery into exactly-once
counts); the detection task evaluates alerts for every bucket the watermark closed, in order, behind
the writer, so a slow detection pass never delays the next commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog

from consumers.deadletter import DeadLetterSink, json_bytes
from consumers.schema import message_to_dict
from monitor import metrics
from monitor.cluster.member import ClusterMember
from monitor.cluster.watermark import ClusterWatermark
from monitor.durations import duration, iso_utc
from monitor.engine.batching import MicroBatcher
from monitor.engine.enrich import Enricher
from monitor.engine.poison import KnownPoison, isolate
from monitor.engine.time_jumps import JumpGuard, Offer
from monitor.engine.watermark import MAX_BOUNDARIES_PER_ADVANCE, Watermark
from monitor.retry import is_transient, retrying
from monitor.types import (
    ClassifiedMessage,
    GroupMemberSource,
    HoldableSource,
    PartitionedSource,
    Prediction,
    SharedSource,
    Source,
    SourceRecord,
)
from monitor.windows.base import Applied, WindowStore
from monitor.windows.buckets import align_s, content_digest, other_content

log = structlog.get_logger(__name__)


class Evaluator(Protocol):
    """Anything that evaluates detection at an event-time bucket boundary (the AlertEngine)."""

    async def evaluate(self, now_s: int) -> Sequence[object]: ...


@runtime_checkable
class ResumableEvaluator(Evaluator, Protocol):
    """An evaluator with a durable cursor: after a restart the pipeline resumes detection there."""

    async def resume_point_s(self) -> int | None:
        """End (event time) of the last bucket evaluated before this process started, if any."""
        ...

    async def begin_at(self, start_s: int) -> None:
        """Make ``start_s`` (a bucket start) the durable start of detection, unless one exists."""
        ...


@dataclass(slots=True)
class PipelineStats:
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    repeats: int = 0
    """Messages marked as repeats of an earlier story (novelty), counted as ``repeats`` in windows."""
    late: int = 0
    refused: dict[str, int] = dataclasses.field(default_factory=dict)
    """Rows read, then dead-lettered by the pipeline for a reason other than ``late`` (counted above), by
    reason (implausible_time, id_conflict, classifier_error): with them every row read is in one count."""
    batches: int = 0
    notifications: int = 0
    evaluated_until_s: int | None = None
    """End of the last bucket handed to detection (event time)."""
    dead_letters: int = 0
    """Rows dead-lettered during the run (filled in by MonitorApp when the run ends)."""
    deliveries_delivered: int = 0
    """Notifications that reached a sink (filled in by MonitorApp when the run ends)."""
    deliveries_abandoned: int = 0
    """Notifications a sink never got, attempts exhausted (filled in by MonitorApp when the run ends)."""
    undelivered: dict[str, int] = dataclasses.field(default_factory=dict)
    """Per sink, notifications still queued at the end of the run (filled in by MonitorApp)."""
    undelivered_kept: bool = False
    """Whether those wait in a durable (Redis) outbox for the next start, or end with the process."""
    exhausted: bool = False
    """The source ended (a file replay read to its end), rather than a stop request ending the run."""
    inputs_cut_off: list[str] = dataclasses.field(default_factory=list)
    """Replayed files whose gzip data broke off: rows after the break were not read (filled in by MonitorApp)."""

    def refusals(self) -> list[tuple[str, int]]:
        """Rows read and then dead-lettered, by reason: ``late`` first, then ``refused`` by name (none at 0). The
        summaries of run, replay and backtest list them so that every row read is in one count."""
        return [(reason, n) for reason, n in [("late", self.late), *sorted(self.refused.items())] if n]


@dataclass(slots=True)
class _InFlight:
    records: list[SourceRecord]
    kept: list[SourceRecord]
    predictions: asyncio.Task[list[Prediction]] | None
    read_at: float
    closes: list[int]
    """Bucket boundaries the watermark closed once this batch was observed: evaluated right after
    this batch is durable, so detection never runs ahead of the data it reads."""
    lane_closed: dict[Hashable, int] = dataclasses.field(default_factory=dict)
    """Cluster mode: what each lane's data had closed once this batch was observed (published as
    marks once the batch is durable)."""


FILLED_BY_APP = frozenset({"dead_letters", "deliveries_delivered", "deliveries_abandoned", "undelivered",
                           "undelivered_kept", "inputs_cut_off"})
"""Stats MonitorApp fills in once every part has stopped: logged with ``monitor_stopped``, not here (where
they read 0 while 3 rows had been dead-lettered and 16 alerts delivered)."""

_DONE = None
STOP_GRACE_S = 10.0
"""Default of ``Pipeline(stop_grace_s=...)``: after a stop request, retries through an outage go on this
long, then the pipeline stops without committing what is not durable (redelivered after the restart)
instead of hanging the shutdown. The daemon passes half of ``shutdown_timeout_s``."""
KEEPALIVE_S = 5.0
"""While the in-flight queue stays full (a downstream outage), the reader asks a source that cannot be
held to wait this long at a time; a holdable source (Kafka) is asked to stay in its group at its own
``keepalive_s``, without fetching."""
STEP_ASIDE_LEASES = 4
"""Cluster mode: a member whose heartbeat has not reached Redis for this many leader leases (60 s by default) leaves
the consumer group (``GroupMemberSource.step_aside``), so the others take its partitions: its marks had expired,
and detection, which waits for every partition, waited for the whole outage of one member's Redis (found by
review: 40 s of one member's Redis path held the whole cluster 40 s)."""
MAX_PENDING_DETECTIONS = 32
RECENT_NOTIFICATIONS = 50


def _mirror_leadership(leading: bool) -> None:
    """The leader gauge, and the leader-only gauges zeroed on every other instance: a former leader kept exporting its
    last ``finsent_cluster_unmarked_partitions``, and ``FinsentClusterPartitionsUnowned`` (a max over instances)
    paged for a cluster whose real leader saw none (found by review)."""
    metrics.CLUSTER_LEADER.set(int(leading))
    if not leading:
        metrics.CLUSTER_UNMARKED_PARTITIONS.set(0)
        metrics.CLUSTER_IDLE_BACKLOG.set(0)


def _event_s(rec: SourceRecord) -> int:
    return int(rec.message.event_time.timestamp())


def _retrieved(task: asyncio.Task[list[Prediction]]) -> None:
    """Mark a classification's error as seen; whoever awaits the task still gets it."""
    if not task.cancelled():
        task.exception()


class Pipeline:
    """Runs until the source is exhausted (replay) or ``request_stop()`` (SIGTERM), then drains."""

    def __init__(
        self,
        source: Source,
        batcher: MicroBatcher,
        store: WindowStore,
        dead_letter: DeadLetterSink,
        evaluator: Evaluator | None,
        *,
        allowed_lateness_s: int,
        max_batch_size: int,
        max_wait_ms: int,
        max_in_flight_batches: int,
        max_buckets_per_evaluation: int = 1,
        cluster: ClusterWatermark | None = None,
        enricher: Enricher | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        cap_to_wall_clock: bool = True,
        jumps: JumpGuard | None = None,
    ) -> None:
        """``cap_to_wall_clock``: event time counts at most ``MAX_AHEAD_OF_CLOCK_S`` past the wall clock
        (``Watermark.wall_clock``: one record dated ahead must not close the next hour's buckets of a live
        stream). Only history -- a replay or backtest (``MonitorApp(history=True)``) with
        ``source.max_future_s = 0`` -- passes False: its data's clock is not the wall clock, and a stream dated
        ahead is evaluated to its end. The live daemon always keeps the cap.
        ``jumps``: holds a message dated far ahead of the stream until its lane confirms it
        (monitor/engine/time_jumps.py); None = off (every message moves event time at once)."""
        self.source = source
        self.stop_grace_s = stop_grace_s
        self._holdable = source if isinstance(source, HoldableSource) else None
        """The source again, when it can be held in its group through an outage (checked once, not per batch)."""
        self.enricher = enricher
        """Entity linking + novelty between parsing and classification (None = payload tickers only)."""
        self._partitioned = source if isinstance(source, PartitionedSource) else None
        self.is_leader = False
        self._lease_renewed_at = float("-inf")
        self._leading_pass = False
        """A leader pass is evaluating (the cluster tick renews the lease meanwhile)."""
        self._cluster_evaluated_s: int | None = None
        self.batcher = batcher
        self.store = store
        self.dead_letter = dead_letter
        self.evaluator = evaluator
        self.watermark = Watermark(store.bucket_s, allowed_lateness_s,
                                   wall_clock=time.time if cap_to_wall_clock else None)
        self.jumps = jumps or JumpGuard(max_jump_s=0)
        self._release_due: bool | None = None
        """Set by the idle sweep (whether the opening may be settled too); the reader releases holds then.
        Every change to the jump guard happens in the reader task: a release run by the sweep itself raced
        the reader's commit list, and its errors were only logged while its records were already out of
        the guard (both found by review)."""
        self._wake = asyncio.Event()
        self.member: ClusterMember | None = None
        if cluster is not None:
            if not isinstance(source, SharedSource):
                raise ValueError("cluster mode needs a source shared by a consumer group (Kafka)")
            self.member = ClusterMember(cluster, source, self.watermark)
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_buckets_per_evaluation = max(1, max_buckets_per_evaluation)
        self._evaluated_once = False
        self._detection_begun = False
        self._resume_floor_s: int | None = None
        """The durable cursor at a restart, until the watermark passes it (see ``_behind_cursor``)."""
        self._resumed_at: tuple[int, float] | None = None
        """(event time, monotonic time) where a restart found detection: the idle sweep's starting point until
        the first record. Without it a restart in a quiet spell (everything read and committed before) froze
        event time until the next message: no bucket closed, firing alerts never resolved, and
        FinsentDetectionLag paged with a consumer lag of 0 (found by review)."""
        self.stats = PipelineStats()
        self._queue: asyncio.Queue[_InFlight | None] = asyncio.Queue(maxsize=max_in_flight_batches)
        # Bounded lag of detection behind the writer (in batches whose buckets closed); beyond it the
        # writer waits, so a detection backlog pushes back on the source instead of growing.
        self._detections: asyncio.Queue[list[int] | None] = asyncio.Queue(maxsize=MAX_PENDING_DETECTIONS)
        self._stop = asyncio.Event()
        self._stop_requested_at: float | None = None
        self._lanes: frozenset[Hashable] = frozenset()
        self._lane_seen: dict[Hashable, float] = {}
        self._last_data_at: float | None = None
        self._not_caught_up_at = float("-inf")
        self._waiting_to_enqueue = 0
        """Batches read and waiting for room in the in-flight queue (the idle sweep must not overtake them)."""
        self.known_poison = KnownPoison()
        self.finished = asyncio.Event()
        self.recent_notifications: deque[object] = deque(maxlen=RECENT_NOTIFICATIONS)
        """The newest notifications produced (bounded), for the end-of-run summary."""

    def request_stop(self) -> None:
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        self._stop.set()

    def _stop_overdue(self) -> bool:
        return self._stop_requested_at is not None and time.monotonic() - self._stop_requested_at > self.stop_grace_s

    async def run(self) -> PipelineStats:
        """Process until the source is exhausted (a finite replay: then every bucket is closed, so
        the last windows are evaluated too) or a stop is requested (live: buckets stay open)."""
        await self._resume_detection()
        # TaskGroup: if the writer or detection fails (store down past its retries), the reader is
        # cancelled too and nothing more is committed; uncommitted records are redelivered after restart.
        async with asyncio.TaskGroup() as group:
            group.create_task(self._write_loop(), name="pipeline-writer")
            group.create_task(self._detect_loop(), name="pipeline-detection")
            try:
                exhausted = await self._read_loop()
            except BaseException:
                # cancelled because the writer or detection failed: never wait on a queue that
                # nobody drains any more
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(_DONE)
                raise
            await self._queue.put(_DONE)
        if exhausted and self.watermark.max_event_s is not None:
            self.watermark.advance_to(self.watermark.max_event_s + self.watermark.allowed_lateness_s
                                      + self.store.bucket_s)
            await self._evaluate(self.watermark.newly_closed())
        self.stats.exhausted = exhausted
        self.finished.set()
        own = {k: v for k, v in dataclasses.asdict(self.stats).items() if k not in FILLED_BY_APP}
        log.info("pipeline_finished", **own)
        return self.stats

    async def _resume_detection(self) -> None:
        """After a restart detection goes on from the durable cursor: whatever boundary the new
        watermark reports first, the evaluator walks every bucket from the cursor up to it, in
        bounded passes. Until the new watermark passes the cursor, a record for a bucket before it is a
        redelivery when the store has its id (counted once either way), else late (``_behind_cursor``)."""
        if not isinstance(self.evaluator, ResumableEvaluator) or self.member is not None:
            return
        cursor = await retrying("detection", self.evaluator.resume_point_s)
        if cursor is not None:
            self._evaluated_once = self._detection_begun = True
            self._resume_floor_s = cursor
            # the cursor's last bucket was closed, so the newest event then was at least this late
            self._resumed_at = (cursor + self.watermark.allowed_lateness_s, time.monotonic())
            log.info("detection_resumed", evaluated_until_s=cursor)

    async def _begin_detection(self) -> None:
        """The first data is durable: record where detection starts (its bucket), so a daemon stopped
        before its first evaluation does not make its successor start at the successor's data."""
        first = self.watermark.first_event_s
        if self._detection_begun or first is None:
            return
        self._detection_begun = True
        newest = self.watermark.max_event_s or first
        # never before the store's retention behind the newest data: one old-dated article among the first
        # messages (2000-01-01 passes source.min_event_time) set detection walking decades of empty buckets
        first = max(first, newest - self.store.retention_s)
        if isinstance(self.evaluator, ResumableEvaluator) and self.member is None:
            await retrying("detection", functools.partial(self.evaluator.begin_at, first))

    async def _read_loop(self) -> bool:
        """Returns True when the source ran dry, False when stopped. A stop request interrupts a
        source that is waiting (a paced replay sleeping until its next event, a long poll)."""
        batches = aiter(self.source.batches(self.max_batch_size, self.max_wait_ms))
        stopped = asyncio.create_task(self._stop.wait())
        try:
            while True:
                pending = asyncio.ensure_future(anext(batches))
                while not pending.done() and not stopped.done():
                    woken = asyncio.create_task(self._wake.wait())
                    await asyncio.wait({pending, stopped, woken}, return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                    await self._release_if_due()
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await pending
                    return False
                try:
                    records = pending.result()
                except StopAsyncIteration:
                    await self._end_holds()
                    return True
                if records:
                    await self._submit(records)
                if self._stop.is_set():
                    return False
        finally:
            stopped.cancel()

    async def _sync_lanes(self) -> None:
        if self._partitioned is None:
            return
        lanes = self._partitioned.lanes()
        if lanes != self._lanes:
            now = time.monotonic()
            self._lane_seen = {lane: self._lane_seen.get(lane, now) for lane in lanes}
            self._lanes = lanes
            self.watermark.expect_lanes(lanes)
        if self.member is not None:
            await retrying("cluster", functools.partial(self.member.sync_lanes, lanes), give_up=self._stop_overdue)

    async def _lagging(self, lanes: frozenset[Hashable]) -> set[Hashable]:
        if self._partitioned is None or not lanes:
            return set()
        return await self._partitioned.lagging(lanes)

    async def _submit(self, records: list[SourceRecord]) -> None:
        await self._sync_lanes()
        if self.watermark.idle_lanes:
            self.watermark.wake(await self._lagging(self.watermark.idle_lanes))
        if self.jumps.holding and isinstance(self.source, SharedSource):
            # a revoked partition's held records were never committed: its next owner reads them again
            # (a range replay's finished partition keeps its holds until the end: nobody reads it again)
            self.jumps.forget_lanes(self._lanes)
        now = time.monotonic()
        floor = self._resume_floor()
        kept = await self._observe(records)
        for rec in records:
            self._lane_seen[rec.lane] = now
        self._last_data_at = now
        self.stats.read += len(records)
        await self._dispatch(records, kept, floor)

    async def _observe(self, records: list[SourceRecord]) -> list[SourceRecord]:
        """Each record through the jump guard, then the watermark: those to count now, in order. Late
        ones are dead-lettered (``_without_late``); a jump is held until its lane confirms it, or
        dead-lettered if refuted."""
        admitted: list[SourceRecord] = []
        behind: list[SourceRecord] = []
        # id of a record behind -> the newest event time when it came, what it was late by (found by review: the
        # newest of its whole batch made a row 20 min behind read "1h 20m behind")
        newest_then: dict[int, int | None] = {}
        todo = deque(records)
        while todo:
            rec = todo.popleft()
            offer = self.jumps.offer(rec, _event_s(rec), self.watermark.lane_reference_s)
            self._log_jump(rec, offer)
            for bad, why in offer.refuted:
                await self._dead_letter_jump(bad, why, "event_time_jump_refuted")
            for ok in offer.admit:
                admitted.append(ok)
                newest_s = self.watermark.max_event_s
                if not self.watermark.observe(_event_s(ok), ok.lane):
                    behind.append(ok)
                    newest_then[id(ok)] = newest_s
            todo.extendleft(reversed(offer.again))
        return await self._without_late(admitted, behind, newest_then)

    @staticmethod
    def _log_jump(rec: SourceRecord, offer: Offer) -> None:
        """One outcome per hold: held when it starts, then confirmed, refuted, released or unconfirmed."""
        if offer.held_jump_s is not None:
            metrics.EVENT_TIME_JUMPS.labels("held").inc()
            log.info("event_time_jump_held", lane=str(rec.lane), position=str(rec.position), ahead_s=offer.held_jump_s)
        if offer.confirmed_jump_s is not None:
            metrics.EVENT_TIME_JUMPS.labels("confirmed").inc()
            log.info("event_time_jump_confirmed", lane=str(rec.lane), event_time=iso_utc(offer.confirmed_jump_s))
        elif offer.refuted:
            metrics.EVENT_TIME_JUMPS.labels("refuted").inc()

    async def _dispatch(self, records: list[SourceRecord], kept: list[SourceRecord], floor: int | None) -> None:
        """Start classifying ``kept`` and queue it; ``records`` (this read) are committed once it is durable,
        except a lane's records from its first held one on (monitor/engine/time_jumps.py)."""
        if floor is not None:
            kept = await self._behind_cursor(kept, floor)
        if self.enricher is not None:
            kept = self.enricher.link_all(kept)
        kept = await self._set_apart_known_poison(kept)
        task = asyncio.create_task(self.batcher.classify([r.message.text for r in kept]))
        task.add_done_callback(_retrieved)  # a stop cut short may never await it: no "never retrieved" noise
        metrics.IN_FLIGHT.inc()
        closes = self.watermark.newly_closed()
        commit = self.jumps.committable(records)
        await self._enqueue(_InFlight(commit, kept, task, time.monotonic(), closes, self._lane_snapshot()))

    async def _end_holds(self) -> None:
        """The finite stream ended: the opening is settled, and a jump still waiting for confirmation is
        dead-lettered (it never was)."""
        floor = self._resume_floor()
        resolved, refuted = await self._settle_opening()
        kept = await self._observe(resolved)
        resolved += refuted
        dead = self.jumps.drain()
        if dead:
            metrics.EVENT_TIME_JUMPS.labels("unconfirmed").inc(len({rec.lane for rec, _ in dead}))
        for rec, why in dead:
            await self._dead_letter_jump(rec, why, "event_time_jump_unconfirmed")
        resolved += [rec for rec, _ in dead]
        if resolved:
            await self._dispatch(resolved, kept, floor)

    async def _settle_opening(self) -> tuple[list[SourceRecord], list[SourceRecord]]:
        """Close the stream's opening early (it ended or went quiet): the records to offer again, in order,
        and those it refuted, dead-lettered here (both to be committed)."""
        opening = self.jumps.close_opening()
        for bad, why in opening.refuted:
            await self._dead_letter_jump(bad, why, "event_time_jump_refuted")
        if opening.refuted:
            metrics.EVENT_TIME_JUMPS.labels("refuted").inc()
        return opening.again, [rec for rec, _ in opening.refuted]

    async def _dead_letter_jump(self, rec: SourceRecord, why: str, event: str) -> None:
        log.warning(event, lane=str(rec.lane), position=str(rec.position), event_time=iso_utc(_event_s(rec)))
        await self._dead_letter(rec, "implausible_time", why)

    def _request_release(self, settle_opening: bool) -> None:
        """The idle sweep (another task): ask the reader to release holds event time caught up with."""
        self._release_due = bool(self._release_due) or settle_opening
        self._wake.set()

    async def _release_if_due(self) -> None:
        """In the reader: holds the sweep's event time caught up with are offered again; the stream's opening
        is settled with what arrived when the sweep found every partition caught up and quiet."""
        settle_opening, self._release_due = self._release_due, None
        self._wake.clear()
        if settle_opening is None:
            return
        floor = self._resume_floor()
        again, refuted = await self._settle_opening() if settle_opening else ([], [])
        released = self.jumps.recheck(self.watermark.lane_reference_s)
        if released:
            metrics.EVENT_TIME_JUMPS.labels("released").inc(len({rec.lane for rec in released}))
            log.info("event_time_jump_released", lanes=sorted({str(rec.lane) for rec in released}))
        again += released
        if again or refuted:
            await self._dispatch(again + refuted, await self._observe(again), floor)

    async def _set_apart_known_poison(self, records: list[SourceRecord]) -> list[SourceRecord]:
        """Copies of a text the model already failed on alone are dead-lettered without another try."""
        if not self.known_poison:  # the usual case: no digest per message on the hot path
            return records
        kept = []
        for rec in records:
            why = self.known_poison.why(rec.message.text)
            if why is None:
                kept.append(rec)
            else:
                await self._dead_letter(rec, "classifier_error", f"the same text failed the model before: {why}")
        return kept

    async def _enqueue(self, item: _InFlight) -> None:
        """Backpressure: wait for room in the in-flight queue. While it stays full (the store or
        detection is retrying through an outage), a holdable source (Kafka) is kept in its group
        with its partitions paused, so the outage neither grows memory nor triggers a rebalance."""
        holdable = self._holdable
        self._waiting_to_enqueue += 1
        try:
            while True:
                try:
                    async with asyncio.timeout(holdable.keepalive_s if holdable is not None else KEEPALIVE_S):
                        await self._queue.put(item)
                    return
                except TimeoutError:
                    if holdable is not None:
                        await holdable.hold()
        finally:
            self._waiting_to_enqueue -= 1

    async def watch_membership(self, now_monotonic: float) -> None:
        """Scheduler hook (cluster mode): a member whose last heartbeat is ``STEP_ASIDE_LEASES`` leases old (it lost
        Redis) leaves the consumer group, and joins again once a heartbeat gets through (module constant)."""
        source = self._holdable
        if self.member is None or not isinstance(source, GroupMemberSource):
            return
        cluster = self.member.cluster
        if cluster.beat_at is None:
            return
        if now_monotonic - cluster.beat_at >= STEP_ASIDE_LEASES * cluster.lease_ms / 1000:
            await source.step_aside()
        else:
            source.rejoin()

    def _resume_floor(self) -> int | None:
        """The cursor of a restart while the watermark is still below it, else None (and forgotten)."""
        floor, closed = self._resume_floor_s, self.watermark.closed_until_s
        if floor is not None and closed is not None and closed >= floor:
            self._resume_floor_s = floor = None  # the watermark judges lateness itself from here on
        return floor

    async def _behind_cursor(self, kept: list[SourceRecord], floor: int) -> list[SourceRecord]:
        """Right after a restart the watermark starts afresh, below the buckets detection already judged: a
        record for one of those is late, as it was (or would have been) before the restart, unless the store
        counted it (``_without_late``). Before, one dead-lettered as late just before a crash was counted
        after the restart too (found by review)."""
        b = self.store.bucket_s
        return await self._without_late(kept, [r for r in kept if align_s(_event_s(r), b) + b <= floor])

    async def _without_late(self, records: list[SourceRecord], behind: list[SourceRecord],
                            newest_then: Mapping[int, int | None] | None = None) -> list[SourceRecord]:
        """``records`` less those of ``behind`` (their buckets are closed) the store never counted: those are
        dead-lettered as late. One it counted is a redelivery (a partition changed hands, or the daemon
        restarted, before its offset was committed) and stays, so the store counts it as a duplicate: only the
        restart path asked, and after a handover 30 of 3,000 records were in both the dead letters and the
        windows (found by review). The store is asked only when some are behind: the hot path is unchanged.
        ``newest_then``: per record (``id``), the newest event time when it came (default: the newest now)."""
        if not behind:
            return records
        seen = await retrying("window_store", functools.partial(self.store.seen, [r.message.id for r in behind]),
                              give_up=self._stop_overdue)
        late = {id(r) for r in behind if r.message.id not in seen}
        for rec in records:
            if id(rec) in late:
                newest_s = self.watermark.max_event_s if newest_then is None else newest_then.get(id(rec))
                await self._dead_letter_late(rec, newest_s)
        return [r for r in records if id(r) not in late]

    async def _dead_letter_late(self, rec: SourceRecord, newest_s: int | None) -> None:
        self.stats.late += 1
        metrics.LATE.labels(rec.message.source.value).inc()
        detail = f"event time {rec.message.event_time.isoformat()}: its bucket is already closed and final"
        if newest_s is not None and newest_s > _event_s(rec):  # how late, so a slow feed's fix is plain
            detail += (f" ({duration(newest_s - _event_s(rec))} behind the newest event time {iso_utc(newest_s)}; "
                       f"windows.allowed_lateness_s = {self.watermark.allowed_lateness_s} s: raise it if a feed "
                       "arrives this late)")
        await self._dead_letter(rec, "late", detail)

    async def _dead_letter(self, rec: SourceRecord, reason: str, detail: str) -> None:
        """A valid message the pipeline cannot count, with the reason, where it came from and (Kafka) its key and
        headers (``SourceRecord.wire``)."""
        if reason != "late":
            self.stats.refused[reason] = self.stats.refused.get(reason, 0) + 1
        raw = json_bytes(message_to_dict(rec.message))  # never raises, whatever the message holds
        if rec.wire is None:
            await self.dead_letter.send(raw, reason, detail, {"position": str(rec.position)})
            return
        wire = rec.wire
        await self.dead_letter.send(raw, reason, detail, wire.origin, key=wire.key, headers=wire.headers)

    async def _write_loop(self) -> None:
        while (item := await self._queue.get()) is not _DONE:
            if item.predictions is None:  # a watermark tick with no data (idle sweep)
                await self._detect(item)
                continue
            try:
                classified = await self._classified(item)
                applied = await self._apply_with_retry(classified)
                await self._dead_letter_conflicts(item, classified, applied.conflicts)
                await retrying("source_commit", lambda: self.source.commit(item.records),
                               give_up=self._stop_overdue)
            finally:
                metrics.IN_FLIGHT.dec()
            await self._begin_detection()
            self._account(classified, applied, item.read_at)
            await self._detect(item)
        await self._detections.put(None)

    def _lane_snapshot(self) -> dict[Hashable, int]:
        return self.member.snapshot() if self.member is not None else {}

    async def _detect(self, item: _InFlight) -> None:
        """``item`` is durable: hand the buckets it closed to the detection task. Their data is
        durable and final (later messages for them are late), so detection can run behind the
        writer without delaying the next commit and still see exactly what a synchronous evaluation
        would have seen. In cluster mode the instance publishes its marks instead, and detection
        runs on the leader up to the cluster-wide minimum."""
        if self.member is not None:  # retried like every dependency call: a Redis outage past redis-py's own ~8 s
            # of retries ended the writer, so a cluster-mode daemon exited where a single one waits (found by review)
            await retrying("cluster", functools.partial(self.member.durable, item.lane_closed, item.closes),
                           give_up=self._stop_overdue)
            self.nudge_detection()
        elif item.closes:
            await self._detections.put(item.closes)

    def nudge_detection(self) -> None:
        """Cluster mode: ask the detection task to check leadership and the cluster watermark."""
        with contextlib.suppress(asyncio.QueueFull):
            self._detections.put_nowait([])

    async def _detect_loop(self) -> None:
        while (boundaries := await self._detections.get()) is not None:
            if self.member is None:
                await self._evaluate(boundaries)
            else:
                await retrying("cluster", functools.partial(self._evaluate_cluster, self.member),
                               give_up=self._stop_overdue)

    async def _evaluate_cluster(self, member: ClusterMember) -> None:
        """One leader pass; repeatable (the detection cursor makes a pass idempotent), so retried as a whole.
        The lease is renewed between evaluation points (``_keep_lead``) and the pass stops once it is lost."""
        cluster = member.cluster
        if not await self._lead(cluster.lead):
            self._cluster_evaluated_s = None
            return
        self._lease_renewed_at = time.monotonic()
        b = self.store.bucket_s
        done = self._cluster_evaluated_s
        if done is None:  # new leader: resume where the cluster stopped, or start at its first bucket
            done = await cluster.evaluated_until_s()
            if done is None:
                first = await cluster.first_boundary_s()
                if first is None:
                    return
                done = first - b
            self._cluster_evaluated_s = done
        until = await member.evaluable_until_s(beyond_s=done)
        if until is None:
            return
        first = max(done + b, until - (MAX_BOUNDARIES_PER_ADVANCE - 1) * b)  # bounded, like the watermark
        self._leading_pass = True
        try:
            kept = await self._evaluate(list(range(first, until + 1, b)), functools.partial(self._keep_lead, cluster))
        finally:
            self._leading_pass = False
        if not kept:  # the new leader resumes at the cluster's cursor
            self._cluster_evaluated_s = None
            return
        self._cluster_evaluated_s = until
        await cluster.set_evaluated_until(until)

    async def _lead(self, ask: Callable[[], Awaitable[bool]]) -> bool:
        """Leadership as Redis says (``ask``), mirrored in ``is_leader`` (alert delivery) and the gauge."""
        try:
            self.is_leader = await ask()
        except Exception:
            self.is_leader = False  # leadership unknown: delivery pauses until the lease is read again
            _mirror_leadership(False)
            raise
        _mirror_leadership(self.is_leader)
        return self.is_leader

    async def _keep_lead(self, cluster: ClusterWatermark, *, force: bool = False) -> bool:
        """Renew the lease during a pass, once a third of it went by (or ``force``: the cluster tick); False once
        it is lost. A catch-up pass (up to 10,000 boundaries, a baseline rebuild) used to outlive the lease:
        another instance took the lead while this one went on evaluating and delivering (found by review)."""
        if not self.is_leader:
            return False
        asked_at = time.monotonic()
        if not force and asked_at - self._lease_renewed_at < cluster.lease_ms / 3000:
            return True
        if not await self._lead(cluster.keep_lead):
            log.warning("cluster_leadership_lost", instance=cluster.instance_id,
                        evaluated_until_s=self.stats.evaluated_until_s,
                        why="the leader lease lapsed mid-pass (a pass or a pause longer than alerts.leader_lease_s)",
                        action="evaluation stops here; the new leader resumes at the cluster's cursor")
            return False
        self._lease_renewed_at = asked_at
        return True

    async def cluster_tick(self) -> None:
        """Scheduler hook (cluster mode): renew the lease of a pass in progress, refresh the lanes, the evaluated
        floor and the marks (the heartbeat), then let the detection task check for work."""
        if self.member is None:
            return
        if self._leading_pass:  # also while one evaluation point takes long (the pass renews only between points)
            try:
                await self._keep_lead(self.member.cluster, force=True)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # Redis is away: leadership is unknown (is_leader is False until the pass asks again); the marks
                # below wait for Redis in their retries, as before. Raised, it was one traceback per tick.
        await self._sync_lanes()
        # retried like the lanes: raised, a Redis outage logged one "job raised" traceback per tick (82 in 12 s)
        await retrying("cluster", self.member.refresh_floor, give_up=self._stop_overdue)
        await retrying("cluster", self.member.publish, give_up=self._stop_overdue)
        self.nudge_detection()

    async def _classified(self, item: _InFlight) -> list[ClassifiedMessage]:
        """The batch's predictions; texts the model fails on are dead-lettered (``classifier_error``), a
        broken model stops the pipeline (monitor/engine/poison.py)."""
        assert item.predictions is not None
        labelled, rejected = await isolate(item.kept, item.predictions, self.batcher.classify_alone)
        for rec, why in rejected:
            self.known_poison.add(rec.message.text, why)
            await self._dead_letter(rec, "classifier_error", why)
        repeat_of: dict[str, str] = {}
        if self.enricher is not None:  # after the model: a rejected story is never indexed (engine/enrich.py)
            sentiments = {r.message.id: p.sentiment for r, p in reversed(labelled)}  # the first of an id names it
            repeat_of = self.enricher.repeats(await self._without_conflicts([r for r, _ in labelled]), sentiments)
            self.stats.repeats += len(repeat_of)
            metrics.REPEATS.inc(len(repeat_of))
        return [ClassifiedMessage(r.message, p, repeat_of.get(r.message.id)) for r, p in labelled]

    async def _without_conflicts(self, records: list[SourceRecord]) -> list[SourceRecord]:
        """Those ``apply`` will not report as an ``id_conflict``: one that novelty indexed became the story its
        copies folded into, though it was dead-lettered and never counted (found by review)."""
        if self.enricher is None or self.enricher.novelty is None or not records:
            return records
        stored = await retrying("window_store", functools.partial(self.store.digests, [r.message.id for r in records]),
                                give_up=self._stop_overdue)
        kept: list[SourceRecord] = []
        for rec in records:
            digest = content_digest(rec.message)
            known = stored.setdefault(rec.message.id, digest)  # the first of an id in this batch names it
            if not other_content(known, digest):
                kept.append(rec)
        return kept

    async def _apply_with_retry(self, classified: list[ClassifiedMessage]) -> Applied:
        """Retried until the store answers (monitor/retry.py): an outage pauses the pipeline (and,
        through the bounded queues, the source) instead of killing it; idempotent per message id."""
        return await retrying("window_store", lambda: self.store.apply(classified), give_up=self._stop_overdue)

    async def _dead_letter_conflicts(self, item: _InFlight, classified: list[ClassifiedMessage],
                                     conflicts: Sequence[int]) -> None:
        """A message under an id the store already counted with other content (a publisher reusing ids, a
        corrected story) is not counted: before, it was dropped as a "duplicate", with no reason anywhere."""
        if not conflicts:
            return
        records = {id(rec.message): rec for rec in item.kept}
        for index in conflicts:
            rec = records[id(classified[index].message)]
            detail = (f"message id {rec.message.id!r} was already counted with other content (text or published_at "
                      "differ); the first one counts: give each distinct message its own id")
            await self._dead_letter(rec, "id_conflict", detail)

    def _account(self, classified: list[ClassifiedMessage], applied: Applied, read_at: float) -> None:
        duplicates = len(classified) - applied.fresh - len(applied.conflicts)
        self.stats.batches += 1
        self.stats.applied += applied.fresh
        self.stats.duplicates += duplicates
        metrics.DUPLICATES.inc(duplicates)
        for source, count in Counter(str(item.message.source) for item in classified).items():
            metrics.MESSAGES.labels(source).inc(count)  # one labelled inc per source, not per message
        metrics.END_TO_END_SECONDS.observe(time.monotonic() - read_at)
        if self.watermark.max_event_s is not None:
            metrics.WATERMARK.set(self.watermark.max_event_s)

    def _evaluation_points(self, boundaries: list[int]) -> list[int]:
        """One evaluator call per ``max_buckets_per_evaluation`` consecutive closed buckets (the
        evaluator reads each key's history once per call and evaluates every bucket up to the
        point in order). The very first boundary gets a call of its own, so where evaluation
        starts does not depend on how the first batch happened to be cut."""
        points: list[int] = []
        rest = boundaries
        if rest and not self._evaluated_once:
            points.append(rest[0])
            rest = rest[1:]
            self._evaluated_once = True
        step = self.max_buckets_per_evaluation
        points += [rest[min(i + step, len(rest)) - 1] for i in range(0, len(rest), step)]
        return points

    async def _evaluate(self, boundaries: list[int], between: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Evaluate up to each point in order; False if ``between`` (asked before each point) stopped it."""
        evaluator = self.evaluator
        if evaluator is None:
            return True
        for point in self._evaluation_points(boundaries):
            if between is not None and not await between():
                return False
            notes = await retrying("detection", functools.partial(evaluator.evaluate, point),
                                   give_up=self._stop_overdue)
            self.stats.evaluated_until_s = point
            metrics.ALERT_EVALUATIONS.inc()
            metrics.EVALUATED_UNTIL.set(point)
            self.stats.notifications += len(notes)
            self.recent_notifications.extend(notes)
            for note in notes:
                metrics.NOTIFICATIONS.labels(str(getattr(note, "status", "unknown"))).inc()
        return True

    async def idle_tick(self, now_monotonic: float, idle_after_s: float) -> None:
        """Scheduler hook for live sources, driven by processing time.

        A lane (partition) silent for ``idle_after_s`` stops holding the watermark. When *every*
        lane is silent, event time is assumed to keep flowing at wall-clock pace from the newest
        event seen (minus ``idle_after_s``), so a quiet stream still closes buckets and resolves
        alerts, while a backlog of old history is never overtaken by the wall clock.
        The tick travels through the in-flight queue, behind any batch not yet durable, and is skipped while
        a batch waits for room in that queue: read but not queued, its data would be overtaken (its buckets
        closed and evaluated before it is written, so detection never saw it), and nothing is quiet anyway."""
        if self._waiting_to_enqueue:
            self._not_caught_up_at = now_monotonic  # the wait is not quiet time either
            return
        await self._sync_lanes()
        silent = frozenset(lane for lane, seen in self._lane_seen.items() if now_monotonic - seen >= idle_after_s)
        # a lane whose lag cannot be determined (broker unreachable) is lagging, never idle
        probe_started = time.monotonic()
        lagging = await self._lagging(silent)
        idle = silent - lagging
        if idle:
            self.watermark.mark_idle(idle)
        newest, last_data_at = self.watermark.max_event_s, self._last_data_at
        if newest is None and self._resumed_at is not None and self._lanes <= silent:
            # restarted, nothing read since: from the cursor, once every lane was silent long enough to have been
            # probed (a lane assigned since the restart may hold the backlog of the downtime; found by the
            # regression review)
            newest, last_data_at = self._resumed_at
        # event time follows the wall clock only after every lane was known to be caught up for
        # idle_after_s: never past a partition with unread data or one that cannot be fetched
        # (broker down), and the outage itself does not count as quiet time
        caught_up = not lagging and (self._partitioned is None or bool(self._lanes))
        if not caught_up:
            self._not_caught_up_at = now_monotonic + (time.monotonic() - probe_started)
        if newest is not None and last_data_at is not None and caught_up:
            quiet_s = now_monotonic - max(last_data_at, self._not_caught_up_at)
            if quiet_s >= idle_after_s:
                self.watermark.advance_to(int(newest + quiet_s - idle_after_s + self.watermark.allowed_lateness_s))
        if self.jumps.holding and self._last_data_at is not None:
            # the opening only on a quiet spell with every partition caught up: settled while a partition
            # could not be fetched, its first (maybe mistyped) row became the stream's start (found by review)
            quiet_s = now_monotonic - max(self._last_data_at, self._not_caught_up_at)
            self._request_release(settle_opening=caught_up and quiet_s >= idle_after_s)
        closes = self.watermark.newly_closed()
        if closes:
            await self._queue.put(_InFlight([], [], None, now_monotonic, closes, self._lane_snapshot()))
