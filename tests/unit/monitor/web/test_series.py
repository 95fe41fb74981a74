from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.web.series import (
    Marker,
    RangeError,
    SeriesWindow,
    build_series,
    display_baseline_s,
    display_step_s,
    markers_in,
    parse_duration_s,
    parse_range,
    series_window,
)
from monitor.windows.buckets import BucketStats

B = 600
T0 = 1_793_836_800  # 2026-11-05 00:00 UTC


def b(start_s: int, negative: int, neutral: int) -> BucketStats:
    return BucketStats("ticker:X", start_s, negative, neutral, 0, score_sum=-0.8 * negative)


def test_offered_ranges_parse_and_others_are_rejected_with_the_choices() -> None:
    assert parse_range(None) == ("24h", 86_400)
    assert parse_range("7d") == ("7d", 7 * 86_400)
    with pytest.raises(RangeError, match="6h, 24h, 7d, 30d"):
        parse_range("1y")


def test_human_durations_parse_to_seconds() -> None:
    assert [parse_duration_s(v) for v in ("90", "30m", "4h", "2d")] == [90, 1800, 14_400, 172_800]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_s("soon")


def test_display_step_is_the_finest_nice_multiple_of_the_bucket_within_the_point_budget() -> None:
    assert display_step_s(6 * 3600, B) == 600
    assert display_step_s(86_400, B) == 600
    assert display_step_s(7 * 86_400, B) == 3600
    assert display_step_s(30 * 86_400, B) == 10_800
    assert display_step_s(86_400, 300) == 600  # 288 five-minute points would pass the 240 budget


def test_window_ends_with_the_bucket_holding_the_watermark() -> None:
    watermark = T0 + 15 * 3600 + 50 * 60 + 7  # 15:50:07
    w = series_window(watermark, 86_400, B)
    assert (w.end_s, w.start_s, w.step_s, w.points) == (T0 + 16 * 3600, T0 - 8 * 3600, B, 144)
    assert w.closed_until_s == T0 + 15 * 3600 + 50 * 60


def test_empty_points_have_no_share_and_counts_add_up() -> None:
    w = SeriesWindow(start_s=T0, end_s=T0 + 4 * B, step_s=B, closed_until_s=T0 + 4 * B)
    points = build_series([b(T0, 2, 8), b(T0 + 2 * B, 5, 5)], w, baseline_s=3600)
    assert [p.volume for p in points] == [10, 0, 10, 0]
    assert [p.neg_share for p in points] == [0.2, None, 0.5, None]


def hourly(hours_before: range, negative: int, neutral: int) -> list[BucketStats]:
    """One 10-minute bucket per hour before T0 (sparse, like a ticker)."""
    return [b(T0 - h * 3600, negative, neutral) for h in hours_before]


def test_baseline_is_the_median_hourly_share_before_the_point_not_including_it() -> None:
    w = SeriesWindow(start_s=T0, end_s=T0 + B, step_s=B, closed_until_s=T0 + B)
    (point,) = build_series([*hourly(range(1, 7), 1, 9), b(T0, 18, 2)], w, baseline_s=6 * 3600)
    assert point.neg_share == 0.9
    assert point.baseline_share == pytest.approx(0.1)
    assert point.expected_negative == pytest.approx(2.0)
    assert point.band_low is not None and point.band_high is not None
    assert point.band_low < 2.0 < point.band_high < point.negative


def test_sparse_negatives_pool_within_the_hour_instead_of_reading_zero() -> None:
    # per hour: one 1-negative bucket and five 0-negative ones; a median of buckets would say 0%
    history = [b(T0 - h * 3600 + i * B, 1 if i == 0 else 0, 1) for h in range(1, 7) for i in range(6)]
    w = SeriesWindow(start_s=T0, end_s=T0 + B, step_s=B, closed_until_s=T0 + B)
    (point,) = build_series(history, w, baseline_s=6 * 3600)
    assert point.baseline_share == pytest.approx(1 / 7)


def test_a_past_surge_does_not_lift_the_baseline_after_it() -> None:
    quiet = hourly(range(3, 12), 1, 9)
    surge = hourly(range(1, 3), 45, 5)  # 90% negative at 5x the volume
    w = SeriesWindow(start_s=T0, end_s=T0 + B, step_s=B, closed_until_s=T0 + B)
    (point,) = build_series([*quiet, *surge, b(T0, 1, 9)], w, baseline_s=12 * 3600)
    assert point.baseline_share == pytest.approx(0.1)  # a pooled share would say 45%


def test_point_with_too_little_history_has_no_baseline() -> None:
    w = SeriesWindow(start_s=T0, end_s=T0 + B, step_s=B, closed_until_s=T0 + B)
    (point,) = build_series([*hourly(range(1, 3), 1, 9), b(T0, 1, 1)], w, baseline_s=6 * 3600)
    assert (point.baseline_share, point.expected_negative) == (None, None)


def test_points_past_the_closed_buckets_are_not_final() -> None:
    w = SeriesWindow(start_s=T0, end_s=T0 + 3 * B, step_s=B, closed_until_s=T0 + 2 * B)
    assert [p.final for p in build_series([], w, 3600)] == [True, True, False]


def test_markers_outside_the_window_are_dropped_and_duplicates_merged() -> None:
    w = SeriesWindow(start_s=T0, end_s=T0 + 10 * B, step_s=B, closed_until_s=T0 + 10 * B)
    found = markers_in([Marker(T0 - 1, "firing", "old"), Marker(T0 + B, "firing", "a"),
                        Marker(T0 + B, "firing", "a again"), Marker(T0 + 2 * B, "resolved", "r")], w)
    assert [(m.at_s, m.kind) for m in found] == [(T0 + B, "firing"), (T0 + 2 * B, "resolved")]


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 20), st.integers(0, 20)), max_size=60),
       st.sampled_from([6 * 3600, 86_400, 7 * 86_400]))
def test_display_points_sum_exactly_the_stored_buckets_inside_the_window(
        rows: list[tuple[int, int, int]], range_s: int) -> None:
    stored = {T0 - i * B: b(T0 - i * B, neg, neu) for i, neg, neu in rows}
    w = series_window(T0 + 30, range_s, B)
    points = build_series(list(stored.values()), w, baseline_s=86_400)
    inside = [s for s in stored.values() if w.start_s <= s.start_s < w.end_s]
    assert len(points) == w.points
    assert sum(p.volume for p in points) == sum(s.volume for s in inside)
    assert sum(p.negative for p in points) == sum(s.negative for s in inside)


def test_the_display_baseline_spans_a_day_under_multiscale_detection_which_ignores_baseline_buckets() -> None:
    """Found by review: production (multiscale, 24 x 5 min) drew its baseline over 2 h, which can never hold the
    hourly blocks a baseline needs."""
    assert display_baseline_s("multiscale", 24, 300) == 86_400
    assert display_baseline_s("both", 24, 300) == 86_400
    assert display_baseline_s("multiscale", 144, 1200) == 2 * 86_400, "a longer rolling span is kept"


def test_the_per_bucket_display_baseline_is_the_detectors_span_but_never_too_short_to_draw() -> None:
    assert display_baseline_s("bucket", 144, 600) == 86_400  # configs/default.toml, unchanged
    assert display_baseline_s("bucket", 24, 300) == 3 * 3600
