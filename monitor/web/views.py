"""Pure view-models of the dashboard: alert "why" rows, evidence, history, markers, formatting.

The detectors' ``Signal`` is rendered generically (every field, nested ones flattened), never through
a fixed list of names, so a detector that gains fields (a time scale, a tail probability) shows them
without a dashboard change. Times are event time; the formatting helpers say UTC explicitly.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerts.detectors import Signal, scale_label, window_start_s
from alerts.lifecycle import AlertState, silenced
from alerts.model import MULTISCALE, AlertStatus, Notification, Silence, clock, signal_lines
from monitor.durations import duration
from monitor.web.series import Marker, MarkerKind
from monitor.windows.buckets import EvidenceItem

EPOCH_FLOOR_S = 1_000_000_000
"""An ``*_s`` value above this is a point in time (2001+), below it a duration."""
MAX_FIELDS = 80
_SPACE = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[^\w$%]+")


def fmt_time(epoch_s: float | None, seconds: bool = False) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) + " UTC"


def fmt_duration(seconds: float | None) -> str:
    """``2d 4h``, ``3h 05m``, ``12m``, ``40s`` (as notifications write it); ``-`` for None."""
    return "-" if seconds is None else duration(seconds)


def _plain(obj: object) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    return obj


def _format_number(name: str, value: float) -> str:
    leaf = name.rsplit(".", 1)[-1]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if leaf.endswith("_s") and isinstance(value, int):
        return fmt_time(value) if value > EPOCH_FLOOR_S else fmt_duration(value)
    if "share" in leaf:
        return f"{value:.1%}"
    if any(w in leaf for w in ("p_value", "pvalue", "prob", "tail")):
        return f"{value:.2g}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _flatten(prefix: str, value: Any, out: list[tuple[str, str, bool]]) -> None:
    value = _plain(value)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        out.append((prefix, "-" if value is None else str(value), False))
    elif isinstance(value, int | float):
        out.append((prefix, _format_number(prefix, value), True))
    elif isinstance(value, Sequence):
        if all(isinstance(v, str) for v in value):
            out.append((prefix, ", ".join(value) or "-", False))
        else:
            for i, v in enumerate(value):
                _flatten(f"{prefix}[{i}]", v, out)
    else:
        out.append((prefix, str(value), False))


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    text: str
    numeric: bool


MULTISCALE_HIDDEN = frozenset({"z_ewma", "z_robust", "baseline_sigma", "baseline_mad_sigma",
                               "baseline_median_neg_share"})
"""Per-bucket fields a multi-scale signal only fills in for the old format: its "z" scores hold the top finding's
-log10 p (shown with the finding), its sigmas are 0 and its median is its mean; shown, they read as z 7.8, sigma 0."""
MULTISCALE_RENAMED = {"cusum": "cusum_llr_nats"}
"""The multi-scale CUSUM is a log-likelihood ratio in nats, not the per-bucket detector's z-sum."""
MULTISCALE_TOP_WINDOW = frozenset({"volume", "neg_share"})
"""Multi-scale fields counted over the top finding's window (``scale_s``; the shortest scale without a finding)."""
MULTISCALE_SHORTEST = frozenset({"mean_score", "score_drop", "expected_negatives_per_h"})
"""Multi-scale fields always computed over the shortest scale's window, whatever the top finding's scale: next to
``volume 7`` and ``scale_s 2h`` they read as the 2 h window's (found by review)."""
SHORTEST_SCALE = "shortest_scale"
PER_BUCKET_HIDDEN = frozenset({"findings", "scale_s", "expected_negatives_per_h"})
"""Multi-scale-only fields a per-bucket signal carries empty: shown, ``expected_negatives_per_h 0`` read as "the
detector expected no negatives", ``scale_s 0s`` as a window of nothing and ``findings -`` as a test that ran."""


def _multiscale_name(name: str, top_scale: str) -> str:
    """``volume@2h`` / ``mean_score@shortest_scale``: each multi-scale number named with the window it counts."""
    if name in MULTISCALE_TOP_WINDOW:
        return f"{name}@{top_scale}"
    if name in MULTISCALE_SHORTEST:
        return f"{name}@{SHORTEST_SCALE}"
    return MULTISCALE_RENAMED.get(name, name)


def signal_fields(signal: object | None) -> list[Field]:
    """Every field of a detector signal, flattened, formatted by its name (shares as %, times as UTC); a
    multi-scale signal without the per-bucket fields it does not compute (``MULTISCALE_HIDDEN``) and with each
    number named by its window, a per-bucket one without the multi-scale fields it leaves empty
    (``PER_BUCKET_HIDDEN``). A signal without ``baseline_kind`` (an unknown detector) shows every field."""
    if signal is None:
        return []
    out: list[tuple[str, str, bool]] = []
    _flatten("", signal, out)
    kind = _get(signal, "baseline_kind")
    if kind == MULTISCALE:
        scale_s = _get(signal, "scale_s")
        top = scale_label(scale_s) if isinstance(scale_s, int) and scale_s > 0 else SHORTEST_SCALE
        out = [(_multiscale_name(n, top), t, num) for n, t, num in out if n not in MULTISCALE_HIDDEN]
    elif kind is not None:
        out = [(n, t, num) for n, t, num in out if n.split("[", 1)[0] not in PER_BUCKET_HIDDEN]
    return [Field(n, t, num) for n, t, num in out[:MAX_FIELDS] if n != "key"]


def _get(signal: object | None, *names: str) -> Any:
    """The first of ``names`` the signal has (detectors get rewritten: tolerate a renamed field)."""
    plain = _plain(signal)
    if not isinstance(plain, Mapping):
        return None
    return next((plain[n] for n in names if plain.get(n) is not None), None)


def distinct_evidence(items: Iterable[EvidenceItem], limit: int) -> list[EvidenceItem]:
    """The first ``limit`` items whose headline differs (case, spacing and punctuation ignored):
    syndicated copies and retweets of one story count once."""
    seen: set[str] = set()
    out: list[EvidenceItem] = []
    for item in items:
        norm = _NOT_WORD.sub(" ", _SPACE.sub(" ", item.text.casefold())).strip()
        if norm in seen:
            continue
        seen.add(norm)
        out.append(item)
        if len(out) == limit:
            break
    return out


@dataclass(frozen=True, slots=True)
class AlertView:
    key: str
    status: str
    since_s: int | None
    silenced: bool
    detectors: str
    neg_share: float | None
    baseline_share: float | None
    volume: int | None
    bucket_end_s: int | None
    fields: list[Field]
    evidence: list[EvidenceItem]
    fired_on: bool = False
    """The numbers are those of the bucket the alert fired on (``why_signal``), not of the latest bucket."""
    window: str | None = None
    """Multi-scale: the window ``neg_share`` and ``volume`` count (``burst@2h``, or the shortest scale without a
    finding); None: the evaluated bucket (per-bucket detectors)."""
    window_span: str | None = None
    """Multi-scale with a finding: that window in UTC (``2026-11-05 13:35-15:35 UTC``, an en dash)."""
    findings: list[str] = dataclasses.field(default_factory=list)
    """Multi-scale: the notification's own finding lines (window, counts vs expected, rates with their units)."""


def since_s(state: AlertState) -> int | None:
    return state.started_at_s if state.status is AlertStatus.FIRING else state.pending_since_s


def why_signal(state: AlertState) -> Signal | None:
    """The numbers that explain the alert: a firing one's trigger, else its latest bucket (views' "why")."""
    if state.status is AlertStatus.FIRING and state.firing_signal is not None:
        return state.firing_signal
    return state.last_signal


def fmt_span(start_s: int, end_s: int) -> str:
    """``2026-11-05 13:35-15:35 UTC`` (an en dash; the end with its day when it is another day), as notifications
    write a finding's window."""
    start = datetime.fromtimestamp(start_s, tz=UTC).strftime("%Y-%m-%d %H:%M")
    return f"{start}\u2013{clock(end_s, start_s)} UTC"


def _multiscale_window(sig: Signal) -> tuple[str, str | None, list[str]]:
    """The window a multi-scale signal's share and volume count (its top finding's: the card labelled a 2 h
    window's 7 messages as "fired on bucket ending 15:35", whose bucket held 3; found by review), that window in
    UTC, and the notification's finding lines."""
    top = sig.top
    if top is None:
        return SHORTEST_SCALE.replace("_", " "), None, []
    return top.name, fmt_span(window_start_s(sig), sig.bucket_end_s), signal_lines(sig, sig.bucket_end_s)


def alert_view(state: AlertState, now_s: int, silences: Sequence[Silence],
               evidence: Sequence[EvidenceItem] = ()) -> AlertView:
    sig = why_signal(state)
    triggered = _get(sig, "triggered", "detectors")
    window: str | None = None
    span: str | None = None
    lines: list[str] = []
    if isinstance(sig, Signal) and sig.baseline_kind == MULTISCALE:
        window, span, lines = _multiscale_window(sig)
    return AlertView(
        key=state.window_key, status=str(state.status), since_s=since_s(state),
        silenced=silenced(state.window_key, now_s, silences),
        detectors=", ".join(triggered) if isinstance(triggered, list | tuple) and triggered else "-",
        neg_share=_get(sig, "neg_share"), baseline_share=_get(sig, "baseline_neg_share", "baseline_share"),
        volume=_get(sig, "volume"), bucket_end_s=_get(sig, "bucket_end_s"),
        fields=signal_fields(sig), evidence=list(evidence), fired_on=sig is not state.last_signal,
        window=window, window_span=span, findings=lines,
    )


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at_s: int
    status: str
    keys: list[str]
    summary: str


def _signal_summary(key: str, signal: object | None) -> str:
    share, base = _get(signal, "neg_share"), _get(signal, "baseline_neg_share", "baseline_share")
    if isinstance(share, float) and isinstance(base, float):
        return f"{key} {share:.0%} vs {base:.0%}"
    return ""


def _state_rows(states: Iterable[AlertState]) -> list[HistoryRow]:
    """Episodes kept in the (shared, persistent) alert state: they survive a restart, and in cluster
    mode every instance sees them, while the notification history is this process's own."""
    rows = []
    for s in states:
        if s.started_at_s is not None and s.status in (AlertStatus.FIRING, AlertStatus.RESOLVED):
            rows.append(HistoryRow(s.started_at_s, str(AlertStatus.FIRING), [s.window_key], "from alert state"))
        if s.status is AlertStatus.RESOLVED and s.resolved_at_s is not None:  # what fired, not the quiet bucket
            rows.append(HistoryRow(s.resolved_at_s, str(AlertStatus.RESOLVED), [s.window_key],
                                   _signal_summary(s.window_key, s.firing_signal or s.last_signal)
                                   or "from alert state"))
    return rows


def history_rows(notifications: Iterable[object], limit: int, key: str | None = None,
                 states: Iterable[AlertState] = ()) -> list[HistoryRow]:
    """Newest first: this process's notifications, plus the episodes in the alert state that they do
    not cover; with ``key``, only rows that carry it."""
    rows = []
    for n in notifications:
        if not isinstance(n, Notification):
            continue
        keys = [a.window_key for a in n.alerts]
        summary = "; ".join(filter(None, (_signal_summary(a.window_key, a.why) for a in n.alerts)))
        rows.append(HistoryRow(n.event_time_s, str(n.status), keys, summary))
    seen = {(r.at_s, r.status, k) for r in rows for k in r.keys}
    rows += [r for r in _state_rows(states) if (r.at_s, r.status, r.keys[0]) not in seen]
    if key is not None:
        rows = [r for r in rows if key in r.keys]
    rows.sort(key=lambda r: (-r.at_s, r.status))
    return rows[:limit]


def key_markers(key: str, states: Iterable[AlertState], notifications: Iterable[object]) -> list[Marker]:
    """Alert events of one key: announced notices (recent history) and the stored episode starts."""
    out: list[Marker] = []
    for n in notifications:
        if isinstance(n, Notification) and any(a.window_key == key for a in n.alerts):
            kind: MarkerKind = "resolved" if n.status is AlertStatus.RESOLVED else "firing"
            out.append(Marker(n.event_time_s, kind, f"{kind} {fmt_time(n.event_time_s)}"))
    for s in states:
        if s.window_key != key:
            continue
        for start in s.episode_starts_s:
            out.append(Marker(start, "firing", f"firing {fmt_time(start)}"))
        if s.status is AlertStatus.PENDING and s.pending_since_s is not None:
            out.append(Marker(s.pending_since_s, "pending", f"pending since {fmt_time(s.pending_since_s)}"))
        if s.resolved_at_s is not None and s.status is AlertStatus.RESOLVED:
            out.append(Marker(s.resolved_at_s, "resolved", f"resolved {fmt_time(s.resolved_at_s)}"))
    return out
