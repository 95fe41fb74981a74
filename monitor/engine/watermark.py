"""Event-time watermark: which buckets are closed, and which messages arrive too late.

Lanes: each independently ordered input (a Kafka partition; one lane for a file) tracks its own
newest event time, and the watermark is the *minimum* over the lanes minus ``allowed_lateness_s``,
so a partition that lags (consumer skew, a slow producer) does not make the others' data late.
A lane the source declared (an assigned partition) holds the watermark until it delivers data or
is marked idle (no data for a while, decided by the caller's clock: this module has none).
The watermark never moves backwards.

Clock skew: a lane's time counts at most ``max_ahead_s`` past ``wall_clock()`` (when given). A message
dated in the future but inside the source's plausibility bound (``source.max_future_s``, an hour) is kept
in its own bucket, but it does not carry event time with it: one such record followed by a quiet spell
closed the next hour's buckets, and every on-time message after it was dead-lettered as late.
Without a clock (the pipeline passes none for a replay or backtest with ``source.max_future_s = 0``, the
setting for streams dated in the future; never for ``monitor run``) event time follows the data: capped, a
replay shifted a year ahead was never evaluated.

Jumps: a message dated far ahead of the stream (a mistyped year in a replayed file) reaches ``observe``
only once its partition confirmed it (monitor/engine/time_jumps.py); until then it is held, not counted.

Policy: a bucket is closed once the watermark passes its end; a message whose bucket is already
closed is *late*: counted in ``finsent_late_messages_total`` and dead-lettered with reason ``late``
(never silently dropped), because its bucket has already been evaluated for alerts.
Each message is judged against the watermark as it was when the message arrived, which makes the
verdicts independent of how the source chopped the stream into batches.

Cluster mode (``per_lane_promises``): several daemons share the partitions, so what is final is
decided per partition. A message is late when its bucket is covered by the promise this instance
published for its partition ("data before T is final", ``promise``) or by the buckets the cluster
leader has already evaluated (``close_through``). An adopted partition starts with the promise its
previous owner made; the local watermark still says which buckets this instance may close.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from monitor.windows.buckets import align_s

MAX_BOUNDARIES_PER_ADVANCE = 10_000
MAX_AHEAD_OF_CLOCK_S = 30
"""How far past the wall clock a lane's event time may count (publishers' clocks run a little fast)."""


@dataclass(slots=True)
class ClockSkew:
    """Messages whose event time was held back to the wall clock, since the last report."""

    observed: int = 0
    capped: int = 0
    max_excess_s: int = 0
    """Most seconds a message's event time lay beyond ``wall clock + max_ahead_s``."""

    def count(self, excess_s: int) -> None:
        self.observed += 1
        if excess_s > 0:
            self.capped += 1
            self.max_excess_s = max(self.max_excess_s, excess_s)


@dataclass(slots=True)
class Watermark:
    bucket_s: int
    allowed_lateness_s: int
    _lanes: dict[Hashable, int] = field(default_factory=dict)
    _expected: set[Hashable] = field(default_factory=set)
    _idle: set[Hashable] = field(default_factory=set)
    _value_s: int | None = None
    _reported_until_s: int | None = None
    _first_event_s: int | None = None
    _closed_floor_s: int | None = None
    per_lane_promises: bool = False
    _promised: dict[Hashable, int] = field(default_factory=dict)
    wall_clock: Callable[[], float] | None = None
    """Seconds since the epoch (``time.time``): caps how far ahead of it event time may move; None = no cap."""
    max_ahead_s: int = MAX_AHEAD_OF_CLOCK_S
    _skew: ClockSkew = field(default_factory=lambda: ClockSkew())

    def take_clock_skew(self) -> ClockSkew:
        """Counts since the last call (then reset): a host clock behind the publishers' shows as most
        messages capped, and event time (so every alert) lags by the skew."""
        report, self._skew = self._skew, ClockSkew()
        return report

    @property
    def max_event_s(self) -> int | None:
        """Newest event time seen on any lane."""
        return max(self._lanes.values()) if self._lanes else None

    def lane_reference_s(self, lane: Hashable) -> int | None:
        """``lane``'s event time now: its newest counted message (the stream's newest for a lane without
        data), or what ``advance_to`` let event time reach (the idle sweep), whichever is later; None before
        anything. An event-time jump is measured from it (monitor/engine/time_jumps.py)."""
        own = self._lanes.get(lane)
        base = own if own is not None else self.max_event_s
        swept = None if self._value_s is None else self._value_s + self.allowed_lateness_s
        if base is None or swept is None:
            return base if swept is None else swept
        return max(base, swept)

    @property
    def first_event_s(self) -> int | None:
        """Oldest event time seen (where detection of this stream starts)."""
        return self._first_event_s

    @property
    def value_s(self) -> int | None:
        return self._value_s

    @property
    def closed_until_s(self) -> int | None:
        """End of the newest closed bucket (a bucket boundary), or None while nothing is closed."""
        wm = self._value_s
        return None if wm is None else align_s(wm, self.bucket_s)

    def expect_lanes(self, lanes: Iterable[Hashable]) -> None:
        """Lanes the source will deliver (assigned partitions); each holds the watermark until it
        has data or is marked idle. Lanes no longer expected stop holding it."""
        self._expected = set(lanes)
        for gone in [lane for lane in self._lanes if lane not in self._expected]:
            del self._lanes[gone]
        for gone in [lane for lane in self._promised if lane not in self._expected]:
            del self._promised[gone]
        self._recompute()

    @property
    def idle_lanes(self) -> frozenset[Hashable]:
        return frozenset(self._idle)

    def mark_idle(self, lanes: Iterable[Hashable]) -> None:
        self._idle.update(lanes)
        self._recompute()

    def wake(self, lanes: Iterable[Hashable]) -> None:
        """Idle lanes that have data waiting (a backlog not fetched yet) hold the watermark again,
        so their data is not judged late against the lanes that happened to be fetched first.
        The watermark does not move back: only further advance waits for them."""
        self._idle.difference_update(lanes)

    def close_through(self, boundary_s: int) -> None:
        """Buckets ending at or before ``boundary_s`` were evaluated elsewhere (the cluster leader):
        later data for them is late here too. They are not reported as newly closed."""
        if self._closed_floor_s is None or boundary_s > self._closed_floor_s:
            self._closed_floor_s = boundary_s

    def promise(self, lane: Hashable, closed_until_s: int) -> None:
        """Cluster mode: data of ``lane`` in buckets ending at or before ``closed_until_s`` is final
        (published, or inherited from the lane's previous owner). Never moves back."""
        if closed_until_s > self._promised.get(lane, closed_until_s - 1):
            self._promised[lane] = closed_until_s

    def lane_closed_s(self) -> dict[Hashable, int]:
        """Per lane with data: the end of the newest bucket its own data has closed."""
        return {lane: align_s(t - self.allowed_lateness_s, self.bucket_s) for lane, t in self._lanes.items()}

    def is_late(self, event_s: int, lane: Hashable = None) -> bool:
        own = self._promised.get(lane) if self.per_lane_promises else self.closed_until_s
        marks = [m for m in (own, self._closed_floor_s) if m is not None]
        if not marks:
            return False
        bucket_end = align_s(event_s, self.bucket_s) + self.bucket_s
        return bucket_end <= max(marks)

    def observe(self, event_s: int, lane: Hashable = None) -> bool:
        """Record a message on ``lane``; returns False (and records nothing) if it is late."""
        if self.is_late(event_s, lane):
            return False
        counted_s = event_s
        if self.wall_clock is not None:
            counted_s = min(event_s, int(self.wall_clock()) + self.max_ahead_s)
            self._skew.count(event_s - counted_s)
        if counted_s > self._lanes.get(lane, counted_s - 1):
            self._lanes[lane] = counted_s
        if self._first_event_s is None or event_s < self._first_event_s:
            self._first_event_s = event_s
        self._idle.discard(lane)
        self._recompute()
        return True

    def _recompute(self) -> None:
        active = [t for lane, t in self._lanes.items() if lane not in self._idle]
        waiting = self._expected - self._lanes.keys() - self._idle
        if waiting or not active:
            return
        self._raise_to(min(active) - self.allowed_lateness_s)

    def _raise_to(self, value_s: int) -> None:
        if self._value_s is None or value_s > self._value_s:
            self._value_s = value_s

    def advance_to(self, event_s: int) -> None:
        """Move event time to ``event_s`` without a message (idle source, end of replay)."""
        self._raise_to(event_s - self.allowed_lateness_s)

    def newly_closed(self) -> list[int]:
        """Bucket boundaries closed since the previous call, oldest first (bounded)."""
        closed = self.closed_until_s
        if closed is None:
            return []
        if self._reported_until_s is None:
            # the first report starts at the end of the oldest bucket that holds data
            first = self._first_event_s if self._first_event_s is not None else closed
            start = min(align_s(first, self.bucket_s) + self.bucket_s, closed)
        else:
            start = self._reported_until_s + self.bucket_s
        if closed < start:
            return []
        first = max(start, closed - (MAX_BOUNDARIES_PER_ADVANCE - 1) * self.bucket_s)
        self._reported_until_s = closed
        return list(range(first, closed + 1, self.bucket_s))
