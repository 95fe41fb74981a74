from __future__ import annotations

import pytest

from monitor.classify.training.metrics import classification_report


def test_report_matches_hand_computed_precision_recall_f1() -> None:
    # class 0: tp=1, fp=1, fn=1 -> p=r=f1=0.5; class 1: tp=2, fp=1, fn=0 -> p=2/3, r=1, f1=0.8;
    # class 2: tp=0, fp=0, fn=1 -> 0.
    report = classification_report([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert report.accuracy == pytest.approx(3 / 5)
    assert [c.f1 for c in report.per_class] == pytest.approx([0.5, 0.8, 0.0])
    assert report.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert report.confusion == ((1, 1, 0), (0, 2, 0), (1, 0, 0))


def test_macro_f1_ignores_classes_absent_from_the_gold_labels() -> None:
    report = classification_report([0, 0], [0, 0], ["a", "b"])
    assert report.macro_f1 == pytest.approx(1.0)


def test_macro_f1_counts_a_class_predicted_but_absent_from_the_gold_labels_as_sklearn_does() -> None:
    # a: tp=1, fn=1 -> p=1, r=1/2, f1=2/3; b: tp=1 -> f1=1; c: never true, predicted once -> f1=0.
    # sklearn.metrics.f1_score([0, 0, 1], [0, 2, 1], average="macro") == (2/3 + 1 + 0) / 3 = 5/9
    report = classification_report([0, 0, 1], [0, 2, 1], ["a", "b", "c"])
    assert report.macro_f1 == pytest.approx(5 / 9)


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="y_pred"):
        classification_report([0], [], ["a"])
