"""PNG figures of ``monitor eval``: confusion matrices and reliability diagrams (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.classify.training.calibration import ReliabilityBin
from monitor.classify.training.metrics import Report


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(report: Report, title: str, path: Path) -> None:
    """Counts per (true, predicted) class; sized for 3 (sentiment) to 20 (topic) classes."""
    plt = _pyplot()
    n = len(report.labels)
    side = max(4.8, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    ax.imshow(report.confusion, cmap="Blues")
    ticks = range(n)
    ax.set_xticks(ticks, report.labels, rotation=90 if n > 5 else 0, fontsize=8 if n > 5 else 10)
    ax.set_yticks(ticks, report.labels, fontsize=8 if n > 5 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in report.confusion) or 1
    for t, row in enumerate(report.confusion):
        for p, count in enumerate(row):
            if count:
                color = "white" if count > peak / 2 else "black"
                ax.text(p, t, str(count), ha="center", va="center", color=color, fontsize=7 if n > 5 else 10)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(curves: dict[str, list[ReliabilityBin]], title: str, path: Path) -> None:
    """Accuracy against confidence per bin, one line per model variant; the diagonal is perfect."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    for name, bins in curves.items():
        used = [b for b in bins if b.count]
        ax.plot([b.confidence for b in used], [b.accuracy for b in used], marker="o", markersize=3, label=name)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
