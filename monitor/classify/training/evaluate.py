"""``monitor eval``: score both heads of a model on held-out data never used in training.

* sentiment: ``sent_valid.csv`` (the held-out split; never trained or early-stopped on);
* topic: the stratified slice of the topic CSV that ``monitor train`` held out: the file, the split seed,
  the fraction and ``--max-examples`` come from the model's ``training_summary.json``, so the rows are exactly
  the ones the model did not train on (``--topic-csv`` / ``--seed`` / ``--topic-valid-fraction`` override them
  only with a warning).

A ``--valid-csv`` text the model trained on (its summary's files and split) is counted and warned about: its
score is inflated (the neighbour memory holds the row with its label).

For the model (fp32), its int8 (dynamic quantization) and bf16 variants and the lexicon baseline it
prints per-class reports, accuracy, macro-F1, calibration (ECE) and, for the variants, the share of
labels equal to fp32's and the macro-F1 delta; it writes confusion matrices and reliability diagrams
(PNG) and ``eval.json`` into ``--report-dir``.

    monitor eval                                # bundled default
    monitor eval --model DIR --min-macro-f1 0.8 # exit 1 below the bar (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm import tqdm

from monitor.classify import ModelLoadError
from monitor.classify.artifact import DEFAULT_MODEL_DIR, normalize_text
from monitor.classify.lexicon import LexiconClassifier
from monitor.classify.model_source import locate_model
from monitor.classify.topics import Taxonomy, TaxonomyError, load_taxonomy
from monitor.classify.training.arguments import open_fraction, output_dir
from monitor.classify.training.calibration import expected_calibration_error, reliability_bins
from monitor.classify.training.dataset import (
    DATASET_DIR,
    SENTIMENT_LABELS,
    TOPIC_DATASET_DIR,
    DatasetError,
    LabelledTexts,
    read_csv,
    topic_holdout,
)
from monitor.classify.training.metrics import Report, classification_report
from monitor.classify.training.plots import plot_confusion, plot_reliability
from monitor.classify.training.train import load_corpus, split_record
from monitor.classify.transformer import BucketedClassifier, TransformerClassifier
from monitor.config import ClassifierSettings

CHUNK = 256
"""Texts per progress-bar step."""
SUMMARY_FILE = "training_summary.json"
DEFAULT_SPLIT = (13, 0.1)
"""(split seed, fraction) of ``monitor train``'s defaults: used when the model records none."""
DEFAULT_TOPIC_CSV = TOPIC_DATASET_DIR / "topic_train.csv"
"""``monitor train``'s default topic CSV: scored when the model records none (or the recorded one is gone)."""


class RecordedSplit(NamedTuple):
    """What the model's training_summary.json says of the rows ``monitor train`` trained on (None: not recorded)."""

    seed: int
    fraction: float
    max_examples: int | None = None
    """Training read only the first N rows of each CSV (None: all)."""
    topic_csv: Path | None = None
    train_csv: Path | None = None
    ood_style: str = "none"
    taxonomy: Path | None = None
    """None: the default taxonomy, or not recorded."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model dir or hub id; default: the bundled model")
    p.add_argument("--valid-csv", type=Path, default=DATASET_DIR / "sent_valid.csv", help="sentiment held-out")
    p.add_argument(
        "--topic-csv", type=Path, default=None,
        help=f"default: the model's training_summary.json, else {DEFAULT_TOPIC_CSV}",
    )
    p.add_argument(
        "--topic-valid-fraction", type=open_fraction, default=None,
        help=f"held-out fraction of the topic CSV; default: the model's training_summary.json, else {DEFAULT_SPLIT[1]}",
    )
    p.add_argument(
        "--seed", type=int, default=None,
        help="split seed of the topic held-out slice (monitor train's --split-seed, else --seed); default: the "
        f"model's training_summary.json, else {DEFAULT_SPLIT[0]}",
    )
    p.add_argument("--taxonomy", type=Path, default=None, help="default: configs/taxonomy.toml")
    p.add_argument("--report-dir", type=output_dir, default=Path("reports/classifier"))
    p.add_argument("--max-length", type=int, default=128, help="tokens per text at inference")
    p.add_argument("--skip-int8", action="store_true", help="do not evaluate the int8-quantized variant")
    p.add_argument("--skip-bf16", action="store_true", help="do not evaluate the bf16 variant")
    p.add_argument("--onnx", action="store_true", help="also evaluate the ONNX Runtime graph (fp32, and int8)")
    p.add_argument("--min-macro-f1", type=float, default=0.0, help="exit 1 if sentiment macro-F1 is lower")
    return p


@dataclass(frozen=True, slots=True)
class HeadScore:
    """One head of one variant on its held-out set."""

    report: Report
    probs: torch.Tensor
    gold: torch.Tensor

    @property
    def predicted(self) -> torch.Tensor:
        return self.probs.argmax(-1)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": int(self.gold.shape[0]),
            "accuracy": self.report.accuracy,
            "macro_f1": self.report.macro_f1,
            "ece": expected_calibration_error(self.probs, self.gold),
            "per_class": {
                c.label: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}
                for c in self.report.per_class
            },
        }


Proba = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]
"""texts -> (topic probs in the taxonomy's order, sentiment probs in SENTIMENT_LABELS order)."""


def with_progress(proba: Proba, texts: list[str], desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    topic, sentiment = [], []
    for start in tqdm(range(0, len(texts), CHUNK), desc=desc, unit="chunk", leave=False, disable=None):
        t, s = proba(texts[start : start + CHUNK])
        topic.append(t)
        sentiment.append(s)
    return torch.cat(topic), torch.cat(sentiment)


def transformer_proba(classifier: BucketedClassifier, topic_names: Sequence[str]) -> Proba:
    """The classifier's probabilities with columns reordered to the taxonomy / SENTIMENT_LABELS."""
    missing = [t for t in topic_names if t not in classifier.topic_labels]
    if missing:
        raise SystemExit(
            f"error: the model's topic labels {classifier.topic_labels} lack {missing} -- "
            "retrain it with this taxonomy (`make model`) or pass --taxonomy"
        )
    topic_order = [classifier.topic_labels.index(t) for t in topic_names]
    sentiment_order = [classifier.sentiment_labels.index(s) for s in SENTIMENT_LABELS]

    def proba(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        topic, sentiment = classifier.predict_proba(texts)
        return topic[:, topic_order], sentiment[:, sentiment_order]

    return proba


def lexicon_proba(taxonomy: Taxonomy) -> Proba:
    lexicon = LexiconClassifier(taxonomy)
    index = {name: i for i, name in enumerate(taxonomy.names)}

    def proba(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        predictions = lexicon.predict(texts)
        topic = torch.zeros((len(texts), len(index)))
        for row, p in enumerate(predictions):
            rest = (1.0 - p.topic_confidence) / max(1, len(index) - 1)
            topic[row] = rest
            topic[row, index[p.topic]] = p.topic_confidence
        return topic, torch.tensor([p.sentiment_probs for p in predictions])

    return proba


def score(
    proba: Proba, name: str, sentiment: LabelledTexts, topic: LabelledTexts, topic_names: Sequence[str]
) -> tuple[HeadScore, HeadScore]:
    _, s_probs = with_progress(proba, sentiment.texts, f"{name} sentiment")
    t_probs, _ = with_progress(proba, topic.texts, f"{name} topic")
    s_gold, t_gold = torch.tensor(sentiment.labels), torch.tensor(topic.labels)
    return (
        HeadScore(
            classification_report(sentiment.labels, s_probs.argmax(-1).tolist(), SENTIMENT_LABELS), s_probs, s_gold
        ),
        HeadScore(classification_report(topic.labels, t_probs.argmax(-1).tolist(), list(topic_names)), t_probs, t_gold),
    )


def variants(
    args: argparse.Namespace, settings: ClassifierSettings
) -> list[tuple[str, Callable[[], BucketedClassifier]]]:
    out: list[tuple[str, Callable[[], BucketedClassifier]]] = []
    if not args.skip_int8:
        out.append(("int8", lambda: TransformerClassifier(settings.model_copy(update={"quantize_int8": True}))))
    if not args.skip_bf16:
        out.append(("bf16", lambda: TransformerClassifier(settings.model_copy(update={"dtype": "bfloat16"}))))
    if args.onnx:
        from monitor.classify.onnx_runtime import OnnxClassifier

        onnx = settings.model_copy(update={"runtime": "onnxruntime"})
        out.append(("onnxruntime", lambda: OnnxClassifier(onnx)))
        if not args.skip_int8:
            out.append(("onnxruntime_int8", lambda: OnnxClassifier(onnx.model_copy(update={"quantize_int8": True}))))
    return out


def recorded_split(model_dir: Path) -> RecordedSplit | None:
    """The split of the ``monitor train`` run that wrote ``model_dir``, if it says (its seed and fraction at least)."""
    summary_file = model_dir / SUMMARY_FILE
    if not summary_file.is_file():
        return None
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        record = split_record(summary)
        if "split_seed" not in record or "valid_fraction" not in record:
            return None
        args = summary.get("args", {})
        taxonomy = args.get("taxonomy", "None")
        return RecordedSplit(
            int(record["split_seed"]),
            float(record["valid_fraction"]),
            None if record.get("max_examples", "None") == "None" else int(record["max_examples"]),
            Path(record["topic_csv"]) if "topic_csv" in record else None,
            Path(record["train_csv"]) if "train_csv" in record else None,
            record.get("ood_style", "none"),
            None if taxonomy == "None" else Path(taxonomy),
        )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ModelLoadError(
            f"{summary_file} is unreadable ({exc}) -- restore it, or delete it and pass --seed and "
            "--topic-valid-fraction as given to monitor train"
        ) from exc


def topic_file(given: Path | None, recorded: RecordedSplit | None) -> Path:
    """``--topic-csv``, else the file the model trained on, else the default; a warning where it is not the file the
    model trained on: the slice of another file is not its held-out rows (found by review: eval scored the default
    topic_train.csv for a model trained on another file)."""
    kept = recorded.topic_csv if recorded is not None else None
    if given is None:
        if kept is None or kept.is_file():
            return kept or DEFAULT_TOPIC_CSV
        print(f"warning: the topic CSV of the model's {SUMMARY_FILE}, {kept}, is gone: scoring {DEFAULT_TOPIC_CSV}",
              file=sys.stderr)
        return DEFAULT_TOPIC_CSV
    if kept is not None and given.resolve() != kept.resolve():
        print(f"warning: --topic-csv {given} is not {kept}, the file the model trained on (its {SUMMARY_FILE}): "
              "the topic slice is not its held-out rows", file=sys.stderr)
    return given


def trained_texts(recorded: RecordedSplit | None, taxonomy: Path | None) -> set[str] | None:
    """The normalised texts of the rows the model trained on (its summary's files, taxonomy and split; not its
    ``--unlabelled`` texts); None where the summary records no files or they are gone."""
    if recorded is None or recorded.train_csv is None or recorded.topic_csv is None:
        return None
    if not (recorded.train_csv.is_file() and recorded.topic_csv.is_file()):
        return None
    args = argparse.Namespace(
        taxonomy=recorded.taxonomy or taxonomy, train_csv=recorded.train_csv, topic_csv=recorded.topic_csv,
        max_examples=recorded.max_examples, ood_style=recorded.ood_style, seed=recorded.seed,
        split_seed=recorded.seed, valid_fraction=recorded.fraction, unlabelled=[], unlabelled_max=0,
    )
    try:
        corpus = load_corpus(args)
    except (DatasetError, TaxonomyError) as exc:
        print(f"warning: cannot tell which --valid-csv texts the model trained on: {exc}", file=sys.stderr)
        return None
    return {normalize_text(corpus.texts[i]) for i in corpus.train}


def training_overlap(sentiment: LabelledTexts, trained: set[str] | None, valid_csv: Path) -> dict[str, int] | None:
    """How many ``--valid-csv`` rows the model trained on (warned: their score is inflated -- its own training file
    scored macro-F1 0.90 against 0.25 held out, without a word; found by review); None where it cannot tell."""
    if trained is None:
        return None
    overlap = sum(normalize_text(text) in trained for text in sentiment.texts)
    if overlap:
        print(f"warning: {overlap} of {len(sentiment.texts)} --valid-csv texts ({valid_csv}) are training rows of this "
              f"model (its {SUMMARY_FILE}): the score is inflated", file=sys.stderr)
    return {"training_rows": overlap, "rows": len(sentiment.texts)}


def topic_split(seed: int | None, fraction: float | None, recorded: RecordedSplit | None) -> tuple[int, float]:
    """The topic slice to score: the recorded split, unless a flag overrides it -- with a warning, because
    another split puts rows the model trained on into the held-out slice and inflates its accuracy."""
    if recorded is None:
        return (DEFAULT_SPLIT[0] if seed is None else seed, DEFAULT_SPLIT[1] if fraction is None else fraction)
    for flag, given, kept in (("--seed", seed, recorded[0]), ("--topic-valid-fraction", fraction, recorded[1])):
        if given is not None and given != kept:
            print(f"warning: {flag} {given} overrides {kept} from the model's {SUMMARY_FILE}: the topic slice "
                  "may hold rows the model trained on", file=sys.stderr)
    return (recorded[0] if seed is None else seed, recorded[1] if fraction is None else fraction)


def _print_head(head: str, name: str, result: HeadScore) -> None:
    print(f"-- {name}: {head} --")
    print(result.report.format())
    print(f"ECE (calibrated probabilities): {expected_calibration_error(result.probs, result.gold):.4f}")


def eval_command(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    taxonomy = load_taxonomy(args.taxonomy)
    names = list(taxonomy.names)
    sentiment_data = read_csv(args.valid_csv, taxonomy, "--valid-csv")
    model_dir = locate_model(args.model, "--model") if args.model else DEFAULT_MODEL_DIR
    recorded = recorded_split(model_dir)
    seed, fraction = topic_split(args.seed, args.topic_valid_fraction, recorded)
    topic_csv = topic_file(args.topic_csv, recorded)
    limit = recorded.max_examples if recorded is not None else None
    topic_data = topic_holdout(topic_csv, taxonomy, fraction, seed, limit)
    first = f" of its first {limit} rows" if limit else ""
    print(
        f"held-out data: {len(sentiment_data.texts)} sentiment rows ({args.valid_csv}), "
        f"{len(topic_data.texts)} topic rows ({fraction:.0%} slice of {topic_csv}{first}, split seed {seed})"
    )
    overlap = training_overlap(sentiment_data, trained_texts(recorded, args.taxonomy), args.valid_csv)
    settings = ClassifierSettings(
        model_path=args.model, device="cpu", dtype="float32", max_length_tokens=args.max_length
    )
    fp32 = TransformerClassifier(settings)
    sent, topic = score(transformer_proba(fp32, names), "fp32", sentiment_data, topic_data, names)
    _print_head("sentiment", fp32.name, sent)
    _print_head("topic", fp32.name, topic)
    results: dict[str, Any] = {"model": fp32.name, "fp32": {"sentiment": sent.summary(), "topic": topic.summary()}}
    if overlap is not None:
        results["valid_csv_training_rows"] = overlap
    curves = {
        "sentiment": {"fp32": reliability_bins(sent.probs, sent.gold)},
        "topic": {"fp32": reliability_bins(topic.probs, topic.gold)},
    }
    for label, build in variants(args, settings):
        v_sent, v_topic = score(transformer_proba(build(), names), label, sentiment_data, topic_data, names)
        entry: dict[str, Any] = {}
        for head, base, other in (("sentiment", sent, v_sent), ("topic", topic, v_topic)):
            same = float((other.predicted == base.predicted).float().mean())
            delta = other.report.macro_f1 - base.report.macro_f1
            entry[head] = {**other.summary(), "same_label_as_fp32": same, "macro_f1_delta": delta}
            curves[head][label] = reliability_bins(other.probs, other.gold)
            gain = other.report.accuracy - base.report.accuracy
            print(
                f"{label} {head}: accuracy {other.report.accuracy:.4f} ({gain:+.4f}), "
                f"macro-F1 {other.report.macro_f1:.4f} ({delta:+.4f}), same label as fp32 {same:.4f}"
            )
        results[label] = entry
    lex_sent, lex_topic = score(lexicon_proba(taxonomy), "lexicon", sentiment_data, topic_data, names)
    results["lexicon"] = {"sentiment": lex_sent.summary(), "topic": lex_topic.summary()}
    print(
        f"lexicon baseline: sentiment accuracy {lex_sent.report.accuracy:.4f}, "
        f"macro-F1 {lex_sent.report.macro_f1:.4f}; "
        f"topic accuracy {lex_topic.report.accuracy:.4f}, macro-F1 {lex_topic.report.macro_f1:.4f}"
    )
    write_figures(args.report_dir, fp32.name, sent, topic, lex_topic, curves)
    (args.report_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote confusion matrices, reliability diagrams and eval.json to {args.report_dir}")
    if sent.report.macro_f1 < args.min_macro_f1:
        print(f"FAIL: macro-F1 {sent.report.macro_f1:.4f} < --min-macro-f1 {args.min_macro_f1}", file=sys.stderr)
        return 1
    return 0


def write_figures(
    out: Path,
    model: str,
    sent: HeadScore,
    topic: HeadScore,
    lex_topic: HeadScore,
    curves: dict[str, dict[str, Any]],
) -> None:
    for head, result in (("sentiment", sent), ("topic", topic)):
        r = result.report
        plot_confusion(
            r, f"{model} {head}\nacc {r.accuracy:.3f}  macro-F1 {r.macro_f1:.3f}", out / f"confusion_{head}.png"
        )
        plot_reliability(curves[head], f"{model} {head}: reliability", out / f"reliability_{head}.png")
    r = lex_topic.report
    plot_confusion(r, f"lexicon topic\nacc {r.accuracy:.3f}", out / "confusion_topic_lexicon.png")


if __name__ == "__main__":
    raise SystemExit(eval_command(sys.argv[1:]))
