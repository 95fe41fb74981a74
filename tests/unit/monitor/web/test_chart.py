from __future__ import annotations

from monitor.web.chart import build_chart, build_sparkline
from monitor.web.console import _templates
from monitor.web.series import Marker, SeriesWindow, build_series
from monitor.windows.buckets import BucketStats

B = 600
T0 = 1_793_836_800


def window(points: int, closed: int | None = None) -> SeriesWindow:
    end = T0 + points * B
    return SeriesWindow(start_s=T0, end_s=end, step_s=B, closed_until_s=end if closed is None else T0 + closed * B)


def stats(i: int, negative: int, neutral: int) -> BucketStats:
    return BucketStats("k", T0 + i * B, negative, neutral)


def test_an_empty_bucket_breaks_the_share_line_instead_of_dropping_to_zero() -> None:
    w = window(5)
    chart = build_chart(build_series([stats(0, 1, 9), stats(1, 2, 8), stats(3, 5, 5), stats(4, 4, 6)], w, 3600),
                        w, [])
    assert chart.share_path.count("M") == 2 and chart.share_path.count("L") == 2
    assert len([b for b in chart.bars if b.vol_h > 0]) == 4


def test_bars_scale_with_volume_and_negatives_within_their_panel() -> None:
    w = window(2)
    chart = build_chart(build_series([stats(0, 10, 10), stats(1, 1, 4)], w, 3600), w, [])
    big, small = chart.bars
    assert big.vol_h > small.vol_h > 0 and big.neg_h == big.vol_h / 2
    assert all(chart.volume_top <= bar.vol_y <= chart.volume_bottom for bar in chart.bars)
    assert "volume 20, negative 10" in big.title


def test_firing_span_runs_from_firing_to_resolved_marker_and_open_part_is_shaded() -> None:
    w = window(10, closed=8)
    markers = [Marker(T0 + 2 * B, "firing", "f"), Marker(T0 + 5 * B, "resolved", "r")]
    chart = build_chart(build_series([stats(i, 1, 9) for i in range(10)], w, 3600), w, markers)
    (span,) = chart.firing_spans
    x = [m.x for m in chart.markers]
    assert span.x == x[0] and span.x + span.w == x[1]
    assert chart.open_span is not None
    assert chart.open_span.x + chart.open_span.w == chart.left + chart.plot_w
    assert [b.final for b in chart.bars][-2:] == [False, False]


def test_a_still_firing_alert_spans_to_the_end_of_the_chart() -> None:
    w = window(4)
    chart = build_chart(build_series([stats(0, 1, 1)], w, 3600), w, [Marker(T0 + B, "firing", "f")])
    (span,) = chart.firing_spans
    assert span.x + span.w == chart.left + chart.plot_w and chart.open_span is None


def test_share_axis_covers_the_highest_share_and_ticks_are_labelled() -> None:
    w = window(1)
    chart = build_chart(build_series([stats(0, 7, 3)], w, 3600), w, [])
    assert chart.share_ticks[-1][1] == "80%" and chart.share_ticks[0][1] == "0%"
    assert chart.x_ticks


def test_sparkline_fits_its_box_and_breaks_at_gaps() -> None:
    from monitor.web.chart import build_sparkline

    w = window(6)
    spark = build_sparkline(build_series([stats(0, 1, 9), stats(1, 5, 5), stats(4, 2, 2)], w, 3600), w,
                            [Marker(T0 + 2 * B, "firing", "f")])
    assert spark.share_path.count("M") == 2 and len(spark.bars) == 3
    assert all(0 <= x <= spark.width and 0 <= vy <= ny <= by == spark.height for x, _, vy, ny, by in spark.bars)
    assert [m.kind for m in spark.markers] == ["firing"] and spark.span == "1h"


def test_the_share_axis_stops_at_100_percent_when_a_point_is_all_negative() -> None:
    """Found by review: with the 5% headroom a share over 95% doubled the axis to 200%."""
    w = window(3)
    points = build_series([stats(0, 1, 0), stats(1, 24, 1), stats(2, 1, 9)], w, 3600)
    assert [label for _, label in build_chart(points, w, []).share_ticks] == ["0%", "25%", "50%", "75%", "100%"]
    assert build_sparkline(points, w, []).share_max == "100%"


def test_an_isolated_point_of_a_sparse_key_is_drawn_as_a_dot() -> None:
    """Found by review: a point with empty neighbours was a lone path move, which draws nothing."""
    w = window(6)
    points = build_series([stats(0, 1, 0), stats(2, 1, 1), stats(3, 1, 1), stats(5, 0, 2)], w, 3600)
    chart, spark = build_chart(points, w, []), build_sparkline(points, w, [])
    assert [round(x) for x, _ in chart.share_dots] == [round(chart.left + chart.plot_w / 12),
                                                       round(chart.left + chart.plot_w * 11 / 12)]
    assert len(spark.share_dots) == 2 and spark.share_path.count("L") == 1
    html = _templates().get_template("_chart.html").render(chart=chart, key="ticker:X", baseline_s=86_400, window=w)
    assert html.count('<circle class="share-dot"') == 2
