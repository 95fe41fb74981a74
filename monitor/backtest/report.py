"""Backtest report: a Markdown summary plus one PNG per incident (series, baseline, alerts, incident)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from alerts.detectors import DetectorConfig, KeySeries, detect
from monitor.backtest.runner import RunResult
from monitor.backtest.scoring import Incident, Scores, belongs
from monitor.config import Settings

PLOT_MARGIN_S = 12 * 3600


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def _x(epoch_s: float) -> float:
    """Matplotlib date number of an epoch time (typed float, unlike passing datetimes)."""
    return float(mdates.date2num(_ts(epoch_s)))  # type: ignore[no-untyped-call]


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value / 60:+.0f} min"


async def plot_incident(result: RunResult, incident: Incident, settings: Settings, path: Path) -> None:
    bucket_s = result.store.bucket_s
    lo, hi = incident.start_s - PLOT_MARGIN_S, incident.end_s + PLOT_MARGIN_S
    cfg = DetectorConfig.from_settings(settings.alerts, bucket_s)
    history = await result.store.buckets(incident.key, lo - cfg.history_s, hi)
    series = KeySeries(incident.key, history)
    shown = [b for b in history if lo <= b.start_s < hi]
    signals = [detect(series, b.start_s, cfg) for b in shown]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.axvspan(_x(incident.start_s), _x(incident.end_s), color="orange", alpha=0.25, label="labelled incident")
    ax.plot([_x(b.start_s) for b in shown], [b.neg_share for b in shown], ".-", label="negative share")
    ax.plot([_x(s.bucket_start_s) for s in signals], [s.baseline_neg_share for s in signals], "--",
            label="baseline (EWMA)")
    fired = [n for n in result.firing if any(belongs(a.window_key, incident.key) for a in n.alerts)]
    for i, note in enumerate(fired):
        ax.axvline(_x(note.event_time_s), color="red", lw=1.5, label="alert fired" if i == 0 else None)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{incident.key}: {incident.description}")
    ax.set_ylabel("negative share per bucket")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(
    rows: Sequence[tuple[dict[str, float], Scores]],
    best: int,
    incidents: Sequence[Incident],
    plots: Sequence[Path],
    out_dir: Path,
) -> str:
    names = sorted({k for params, _ in rows for k in params})
    head = [*names, "alerts", "hits", "false alarms", "precision", "recall", "FA/day", "lead p50", "lead p90"]
    lines = ["# Backtest report", "", f"{len(incidents)} labelled incidents; best parameter set marked with *.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (params, s) in enumerate(rows):
        cells = [f"{params.get(n, '-')}" for n in names] + [
            str(s.alerts), str(s.hits), str(s.false_alarms), f"{s.precision:.2f}", f"{s.recall:.2f}",
            f"{s.false_alarms_per_day:.2f}", _fmt_s(s.lead_time_median_s), _fmt_s(s.lead_time_p90_s)]
        lines.append(("| *" if i == best else "| ") + " | ".join(cells) + " |")
    best_scores = rows[best][1]
    lines += ["", "## Incidents (best parameter set)", "", "| key | start (UTC) | description | detection delay |",
              "|---|---|---|---|"]
    for inc, lead in zip(incidents, best_scores.lead_times_s, strict=True):
        delay = "missed" if lead is None else _fmt_s(lead)
        lines.append(f"| {inc.key} | {_ts(inc.start_s):%Y-%m-%d %H:%M} | {inc.description} | {delay} |")
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(out_dir)})" for p in plots]
    return "\n".join(lines) + "\n"
