"""Event-time jumps: one message dated far ahead of the stream must not move event time.

Why: event time closes buckets. One history row with a mistyped date (2026 for 2016, a day-month swap)
used to move its partition's event time months ahead: every bucket in between closed, the window store
dropped everything older than the new date minus its retention, and the rest of the replay was
dead-lettered as late (measured: the bundled demo stream with one such row gave 0 alerts instead of 13
and 4,129 late rows of 4,231). A live consumer catching up a backlog is hit the same way. The source's
plausibility window (``source.max_future_s``, ``source.min_event_time``) cannot see it: the date is
plausible in itself, only not for this stream.

Policy, per lane (a Kafka partition, or the one file): a message dated more than
``source.max_event_time_jump_s`` past its lane's event time (the newest counted there, or what the idle
sweep let event time reach; the stream's newest for a lane without data) is *held*, not counted. Each
further message of the lane that also jumps past it is held too and votes for the jump; each that does not
is counted as usual and votes against. ``source.event_time_jump_confirmations`` votes for (the first
included) make the jump real (a gap in the data, a partition that caught up): the held messages are counted,
oldest first, except any dated more than the bound (or the voters' own spread) past their median (a
rogue among them). As
many votes against make it a rogue date: the held messages are dead-lettered as ``implausible_time``.
A lane's records from the first held one on are not committed until it is resolved, so a crash redelivers
them (the store counts each id once; a redelivered copy of a held message is not a second vote). At the
end of a finite stream (a range replay's finished partition keeps its holds until then), a jump still
unconfirmed is dead-lettered with that reason. The stream's start is the median of its first messages (at
least ``2 * confirmations - 1``, more while a partition's rows are split by a gap longer than a market closure
and its newest ``confirmations`` do not yet agree, at most ``16 * confirmations``; held until then, or until the
stream ends, or the idle sweep finds every partition caught up and quiet), so a rogue *first* message is caught
too: one dated far ahead is then held like any jump; one dated more than ``MAX_CLOSURE_S`` (and the bound)
before where its partition is now (its agreeing newest rows, else its median where the newer half of its
opening lies within the bound: in a sparse one the gaps are the data's own spacing), and any dated before it,
is dead-lettered as ``implausible_time``. Up to ``2 * confirmations - 2`` such rows ahead of the real ones are
caught; an opening made only of them is a stream of its own (``source.min_event_time`` refuses such dates).
In a live stream (Kafka) the idle sweep releases a hold once its partition's event time comes within the
bound of the held row. Every call comes from the reader task.
Everything is bounded: a lane holds at most ``confirmations - 1`` messages, the opening
``16 * confirmations``.

Sparse streams (messages further apart than the bound, one ticker's history) hold each message until the
next ones arrive, and a replay's last message or two are dead-lettered: raise the bound, or set it to 0.
So is a first message (or a few) dated more than 10 days before a dense run of the next few: no market
closes that long, so it cannot be told from a mistyped date (Friday's rows before Monday's open, and the last
ones before Easter or the Lunar New Year, are kept).

Pure bookkeeping, no clock and no I/O: the pipeline feeds it records and the reference event time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from monitor.durations import duration, iso_utc
from monitor.types import SourceRecord

DEFAULT_MAX_JUMP_S = 6 * 3600
DEFAULT_CONFIRMATIONS = 3
MAX_CLOSURE_S = 10 * 86_400
"""Longer than any market closure (a weekend, Easter's Thursday-to-Tuesday, a Christmas with its Boxing Day, the
Lunar New Year week): an opening row further than this (and the bound) before the next one of its partition is
a mistyped date, not the last trading day's news (4 days dropped Easter's, found by review)."""
OPENING_MAX_PER_CONFIRMATION = 16
"""The opening waits for its newest rows to agree (``_present``) up to ``16 * confirmations`` rows; then it is
settled with what it has (a sparse history never agrees; memory stays bounded)."""


@dataclass(slots=True)
class _Held:
    record: SourceRecord
    event_s: int


@dataclass(slots=True)
class _Hold:
    """A lane's messages that jump past its event time (each a vote for the jump), and how many since did not."""

    held: list[_Held] = field(default_factory=list)
    against: set[tuple[str, str]] = field(default_factory=set)
    """The ``_copy_key`` of each message that did not jump (a redelivered one votes once)."""

    def holds(self, record: SourceRecord) -> bool:
        key = _copy_key(record)
        return any(_copy_key(h.record) == key for h in self.held)


def _copy_key(record: SourceRecord) -> tuple[str, str]:
    """The same message at the same place: a redelivery (an eager rebalance that kept the partition). Another
    message under the same id is not a copy: it is the store's to count as a duplicate or a conflict."""
    return record.message.id, str(record.position)


@dataclass(slots=True)
class Offer:
    """What to do after offering one record (each list in arrival order)."""

    admit: list[SourceRecord] = field(default_factory=list)
    """Count these now (they still go through the watermark's lateness check)."""
    refuted: list[tuple[SourceRecord, str]] = field(default_factory=list)
    """Dead-letter these as ``implausible_time`` with the detail given."""
    again: list[SourceRecord] = field(default_factory=list)
    """Offer these again, in order, after the admitted ones are observed (the opening, once settled: its
    refuted records are dead-lettered first)."""
    confirmed_jump_s: int | None = None
    """Set when this offer confirmed a jump: the newest event time it admitted."""
    held_jump_s: int | None = None
    """Set when this record started a hold: how far (s) it lay ahead of its lane."""


Reference = Callable[[Hashable], "int | None"]
"""A lane's event time now (its newest counted message, or what the idle sweep let event time reach; the
stream's newest for a lane without data yet); None before anything was counted."""


class JumpGuard:
    """Holds messages that jump event time until their lane confirms or refutes them (module docstring)."""

    def __init__(self, max_jump_s: int = DEFAULT_MAX_JUMP_S, confirmations: int = DEFAULT_CONFIRMATIONS) -> None:
        """``max_jump_s`` 0 = off (every message counts at once)."""
        if max_jump_s < 0 or confirmations < 1:
            raise ValueError("max_jump_s must be >= 0 and confirmations >= 1")
        self.max_jump_s = max_jump_s
        self.confirmations = confirmations
        self._holds: dict[Hashable, _Hold] = {}
        self._opening: list[tuple[SourceRecord, int]] = []
        """The stream's first ``2 * confirmations - 1`` messages, held until their median says where the
        stream starts (the very first message may be the rogue one)."""
        self._start_s: int | None = None if max_jump_s and confirmations > 1 else 0

    @property
    def holding(self) -> bool:
        return bool(self._holds or self._opening)

    def held_count(self) -> int:
        return sum(len(h.held) for h in self._holds.values()) + len(self._opening)

    def offer(self, record: SourceRecord, event_s: int, reference: Reference) -> Offer:
        if self.max_jump_s == 0:
            return Offer(admit=[record])
        if self._start_s is None:
            if not any(_copy_key(r) == _copy_key(record) for r, _ in self._opening):  # a redelivered copy
                self._opening.append((record, event_s))
            return self.close_opening() if self._opening_settled() else Offer()
        lane = record.lane
        own = reference(lane)
        reference_s = self._start_s if own is None else own
        jumps = event_s > reference_s + self.max_jump_s
        hold = self._holds.get(lane)
        if hold is None:
            if not jumps:
                return Offer(admit=[record])
            self._holds[lane] = _Hold([_Held(record, event_s)])
            return self._maybe_confirm(lane, Offer(held_jump_s=event_s - reference_s))
        if hold.holds(record):  # redelivered (a rebalance that kept the partition): one vote per message
            return Offer()
        if jumps:
            hold.held.append(_Held(record, event_s))
            return self._maybe_confirm(lane, Offer())
        out = Offer(admit=[record])
        hold.against.add(_copy_key(record))
        if len(hold.against) >= self.confirmations:
            del self._holds[lane]
            why = (f"more than source.max_event_time_jump_s={self.max_jump_s} ahead of its partition's event "
                   f"time, and the next {self.confirmations} messages of the partition did not follow it (a "
                   "mistyped date?); it was not counted")
            out.refuted = [(h.record, f"dated {iso_utc(h.event_s)}, {why}") for h in hold.held]
        return out

    def _maybe_confirm(self, lane: Hashable, out: Offer) -> Offer:
        """Enough messages jumped: the jump is real. One far past the voters' median is still rogue: further
        than the bound, and further than the median lies past the earliest voter (a sparse stream's spacing)."""
        hold = self._holds[lane]
        if len(hold.held) < self.confirmations:
            return out
        del self._holds[lane]
        times = sorted(h.event_s for h in hold.held)
        median_s = times[(len(times) - 1) // 2]
        ceiling_s = median_s + max(self.max_jump_s, median_s - times[0])
        # oldest first: one voter arriving before an older one must not make it late
        out.admit += [h.record for h in sorted(hold.held, key=lambda h: h.event_s) if h.event_s <= ceiling_s]
        out.refuted += [(h.record, f"dated {iso_utc(h.event_s)}, more than source.max_event_time_jump_s="
                         f"{self.max_jump_s} ahead of the messages its partition jumped to; it was not counted")
                        for h in hold.held if h.event_s > ceiling_s]
        out.confirmed_jump_s = max(h.event_s for h in hold.held if h.event_s <= ceiling_s)
        return out

    def close_opening(self) -> Offer:
        """Fix where the stream starts (the median of its first messages) and return those messages, in
        order, to be offered again (``again``), less any dated far before the others of its lane
        (``refuted``). Called when enough arrived, or when the stream ends or goes quiet first."""
        if self._start_s is not None or not self._opening:
            return Offer()
        opening, self._opening = self._opening, []
        floors = {lane: floor for lane, arrived in _by_lane(opening).items()
                  if (floor := self._lane_floor(arrived)) is not None}
        gap_s = self._closure_s()
        out = Offer()
        for rec, event_s in opening:
            if event_s < floors.get(rec.lane, event_s):
                out.refuted.append((rec, f"dated {iso_utc(event_s)}, more than {duration(gap_s)} (longer than "
                                    f"source.max_event_time_jump_s={self.max_jump_s} and any market closure) "
                                    "before the other first messages of its partition (a mistyped date?); it "
                                    "was not counted"))
            else:
                out.again.append(rec)
        kept = sorted(t for rec, t in opening if t >= floors.get(rec.lane, t))
        self._start_s = kept[(len(kept) - 1) // 2]
        return out

    def _closure_s(self) -> int:
        return max(self.max_jump_s, MAX_CLOSURE_S)

    def _opening_settled(self) -> bool:
        """Enough opening rows to say where the stream starts: at least ``2 * confirmations - 1``, and every lane
        whose rows are split by a gap longer than a market closure has its newest rows agreeing after it
        (``_present``). By count alone, three rows mistyped 2016 ahead of two real ones outvoted them: the
        stream started in 2016 and the real rows became the jump (found by review). Capped (a sparse history's
        rows never agree)."""
        if len(self._opening) < 2 * self.confirmations - 1:
            return False
        if len(self._opening) >= OPENING_MAX_PER_CONFIRMATION * self.confirmations:
            return True
        for arrived in _by_lane(self._opening).values():
            times = sorted(arrived)
            after = self._after_long_gaps(times)
            if after and self._run_after_gap(times, after) is None and self._present(arrived) is None:
                return False
        return True

    def _after_long_gaps(self, times: list[int]) -> list[int]:
        """Positions in ``times`` (sorted) of each row that follows a gap longer than a market closure."""
        gap_s = self._closure_s()
        return [i + 1 for i, (a, b) in enumerate(pairwise(times)) if b - a > gap_s]

    def _run_after_gap(self, times: list[int], after: list[int]) -> int | None:
        """The first row after a lane's newest long gap (``after``: ``_after_long_gaps(times)``) when at least
        ``confirmations`` rows follow it and the first of them lie within the bound: a dense run the older rows
        cannot belong to, whichever came first (three real rows, then three mistyped 2016, were counted as late
        and confirmed a jump to 2016, found by the regression review). More such rows dated ahead is a jump the
        hold would confirm anyway."""
        if not after:
            return None
        run = times[after[-1]:]
        if len(run) < self.confirmations or run[self.confirmations - 1] - run[0] > self.max_jump_s:
            return None
        return run[0]

    def _present(self, arrived: list[int]) -> int | None:
        """The oldest of a lane's newest ``confirmations`` rows (in arrival order) when they lie within the bound
        of each other: where the lane is now. A sorted export's mistyped rows come first, so the newest rows,
        not the majority, say which side of a gap is real."""
        newest = arrived[-self.confirmations:]
        if len(newest) < self.confirmations or max(newest) - min(newest) > self.max_jump_s:
            return None
        return min(newest)

    def _lane_floor(self, arrived: list[int]) -> int | None:
        """A lane's oldest plausible opening time (``arrived``: its opening rows' times in arrival order): rows
        before it are refuted. Offered again, such a row would become its lane's event time and make the real
        stream a confirmed forward jump: a stream whose first row was mistyped 2016 for 2026 was counted and
        measured as 10 years long (found by review). The floor is the start of a dense run after the lane's newest
        gap of more than ``MAX_CLOSURE_S`` (and the bound); else the row after the newest such gap below where the
        lane is now (its agreeing newest rows; without them its median, if the newer half of its rows lies within
        the bound), so every row before such a gap goes, however many, while Friday's last rows before Monday's
        open are kept. A sparse lane (neither) gets no floor: a sparse history's gaps are its own spacing. Judged
        per lane: a partition catching up a backlog days behind the others is real."""
        times = sorted(arrived)
        after = self._after_long_gaps(times)
        if (run_s := self._run_after_gap(times, after)) is not None:
            return run_s
        now_s = self._present(arrived)
        if now_s is None:
            mid = (len(times) - 1) // 2
            if times[-1] - times[mid] > self.max_jump_s:
                return None
            now_s = times[mid]
        return max((times[i] for i in after if times[i] <= now_s), default=None)

    def recheck(self, reference: Reference) -> list[SourceRecord]:
        """Event time moved without a message (the idle sweep of a caught-up live stream): a hold whose first
        message no longer jumps ends, and its records are returned to be offered again, in order."""
        again: list[SourceRecord] = []
        for lane, hold in list(self._holds.items()):
            ref = reference(lane)
            if ref is not None and hold.held[0].event_s <= ref + self.max_jump_s:
                del self._holds[lane]
                again += [h.record for h in hold.held]
        return again

    def drain(self) -> list[tuple[SourceRecord, str]]:
        """The stream ended: each record still held, with why it is dead-lettered (call ``close_opening``
        first)."""
        out: list[tuple[SourceRecord, str]] = []
        for lane in list(self._holds):
            why = (f"more than source.max_event_time_jump_s={self.max_jump_s} ahead of its partition's event time, "
                   f"and the partition ended before source.event_time_jump_confirmations={self.confirmations} "
                   "messages confirmed it")
            out += [(h.record, f"dated {iso_utc(h.event_s)}, {why}") for h in self._holds.pop(lane).held]
        return out

    def committable(self, records: Sequence[SourceRecord]) -> list[SourceRecord]:
        """``records`` (one read, in order) without those at or after their lane's first held record: the
        source must not acknowledge a held record, nor (on a partition) anything behind it."""
        if not self.holding:
            return list(records)
        first = {lane: hold.held[0].record for lane, hold in self._holds.items()}
        for rec, _ in reversed(self._opening):  # the opening's first record of each lane
            first[rec.lane] = rec
        in_batch = {id(r) for r in records}
        blocked = {lane for lane, rec in first.items() if id(rec) not in in_batch}  # held since an earlier read
        out: list[SourceRecord] = []
        for rec in records:
            if rec.lane in first and first[rec.lane] is rec:
                blocked.add(rec.lane)
            if rec.lane not in blocked:
                out.append(rec)
        return out

    def forget_lanes(self, kept: Iterable[Hashable]) -> list[SourceRecord]:
        """Lanes no longer ours (a rebalance): their holds end uncommitted, so the next owner reads them
        again. Returns the records dropped (nothing to do with them here)."""
        keep = set(kept)
        dropped: list[SourceRecord] = []
        for lane in [lane for lane in self._holds if lane not in keep]:
            dropped += [h.record for h in self._holds.pop(lane).held]
        dropped += [r for r, _ in self._opening if r.lane not in keep]
        self._opening = [(r, t) for r, t in self._opening if r.lane in keep]
        return dropped


def _by_lane(opening: Sequence[tuple[SourceRecord, int]]) -> dict[Hashable, list[int]]:
    """Each lane's opening times, in arrival order."""
    by_lane: dict[Hashable, list[int]] = {}
    for rec, event_s in opening:
        by_lane.setdefault(rec.lane, []).append(event_s)
    return by_lane
