"""Pure series math for the key pages: ranges, display buckets, a trailing baseline, alert markers.

A range ends at the event-time watermark (the end of the bucket holding it), never at the wall
clock. Long ranges are shown in coarser display buckets (sums of stored buckets, at most
``MAX_POINTS`` points) so a 30-day chart stays one cheap request. The baseline drawn is a *display*
baseline: the ``baseline_s`` before each point cut into hourly blocks, each block's pooled negative
share (negatives / volume), and the median over the non-empty blocks. Pooling within an hour keeps
sparse keys from reading 0% (most 10-minute buckets hold no negative at all); the median across hours
keeps a one-hour surge from lifting "normal" for a day after it (a plain pooled share would). With it
the negative count it predicts for the point's volume and a binomial 2-sigma band. The detector's own
numbers at each alert are in the alert's Signal.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from monitor.windows.buckets import BucketStats, align_s

RANGES_S = {"6h": 6 * 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
DEFAULT_RANGE = "24h"
MAX_POINTS = 240
NICE_STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400)
BAND_SIGMAS = 2.0
BASELINE_BLOCK_S = 3600
MIN_BASELINE_BLOCKS = 3
"""Non-empty blocks the trailing window needs before a baseline is drawn."""
MULTISCALE_BASELINE_S = 86_400
"""Shortest display baseline under multi-scale detection (see ``display_baseline_s``)."""
MarkerKind = Literal["firing", "resolved", "pending"]
_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86_400}


class RangeError(ValueError):
    """The ``range`` query parameter is not one of the offered ranges."""


def parse_range(value: str | None) -> tuple[str, int]:
    """``6h|24h|7d|30d`` (default 24h) as (label, seconds)."""
    label = value or DEFAULT_RANGE
    if label not in RANGES_S:
        raise RangeError(f"range must be one of {', '.join(RANGES_S)}")
    return label, RANGES_S[label]


def parse_duration_s(value: str) -> int:
    """``30m`` / ``4h`` / ``2d`` or plain seconds."""
    if value.isdigit():
        return int(value)
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30m, 4h, 2d or seconds")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def display_step_s(range_s: int, bucket_s: int, max_points: int = MAX_POINTS) -> int:
    """The smallest nice multiple of ``bucket_s`` that shows ``range_s`` in at most ``max_points``."""
    for step in NICE_STEPS_S:
        if step >= bucket_s and step % bucket_s == 0 and range_s / step <= max_points:
            return step
    return bucket_s * math.ceil(range_s / (bucket_s * max_points))


def display_baseline_s(detection: str, baseline_buckets: int, bucket_s: int) -> int:
    """How far back the drawn baseline looks: the per-bucket detector's rolling span (``baseline_buckets``), but
    never fewer hours than ``MIN_BASELINE_BLOCKS`` (a shorter span can never draw). Multi-scale detection ignores
    ``baseline_buckets`` (its baseline is a weeks-long decayed rate), so there it is at least a day: a whole daily
    rhythm, the longest default scale, and what the default config's 144 x 10 min already gives. Before, production
    (multiscale, 24 x 5 min = 2 h) drew no baseline on any range while the legend named one (found by review)."""
    span_s = baseline_buckets * bucket_s
    if detection != "bucket":
        span_s = max(span_s, MULTISCALE_BASELINE_S)
    return max(span_s, MIN_BASELINE_BLOCKS * BASELINE_BLOCK_S)


@dataclass(frozen=True, slots=True)
class SeriesWindow:
    """Display buckets ``[start_s, end_s)`` of ``step_s``; ``closed_until_s`` splits final from open."""

    start_s: int
    end_s: int
    step_s: int
    closed_until_s: int

    @property
    def points(self) -> int:
        return (self.end_s - self.start_s) // self.step_s


def series_window(watermark_s: int, range_s: int, bucket_s: int) -> SeriesWindow:
    """The range ending with the display bucket that holds the watermark."""
    step = display_step_s(range_s, bucket_s)
    end = align_s(watermark_s, step) + step
    return SeriesWindow(start_s=end - range_s // step * step, end_s=end, step_s=step,
                        closed_until_s=align_s(watermark_s, bucket_s))


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    start_s: int
    volume: int
    negative: int
    neutral: int
    positive: int
    neg_share: float | None
    """None for an empty point (drawn as a gap, not as 0%)."""
    mean_score: float | None
    baseline_share: float | None
    """Median hourly negative share of the ``baseline_s`` before this point; None without history."""
    expected_negative: float | None
    band_low: float | None
    band_high: float | None
    final: bool
    """False while any part of the point is past the watermark's closed buckets (may still change)."""


class _Trailing:
    """Prefix sums of (negative, volume) over sorted stored buckets: O(log n) range totals."""

    def __init__(self, buckets: Sequence[BucketStats]) -> None:
        self.starts = [b.start_s for b in buckets]
        self.neg = [0]
        self.vol = [0]
        for b in buckets:
            self.neg.append(self.neg[-1] + b.negative)
            self.vol.append(self.vol[-1] + b.volume)

    def _totals(self, start_s: int, end_s: int) -> tuple[int, int]:
        lo = bisect.bisect_left(self.starts, start_s)
        hi = bisect.bisect_left(self.starts, end_s)
        return self.neg[hi] - self.neg[lo], self.vol[hi] - self.vol[lo]

    def baseline_share(self, end_s: int, span_s: int, block_s: int) -> float | None:
        """Median over the non-empty ``block_s`` blocks of ``[end_s - span_s, end_s)`` of their pooled share."""
        shares = []
        for block_end in range(end_s, end_s - span_s, -block_s):
            neg, vol = self._totals(max(block_end - block_s, end_s - span_s), block_end)
            if vol:
                shares.append(neg / vol)
        return statistics.median(shares) if len(shares) >= MIN_BASELINE_BLOCKS else None


def _aggregate(buckets: Iterable[BucketStats], window: SeriesWindow) -> dict[int, BucketStats]:
    out: dict[int, BucketStats] = {}
    for b in buckets:
        if window.start_s <= b.start_s < window.end_s:
            slot = align_s(b.start_s, window.step_s)
            moved = BucketStats(b.key, slot, b.negative, b.neutral, b.positive, b.score_sum)
            out[slot] = out[slot].merge(moved) if slot in out else moved
    return out


def build_series(buckets: Sequence[BucketStats], window: SeriesWindow, baseline_s: int) -> list[SeriesPoint]:
    """One point per display bucket of ``window`` (empty ones included), oldest first.

    ``buckets`` are the stored buckets from ``window.start_s - baseline_s`` to ``window.end_s``."""
    ordered = sorted(buckets, key=lambda b: b.start_s)
    trailing = _Trailing(ordered)
    block_s = max(BASELINE_BLOCK_S, window.step_s)
    slots = _aggregate(ordered, window)
    points = []
    for t in range(window.start_s, window.end_s, window.step_s):
        b = slots.get(t, BucketStats("", t))
        base = trailing.baseline_share(t, baseline_s, block_s)
        expected = low = high = None
        if base is not None:
            expected = base * b.volume
            spread = BAND_SIGMAS * math.sqrt(b.volume * base * (1 - base))
            low, high = max(0.0, expected - spread), expected + spread
        points.append(SeriesPoint(
            start_s=t, volume=b.volume, negative=b.negative, neutral=b.neutral, positive=b.positive,
            neg_share=b.neg_share if b.volume else None, mean_score=b.mean_score if b.volume else None,
            baseline_share=base, expected_negative=expected, band_low=low, band_high=high,
            final=t + window.step_s <= window.closed_until_s,
        ))
    return points


@dataclass(frozen=True, slots=True)
class Marker:
    """An alert event on a key's timeline (event time): a firing or resolved notice, or a pending start."""

    at_s: int
    kind: MarkerKind
    label: str


def markers_in(markers: Iterable[Marker], window: SeriesWindow) -> list[Marker]:
    """Distinct markers inside the window, oldest first."""
    seen = {(m.at_s, m.kind): m for m in markers if window.start_s <= m.at_s <= window.end_s}
    return [seen[k] for k in sorted(seen)]
