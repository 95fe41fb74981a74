"""A key's own daily and weekly rhythm, where it differs from the rest of the stream's.

The baseline's exposure (alerts/baseline.py) is the rest of the stream's volume, so every key is expected to follow
the stream's rhythm. A key that does not (a Tokyo listing in a US-hours stream, a coin traded all night and all
weekend) was expected to be near silent at its own busy hours and paged there on ordinary flow (found by review:
36 false pages on 15 Tokyo-hours tickers in 8 weeks, 3 with the same tickers on US hours; 31 on 20 round-the-clock
tickers against 11).

So each key keeps its decayed volume and exposure per UTC hour of day and per weekday (two marginals, 31 slots:
a joint hour-of-week table would hold 168 and need weeks more data per key). For each it compares the key's share of
its volume in a slot with the stream's share there, shrunk toward the stream's by ``PSEUDO_MESSAGES`` spread as the
stream's volume is, scaled so the key's exposure over the cycle is unchanged (its rate stays a rate per exposure); a
window's exposure then counts each hour at ``hour factor x day factor``. A sparse key keeps the stream's rhythm.

Pure and event-time driven like the rest of the baseline; the decay and horizon are the key's baseline's.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.windows.buckets import BucketStats

if TYPE_CHECKING:
    from alerts.baseline import StreamState

HOURS, DAYS = 24, 7
PSEUDO_MESSAGES = 48.0
"""Shrinkage of a key's shares toward the stream's: pseudo-messages spread over the slots as the stream's volume is.
With this many (decayed) messages a key's own rhythm counts for half; a sparse key keeps the stream's."""
FACTOR_RANGE = (0.2, 1000.0)
"""Bounds of one slot's factor before scaling: a slot the key is never seen in makes it at most 5 times as sensitive
there; the upper bound only guards the arithmetic (shrinkage already bounds a factor by the key's own volume)."""


def hour_of(start_s: int) -> int:
    """UTC hour of day."""
    return (start_s // 3600) % HOURS


def day_of(start_s: int) -> int:
    """UTC weekday, 0 = Monday (1970-01-01 was a Thursday)."""
    return (start_s // 86_400 + 3) % DAYS


def zeros(n: int) -> array[float]:
    return array("d", bytes(8 * n))


@dataclass(slots=True)
class Marginal:
    """A key's decayed volume and exposure per slot of one cycle (hours of the day or days of the week)."""

    snapshot: array[float]
    """The stream's folded volume per slot when last settled (the exposure accrued since is the difference)."""
    volume: array[float]
    exposure: array[float]

    @classmethod
    def starting(cls, stream_slots: array[float]) -> Marginal:
        n = len(stream_slots)
        return cls(array("d", stream_slots), zeros(n), zeros(n))

    def settle(self, stream_slots: array[float], factor: float) -> None:
        """Decay by ``factor`` (the product of the decays since the last settle) and accrue the stream's exposure."""
        for i, now in enumerate(stream_slots):
            self.volume[i] *= factor
            self.exposure[i] = (self.exposure[i] - self.snapshot[i]) * factor + now
        self.snapshot = array("d", stream_slots)

    def fold(self, slot: int, volume: float) -> None:
        self.volume[slot] += volume
        self.exposure[slot] -= volume  # the rest of the stream only

    def factors(self, pseudo: float) -> list[float] | None:
        """Per slot, the key's shrunk share over the stream's share (1 where the stream has no exposure), scaled so
        the key's exposure over the cycle is unchanged."""
        exposure = [max(0.0, e) for e in self.exposure]
        total_volume, total_exposure = sum(self.volume), sum(exposure)
        if total_volume <= 0 or total_exposure <= 0:
            return None
        lo, hi = FACTOR_RANGE
        raw = [min(hi, max(lo, (v * total_exposure / e + pseudo) / (total_volume + pseudo))) if e > 0 else 1.0
               for v, e in zip(self.volume, exposure, strict=True)]
        weighted = sum(f * e for f, e in zip(raw, exposure, strict=True))
        return [f * total_exposure / weighted for f in raw] if weighted > 0 else None


@dataclass(frozen=True, slots=True)
class Weights:
    """A key's exposure weight of a bucket: ``hours[h] * days[d]``, each marginal keeping the key's whole exposure
    (exactly so if hour and weekday were independent in its exposure; near enough to keep its rate a rate)."""

    hours: Sequence[float]
    days: Sequence[float]

    def at(self, start_s: int) -> float:
        return self.hours[hour_of(start_s)] * self.days[day_of(start_s)]


REFRESH_EVERY = 12
"""A key's weights are recomputed when it is observed at least this many buckets (an hour of 5-minute buckets) after
the last time, not at each bucket: they move by the day, and computing them at every bucket made a multiscale step
2.4 times as slow (found by review)."""


@dataclass(slots=True)
class RhythmProfile:
    """A key's hour-of-day and weekday marginals, accrued from the stream since the key was created (module doc).

    Catching up is lazy: the decays multiply into ``pending`` and the marginals settle (decay + the stream's exposure
    since) only when the weights are recomputed. ``(e - snapshot) * f1 * f2 + now`` is what two settles give, so the
    result is the same; a fold in between is entered divided by ``pending``, which the settle multiplies back.

    The weights are recomputed only in ``refresh``, which the detector calls when the key is observed (a bucket with
    its own messages): live, replay and a rebuild after a restart all observe the same buckets, so they recompute at
    the same ones. Counting catch-ups instead made it depend on how often the key was *evaluated* (a live alert is
    evaluated at every bucket, a rebuild evaluates only buckets with data), and a restarted engine paged differently
    from a continuous one (found by review)."""

    hours: Marginal
    days: Marginal
    pending: float = 1.0
    weights: Weights | None = None
    """The weights as last recomputed (None before the key has data), read at any bucket."""
    _refreshed_s: int | None = None
    """The horizon the weights were last recomputed at (None: never)."""

    @classmethod
    def starting(cls, stream: StreamState) -> RhythmProfile:
        return cls(Marginal.starting(stream.folded_hours), Marginal.starting(stream.folded_days))

    def catch_up(self, factor: float) -> None:
        self.pending *= factor

    def fold(self, stats: BucketStats, weight: float) -> None:
        volume = weight * stats.volume / self.pending
        self.hours.fold(hour_of(stats.start_s), volume)
        self.days.fold(day_of(stats.start_s), volume)

    def refresh(self, stream: StreamState) -> None:
        """Recompute the weights when ``REFRESH_EVERY`` buckets have passed since the last time. Called only when the
        key is observed (class doc); ``stream`` must stand at the key's horizon (its baseline just caught up)."""
        horizon = stream.horizon_s
        if horizon is None or (self._refreshed_s is not None
                               and horizon - self._refreshed_s < REFRESH_EVERY * stream.bucket_s):
            return
        self._settle(stream)
        hours, days = self.hours.factors(PSEUDO_MESSAGES), self.days.factors(PSEUDO_MESSAGES)
        self.weights = None if hours is None or days is None else Weights(hours, days)
        self._refreshed_s = horizon

    def _settle(self, stream: StreamState) -> None:
        self.hours.settle(stream.folded_hours, self.pending)
        self.days.settle(stream.folded_days, self.pending)
        self.pending = 1.0


def hour_segments(stream: StreamState, start_s: int, end_s: int) -> list[tuple[int, int, int]]:
    """(hour of day, weekday, stream volume) of each UTC hour's buckets in ``[start_s, end_s)``: the same for every
    key, so the detector caches them per bucket."""
    b = stream.bucket_s
    out, t = [], start_s
    while t < end_s:
        nxt = max(t + b, min(end_s, -(-((t // 3600 + 1) * 3600) // b) * b))  # the first bucket of the next hour
        out.append((hour_of(t), day_of(t), stream.cumulative_through(nxt - b) - stream.cumulative_through(t - b)))
        t = nxt
    return out


def weighted_volume(segments: Sequence[tuple[int, int, int]], weights: Weights) -> float:
    """The segments' volume, each hour at the key's weight."""
    hours, days = weights.hours, weights.days
    return sum(hours[h] * days[d] * volume for h, d, volume in segments if volume)
