"""Pure SVG geometry for a key's chart: negative share vs baseline above, volume and negatives below.

Everything is computed here (coordinates, paths, ticks, tooltips) and the template only writes the
elements, so the chart is testable without a browser and needs no JavaScript. Empty display buckets
break the share line (no data is not 0% negative); the part of the range past the last closed bucket
is shaded "open": its counts can still grow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.web.series import Marker, SeriesPoint, SeriesWindow

WIDTH = 1000
LEFT = 52
RIGHT = 16
TOP = 14
SHARE_H = 220
GAP = 34
VOLUME_H = 110
AXIS_H = 22
HEIGHT = TOP + SHARE_H + GAP + VOLUME_H + AXIS_H
TICK_STEPS_S = (3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 2 * 86_400, 7 * 86_400)
MAX_X_TICKS = 9
MIN_BAND_VOLUME = 10
"""Below this many messages the 2-sigma band spans most of the axis and only adds noise."""


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    w: float
    vol_y: float
    vol_h: float
    neg_y: float
    neg_h: float
    band_y: float | None
    band_h: float | None
    title: str
    final: bool


@dataclass(frozen=True, slots=True)
class MarkerView:
    x: float
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Span:
    x: float
    w: float


@dataclass(slots=True)
class ChartView:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_w: int = WIDTH - LEFT - RIGHT
    share_top: int = TOP
    share_bottom: int = TOP + SHARE_H
    volume_top: int = TOP + SHARE_H + GAP
    volume_bottom: int = TOP + SHARE_H + GAP + VOLUME_H
    share_ticks: list[tuple[float, str]] = field(default_factory=list)
    volume_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    share_path: str = ""
    share_dots: list[tuple[float, float]] = field(default_factory=list)
    """Isolated share points (empty neighbours on both sides), drawn as dots: a lone path move draws nothing."""
    baseline_path: str = ""
    expected_path: str = ""
    bars: list[Bar] = field(default_factory=list)
    markers: list[MarkerView] = field(default_factory=list)
    firing_spans: list[Span] = field(default_factory=list)
    open_span: Span | None = None


def _nice_ceiling(value: float, steps: Sequence[float]) -> float:
    for s in steps:
        if value <= s:
            return s
    return steps[-1] * (1 + int(value // steps[-1]))


def _share_ceiling(points: Sequence[SeriesPoint]) -> float:
    """Top of the share axis: a round share above every share and baseline shown, at most 100% (with the 5%
    headroom, a share over 95% doubled the axis to 200%, a share no point can reach: found by review)."""
    shares = [v for p in points for v in (p.neg_share, p.baseline_share) if v is not None]
    return min(_nice_ceiling(max(shares, default=0.0) * 1.05, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)), 1.0)


def _volume_max(value: int) -> int:
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    for m in (1, 2, 5, 10):
        if value <= m * magnitude:
            return max(m * magnitude, 5)
    return 10 * magnitude


def _label(t: int, step_s: int) -> str:
    d = datetime.fromtimestamp(t, tz=UTC)
    if step_s >= 86_400 or (d.hour == 0 and d.minute == 0):
        return d.strftime("%b %d")
    return d.strftime("%H:%M")


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """SVG path through the points; None breaks the line."""
    parts: list[str] = []
    pen_down = False
    for p in points:
        if p is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{p[0]:.1f},{p[1]:.1f}")
        pen_down = True
    return " ".join(parts)


def _isolated(points: Sequence[tuple[float, float] | None]) -> list[tuple[float, float]]:
    """The points with no neighbour to draw a line to: ``_path`` leaves each a lone move, which strokes nothing, so
    a sparse key's single messages were invisible (found by review); the templates draw them as dots."""
    return [p for i, p in enumerate(points) if p is not None
            and (i == 0 or points[i - 1] is None) and (i == len(points) - 1 or points[i + 1] is None)]


def _tooltip(p: SeriesPoint, step_s: int) -> str:
    start = datetime.fromtimestamp(p.start_s, tz=UTC).strftime("%Y-%m-%d %H:%M")
    share = "-" if p.neg_share is None else f"{p.neg_share:.0%}"
    base = "-" if p.baseline_share is None else f"{p.baseline_share:.0%}"
    expected = "-" if p.expected_negative is None else f"{p.expected_negative:.1f}"
    state = "" if p.final else " (open: may still change)"
    return (f"{start} UTC +{step_s // 60}m{state}\nvolume {p.volume}, negative {p.negative} (expected {expected})\n"
            f"negative share {share}, baseline {base}")


def build_chart(points: Sequence[SeriesPoint], window: SeriesWindow, markers: Sequence[Marker]) -> ChartView:
    view = ChartView()
    span_s = window.end_s - window.start_s

    def x(t: float) -> float:
        return view.left + (t - window.start_s) / span_s * view.plot_w

    share_max = _share_ceiling(points)
    vol_max = _volume_max(max((p.volume for p in points), default=0))

    def ys(v: float) -> float:
        return view.share_bottom - min(v, share_max) / share_max * SHARE_H

    def yv(v: float) -> float:
        return view.volume_bottom - min(v, vol_max) / vol_max * VOLUME_H

    view.share_ticks = [(ys(share_max * i / 4), f"{share_max * i / 4:.0%}") for i in range(5)]
    view.volume_ticks = [(yv(vol_max * i / 2), str(vol_max * i // 2)) for i in range(3)]
    tick_step = next((s for s in TICK_STEPS_S if span_s / s <= MAX_X_TICKS), TICK_STEPS_S[-1])
    first_tick = window.start_s + (-window.start_s) % tick_step
    view.x_ticks = [(x(t), _label(t, tick_step)) for t in range(first_tick, window.end_s + 1, tick_step)]

    half = window.step_s / 2
    share = [None if p.neg_share is None else (x(p.start_s + half), ys(p.neg_share)) for p in points]
    view.share_path, view.share_dots = _path(share), _isolated(share)
    view.baseline_path = _path([None if p.baseline_share is None else (x(p.start_s + half), ys(p.baseline_share))
                                for p in points])
    step_w = view.plot_w * window.step_s / span_s
    bar_w = max(step_w * 0.8, 0.6)
    expected: list[tuple[float, float] | None] = []
    for p in points:
        bx = x(p.start_s) + (step_w - bar_w) / 2
        band_y = band_h = None
        if p.volume >= MIN_BAND_VOLUME and p.band_low is not None and p.band_high is not None:
            top, bottom = ys(p.band_high / p.volume), ys(p.band_low / p.volume)
            band_y, band_h = top, max(bottom - top, 0.5)
        view.bars.append(Bar(
            x=bx, w=bar_w, vol_y=yv(p.volume), vol_h=view.volume_bottom - yv(p.volume),
            neg_y=yv(p.negative), neg_h=view.volume_bottom - yv(p.negative),
            band_y=band_y, band_h=band_h, title=_tooltip(p, window.step_s), final=p.final,
        ))
        expected.append(None if p.expected_negative is None else (x(p.start_s + half), yv(p.expected_negative)))
    view.expected_path = _path(expected)

    view.markers = [MarkerView(x(m.at_s), m.kind, m.label) for m in markers]
    start_x: float | None = None
    for m in sorted(markers, key=lambda m: m.at_s):
        if m.kind == "firing" and start_x is None:
            start_x = x(m.at_s)
        elif m.kind == "resolved" and start_x is not None:
            view.firing_spans.append(Span(start_x, x(m.at_s) - start_x))
            start_x = None
    if start_x is not None:
        view.firing_spans.append(Span(start_x, view.left + view.plot_w - start_x))
    if window.closed_until_s < window.end_s:
        open_x = x(max(window.closed_until_s, window.start_s))
        view.open_span = Span(open_x, view.left + view.plot_w - open_x)
    return view


@dataclass(frozen=True, slots=True)
class Sparkline:
    """A small share-over-volume picture for an alert card (same conventions as the big chart)."""

    width: int
    height: int
    share_path: str
    share_dots: list[tuple[float, float]]
    baseline_path: str
    bars: list[tuple[float, float, float, float, float]]
    """(x, width, volume y, negative y, bottom y) per non-empty point."""
    markers: list[MarkerView]
    share_max: str
    span: str


def build_sparkline(points: Sequence[SeriesPoint], window: SeriesWindow, markers: Sequence[Marker],
                    width: int = 260, height: int = 64) -> Sparkline:
    span_s = window.end_s - window.start_s
    line_h, bar_h = height * 0.62, height * 0.30
    share_max = _share_ceiling(points)
    vol_max = max((p.volume for p in points), default=0) or 1

    def x(t: float) -> float:
        return (t - window.start_s) / span_s * width

    def ys(v: float) -> float:
        return 2 + line_h - min(v, share_max) / share_max * line_h

    half, step_w = window.step_s / 2, width * window.step_s / span_s
    bars = []
    for p in points:
        if p.volume:
            bottom = float(height)
            bars.append((x(p.start_s), max(step_w * 0.8, 0.6), bottom - p.volume / vol_max * bar_h,
                         bottom - p.negative / vol_max * bar_h, bottom))
    share = [None if p.neg_share is None else (x(p.start_s + half), ys(p.neg_share)) for p in points]
    return Sparkline(
        width=width, height=height, share_path=_path(share), share_dots=_isolated(share),
        baseline_path=_path([None if p.baseline_share is None else (x(p.start_s + half), ys(p.baseline_share))
                             for p in points]),
        bars=bars, markers=[MarkerView(x(m.at_s), m.kind, m.label) for m in markers],
        share_max=f"{share_max:.0%}", span=f"{span_s // 3600}h",
    )
