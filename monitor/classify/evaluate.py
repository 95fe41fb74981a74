"""``monitor eval``: score a model on the held-out CSV (never used in training or early stopping).

Reports sentiment accuracy / macro-F1 / per-class P-R-F1 and calibration error, the topic head's
agreement with the taxonomy rules (weak labels -- NOT human topic accuracy), the same for the int8
dynamically-quantized model (its accuracy cost), and the lexicon baseline for reference. Writes a
confusion-matrix PNG and ``eval.json`` into ``--report-dir``.

    monitor eval                                # bundled default on sent_valid.csv
    monitor eval --model DIR --min-macro-f1 0.8 # exit 1 below the bar (CI)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from monitor.classify.dataset import DATASET_DIR, SENTIMENT_LABELS, read_csv
from monitor.classify.lexicon import LexiconClassifier
from monitor.classify.metrics import Report, classification_report
from monitor.classify.topics import load_taxonomy
from monitor.classify.transformer import BucketedClassifier, TransformerClassifier
from monitor.config import ClassifierSettings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model dir or hub id; default: the bundled model")
    p.add_argument("--valid-csv", type=Path, default=DATASET_DIR / "sent_valid.csv")
    p.add_argument("--taxonomy", type=Path, default=None, help="default: configs/taxonomy.toml")
    p.add_argument("--report-dir", type=Path, default=Path("reports/classifier"))
    p.add_argument("--max-length", type=int, default=128, help="tokens per text at inference")
    p.add_argument("--skip-int8", action="store_true", help="do not evaluate the int8-quantized variant")
    p.add_argument("--onnx", action="store_true", help="also evaluate the ONNX Runtime graph (fp32, and int8)")
    p.add_argument("--min-macro-f1", type=float, default=0.0, help="exit 1 if sentiment macro-F1 is lower")
    return p


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by bin size."""
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            total += float(in_bin.float().mean()) * abs(
                float(confidence[in_bin].mean() - correct[in_bin].mean())
            )
    return total


def plot_confusion(report: Report, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(report.confusion, cmap="Blues")
    ticks = range(len(report.labels))
    ax.set_xticks(ticks, report.labels)
    ax.set_yticks(ticks, report.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in report.confusion) or 1
    for t, row in enumerate(report.confusion):
        for p, count in enumerate(row):
            ax.text(
                p, t, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black"
            )
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _score(
    classifier: BucketedClassifier, texts: list[str], gold: list[int], weak: list[int]
) -> tuple[Report, Report, torch.Tensor, float, float]:
    started = time.perf_counter()
    topic, sentiment = classifier.predict_proba(texts)
    seconds = time.perf_counter() - started
    # Gold labels use SENTIMENT_LABELS order; map the model's own label order onto it.
    order = [classifier.sentiment_labels.index(label) for label in SENTIMENT_LABELS]
    sentiment = sentiment[:, order]
    sent_report = classification_report(gold, sentiment.argmax(-1).tolist(), SENTIMENT_LABELS)
    topic_report = classification_report(weak, topic.argmax(-1).tolist(), classifier.topic_labels)
    ece = expected_calibration_error(sentiment, torch.tensor(gold))
    return sent_report, topic_report, sentiment.argmax(-1), ece, len(texts) / seconds


def eval_command(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    taxonomy = load_taxonomy(args.taxonomy)
    data = read_csv(args.valid_csv, taxonomy)
    settings = ClassifierSettings(model_path=args.model, device="cpu", max_length_tokens=args.max_length)
    fp32 = TransformerClassifier(settings)
    name_to_id = {name: i for i, name in enumerate(fp32.topic_labels)}
    weak = [
        name_to_id.get(taxonomy.label(t)[0], name_to_id.get(taxonomy.default_topic, 0)) for t in data.texts
    ]

    sent, topic, predicted, ece, rate = _score(fp32, data.texts, data.sentiments, weak)
    print(f"== {fp32.name} on {args.valid_csv.name} ({len(data.texts)} texts, {rate:.0f} texts/s) ==")
    print(sent.format())
    print(f"sentiment ECE (calibrated probs): {ece:.4f}")
    print(
        f"topic head vs taxonomy rules (weak labels): agreement {topic.accuracy:.4f}, "
        f"macro-F1 {topic.macro_f1:.4f}"
    )
    plot_confusion(
        sent,
        f"{fp32.name}\nacc {sent.accuracy:.3f}  macro-F1 {sent.macro_f1:.3f}",
        args.report_dir / "confusion_sentiment.png",
    )
    results: dict[str, Any] = {
        "model": fp32.name,
        "rows": len(data.texts),
        "accuracy": sent.accuracy,
        "macro_f1": sent.macro_f1,
        "per_class": {
            c.label: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
            for c in sent.per_class
        },
        "ece": ece,
        "topic_rule_agreement": topic.accuracy,
        "topic_rule_macro_f1": topic.macro_f1,
        "texts_per_s_fp32": rate,
    }
    variants: list[tuple[str, Callable[[], BucketedClassifier]]] = []
    if not args.skip_int8:
        variants.append(("int8", lambda: TransformerClassifier(settings.model_copy(update={"quantize_int8": True}))))
    if args.onnx:
        from monitor.classify.onnx_runtime import OnnxClassifier

        onnx = settings.model_copy(update={"runtime": "onnxruntime"})
        variants.append(("onnxruntime", lambda: OnnxClassifier(onnx)))
        if not args.skip_int8:
            variants.append(
                ("onnxruntime_int8", lambda: OnnxClassifier(onnx.model_copy(update={"quantize_int8": True})))
            )
    for label, build in variants:
        q_sent, q_topic, q_pred, q_ece, q_rate = _score(build(), data.texts, data.sentiments, weak)
        same = float((q_pred == predicted).float().mean())
        print(
            f"{label}: accuracy {q_sent.accuracy:.4f} ({q_sent.accuracy - sent.accuracy:+.4f}), macro-F1 "
            f"{q_sent.macro_f1:.4f} ({q_sent.macro_f1 - sent.macro_f1:+.4f}), same label as fp32 {same:.4f}, "
            f"{q_rate:.0f} texts/s"
        )
        results[label] = {
            "accuracy": q_sent.accuracy,
            "macro_f1": q_sent.macro_f1,
            "ece": q_ece,
            "agreement_with_fp32": same,
            "topic_rule_agreement": q_topic.accuracy,
            "texts_per_s": q_rate,
        }
    lexicon = LexiconClassifier(taxonomy).predict(data.texts)
    lex = classification_report(
        data.sentiments, [SENTIMENT_LABELS.index(p.sentiment.value) for p in lexicon], SENTIMENT_LABELS
    )
    print(f"lexicon baseline: accuracy {lex.accuracy:.4f}, macro-F1 {lex.macro_f1:.4f}")
    results["lexicon"] = {"accuracy": lex.accuracy, "macro_f1": lex.macro_f1}
    args.report_dir.mkdir(parents=True, exist_ok=True)
    (args.report_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.report_dir / 'confusion_sentiment.png'} and {args.report_dir / 'eval.json'}")
    if sent.macro_f1 < args.min_macro_f1:
        print(f"FAIL: macro-F1 {sent.macro_f1:.4f} < --min-macro-f1 {args.min_macro_f1}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(eval_command(sys.argv[1:]))
