"""Classification metrics (accuracy, per-class P/R/F1, macro-F1, confusion matrix) without sklearn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClassReport:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Report:
    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    per_class: tuple[ClassReport, ...]
    confusion: tuple[tuple[int, ...], ...]
    """``confusion[true][pred]`` counts, rows/columns in ``labels`` order."""

    def format(self) -> str:
        lines = [f"{'class':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
        for c in self.per_class:
            lines.append(f"{c.label:<22}{c.precision:>10.3f}{c.recall:>10.3f}{c.f1:>10.3f}{c.support:>10d}")
        lines.append(
            f"accuracy {self.accuracy:.4f}   macro-F1 {self.macro_f1:.4f}   n={sum(map(sum, self.confusion))}"
        )
        return "\n".join(lines)


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> Report:
    """Report over integer class ids ``0..len(labels)-1``. Macro-F1 averages the classes present in the gold
    labels or the predictions (sklearn's convention): a class predicted but absent from the gold labels
    counts with F1 0, so a model is not rewarded for inventing it."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    for t, p in zip(y_true, y_pred, strict=True):
        confusion[t][p] += 1
    per_class = []
    for k in range(n):
        tp = confusion[k][k]
        predicted = sum(confusion[r][k] for r in range(n))
        support = sum(confusion[k])
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        per_class.append(ClassReport(labels[k], precision, recall, f1, support))
    present = [c.f1 for k, c in enumerate(per_class) if c.support > 0 or any(row[k] for row in confusion)]
    return Report(
        labels=tuple(labels),
        accuracy=_ratio(sum(confusion[k][k] for k in range(n)), len(y_true)),
        macro_f1=sum(present) / len(present) if present else 0.0,
        per_class=tuple(per_class),
        confusion=tuple(tuple(row) for row in confusion),
    )
