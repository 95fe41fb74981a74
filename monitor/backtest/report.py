"""Backtest report: a Markdown summary (scores, per-incident delays, every false alarm with its evidence)
plus one PNG per incident (series, baseline, alert markers, incident span)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from alerts.detectors import Signal
from alerts.model import Notification
from monitor.backtest.runner import RunResult
from monitor.backtest.scoring import Incident, Scores, belongs
from monitor.windows.buckets import BucketStats

PLOT_MARGIN_S = 24 * 3600
HOUR_S = 3600
MAX_FALSE_ALARMS_LISTED = 500


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def _x(epoch_s: float) -> float:
    """Matplotlib date number of an epoch time (typed float, unlike passing datetimes)."""
    return float(mdates.date2num(_ts(epoch_s)))  # type: ignore[no-untyped-call]


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value / 60:+.0f} min"


def _hourly(buckets: Sequence[BucketStats], lo: int, hi: int) -> tuple[list[float], list[int], list[int]]:
    """Hour starts, negatives and volume per hour over ``[lo, hi)`` (zeros included)."""
    first = lo - lo % HOUR_S
    hours = list(range(first, hi, HOUR_S))
    neg = [0] * len(hours)
    vol = [0] * len(hours)
    for b in buckets:
        i = (b.start_s - first) // HOUR_S
        if 0 <= i < len(hours):
            neg[i] += b.negative
            vol[i] += b.volume
    return [float(h) for h in hours], neg, vol


def _expected_per_hour(trace: Sequence[Signal], lo: int, hi: int) -> tuple[list[float], list[float]]:
    """The baseline as the detectors saw it: expected negatives per hour (multiscale) or baseline
    share x the bucket's volume scaled to an hour (per-bucket detectors), at each evaluated bucket."""
    xs, ys = [], []
    for sig in trace:
        if lo <= sig.bucket_start_s < hi:
            xs.append(float(sig.bucket_end_s))
            if sig.baseline_kind == "multiscale":
                ys.append(sig.expected_negatives_per_h)
            else:
                width_h = (sig.bucket_end_s - sig.bucket_start_s) / HOUR_S
                ys.append(sig.baseline_neg_share * sig.volume / width_h)
    return xs, ys


async def plot_incident(result: RunResult, incident: Incident, path: Path, why: str = "") -> None:
    """Negatives and volume per hour of the incident key, the baseline's expected negatives per hour,
    the alert markers and the labelled span, over the incident +- ``PLOT_MARGIN_S``; ``why`` says why the
    plot is empty (see command.incident_notes)."""
    lo, hi = incident.start_s - PLOT_MARGIN_S, incident.end_s + PLOT_MARGIN_S
    hours, neg, vol = _hourly(await result.store.buckets(incident.key, lo, hi), lo, hi)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.axvspan(_x(incident.start_s), _x(incident.end_s), color="orange", alpha=0.25, label="labelled incident")
    width = 0.9 / 24
    ax.bar([_x(h + HOUR_S / 2) for h in hours], vol, width=width, color="#c8d6e5", label="messages / h")
    ax.bar([_x(h + HOUR_S / 2) for h in hours], neg, width=width, color="#c0392b", label="negative / h")
    xs, ys = _expected_per_hour(result.traces.get(incident.key, []), lo, hi)
    if xs:
        ax.step([_x(x) for x in xs], ys, where="post", color="black", lw=1.2, label="expected negative / h")
    fired = [n for n in result.firing if any(belongs(a.window_key, incident.key) for a in n.alerts)
             and lo <= n.event_time_s < hi]
    for i, note in enumerate(fired):
        ax.axvline(_x(note.event_time_s), color="red", lw=1.5, ls="--", label="alert fired" if i == 0 else None)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    ax.set_xlim(_x(lo), _x(hi))
    ax.set_title(f"{incident.key}: {incident.description}"[:110])
    if why:
        ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", fontsize=12, color="#555555")
    ax.set_yscale("symlog", linthresh=0.1)  # the expected rate of a sparse key is ~0.01-1 per hour
    ax.set_ylabel("per hour (linear below 0.1, log above)")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table row or list item (a ``|`` or a line break in an incident's description
    broke the table; found by review)."""
    return " ".join(text.replace("|", "/").split())


def _evidence_lines(note: Notification, top_n: int = 3) -> list[str]:
    lines = []
    for a in note.alerts:
        sig = a.signal
        top = sig.top
        numbers = (f"{top.name}: {top.negatives} negative of {top.volume}, expected {top.expected:.1f}, "
                   f"-log10 p {top.log10p:.1f}") if top else (
            f"neg share {sig.neg_share:.0%} vs {sig.baseline_neg_share:.0%}, volume {sig.volume}, "
            f"{','.join(sig.triggered)}")
        lines.append(f"  - `{a.window_key}` {numbers}")
        for ev in a.evidence[:top_n]:
            text = _cell(ev.text)[:160]
            lines.append(f"    - {ev.score:+.2f} {_ts(ev.event_time_s):%m-%d %H:%M} {text}")
    return lines


def markdown(
    rows: Sequence[tuple[dict[str, float], Scores]],
    best: int,
    incidents: Sequence[Incident],
    plots: Sequence[Path],
    out_dir: Path,
    false_alarms: Sequence[Notification] = (),
    *,
    read: str = "",
    notes: Sequence[str] = (),
) -> str:
    """``read``: where the input rows went (command.input_line); ``notes``: per incident, why it could not be
    detected (command.incident_notes)."""
    names = sorted({k for params, _ in rows for k in params})
    head = [*names, "alerts", "alerts/day", "hits", "attributed", "false alarms", "precision", "recall", "FA/day",
            "lead p50", "lead p90", "from 1st neg p50"]
    lines = ["# Backtest report", "", *([read, ""] if read else []),
             f"{len(incidents)} labelled incidents; best parameter set marked with *. *alerts* counts firing "
             "notifications; *attributed* ones name only aggregate keys (`all`, `topic:*`) or keys sharing the "
             "incident's ticker or topic during an incident; one that detects an incident and also names an unrelated "
             "key is both a hit and a false alarm. Rates per day are over the days with data (a stretch of more than "
             "10 days without a message is left out).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (params, s) in enumerate(rows):
        cells = [f"{params.get(n, '-')}" for n in names] + [
            str(s.alerts), f"{s.alerts_per_day:.2f}", str(s.hits), str(s.attributed), str(s.false_alarms),
            s.precision_text, s.recall_text, f"{s.false_alarms_per_day:.2f}", _fmt_s(s.lead_time_median_s),
            _fmt_s(s.lead_time_p90_s), _fmt_s(s.from_first_negative_median_s)]
        lines.append(("| *" if i == best else "| ") + " | ".join(cells) + " |")
    best_scores = rows[best][1]
    lines += ["", "## Incidents (best parameter set)", "",
              "| key | start (UTC) | description | detection delay | delay from first negative message |",
              "|---|---|---|---|---|"]
    from_neg = best_scores.from_first_negative_s or (None,) * len(incidents)
    why = notes or ("",) * len(incidents)
    for inc, lead, neg, reason in zip(incidents, best_scores.lead_times_s, from_neg, why, strict=True):
        delay = _fmt_s(lead) if lead is not None else f"missed ({reason})" if reason else "missed"
        lines.append(f"| {inc.key} | {_ts(inc.start_s):%Y-%m-%d %H:%M} | {_cell(inc.description)} | {delay} | "
                     f"{'-' if neg is None else _fmt_s(neg)} |")
    lines += ["", f"## False alarms (best parameter set): {len(false_alarms)}", "",
              "Each with its strongest test and its most negative messages, so an unlabelled real event "
              "can be told from noise.", ""]
    for note in false_alarms[:MAX_FALSE_ALARMS_LISTED]:
        lines.append(f"- {_ts(note.event_time_s):%Y-%m-%d %H:%M} UTC {note.title}")
        lines += _evidence_lines(note)
    if len(false_alarms) > MAX_FALSE_ALARMS_LISTED:
        lines.append(f"- ... and {len(false_alarms) - MAX_FALSE_ALARMS_LISTED} more (alerts.jsonl has them all)")
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(out_dir)})" for p in plots]
    return "\n".join(lines) + "\n"
