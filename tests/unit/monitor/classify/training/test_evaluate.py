"""``monitor eval`` on a tiny random model and tiny CSVs: both heads, every variant, figures, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from monitor.classify.topics import load_taxonomy
from monitor.classify.training.calibration import expected_calibration_error, reliability_bins
from monitor.classify.training.evaluate import (
    RecordedSplit,
    eval_command,
    recorded_split,
    topic_split,
    with_progress,
)
from monitor.classify.training.train import build_parser, load_corpus
from monitor.cli import main

from ..conftest import save_tiny_two_head


@pytest.fixture(scope="module")
def canonical_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny two-head model whose topic labels are the shipped taxonomy's 20 names."""
    return save_tiny_two_head(tmp_path_factory.mktemp("tiny_canonical"), list(load_taxonomy().names), seed=1)


def test_eval_reports_both_heads_for_every_variant_and_writes_figures(
    canonical_model_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    argv = ["--model", str(canonical_model_dir), "--valid-csv", str(tiny_csv), "--topic-csv", str(tiny_topic_csv)]
    assert eval_command([*argv, "--report-dir", str(out)]) == 0
    results = json.loads((out / "eval.json").read_text())
    for variant in ("fp32", "int8", "bf16", "lexicon"):
        assert results[variant]["sentiment"]["rows"] == 60
        assert results[variant]["topic"]["rows"] == 5  # the 10% slice monitor train holds out
        assert 0.0 <= results[variant]["topic"]["ece"] <= 1.0
    for variant in ("int8", "bf16"):
        for head in ("sentiment", "topic"):
            assert 0.0 <= results[variant][head]["same_label_as_fp32"] <= 1.0
            delta = results[variant][head]["macro_f1"] - results["fp32"][head]["macro_f1"]
            assert results[variant][head]["macro_f1_delta"] == pytest.approx(delta)
    assert set(results["fp32"]["topic"]["per_class"]) == set(load_taxonomy().names)
    for figure in ("confusion_sentiment", "confusion_topic", "reliability_sentiment", "reliability_topic"):
        assert (out / f"{figure}.png").stat().st_size > 1000


def test_missing_dataset_is_a_one_line_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--valid-csv", str(tmp_path / "absent.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset") and "absent.csv" in err and "\n" not in err


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    calibrated = torch.tensor([[0.75, 0.25]] * 4)  # says 75%, right 3 times in 4
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0, abs=1e-6)
    overconfident = torch.tensor([[0.99, 0.01]] * 4)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.24, abs=1e-6)
    bins = reliability_bins(overconfident, labels)
    assert sum(b.count for b in bins) == 4 and bins[-1].accuracy == pytest.approx(0.75)


def _with_summary(model_dir: Path, tmp_path: Path, summary: dict[str, object]) -> Path:
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    (copy / "training_summary.json").write_text(json.dumps(summary))
    return copy


def test_eval_scores_the_topic_slice_of_the_split_the_model_was_trained_with(
    canonical_model_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _with_summary(canonical_model_dir, tmp_path, {"split_seed": 7, "valid_fraction": 0.2})
    argv = ["--model", str(model), "--valid-csv", str(tiny_csv), "--topic-csv", str(tiny_topic_csv),
            "--skip-int8", "--skip-bf16", "--report-dir", str(tmp_path / "report")]
    assert eval_command(argv) == 0
    results = json.loads((tmp_path / "report" / "eval.json").read_text())
    assert results["fp32"]["topic"]["rows"] == 10  # 20%: 2 of each class's 12 rows, not 10%'s 1
    out = capsys.readouterr()
    assert "split seed 7" in out.out and "warning" not in out.err


def test_older_summaries_give_the_split_through_their_recorded_arguments(tmp_path: Path) -> None:
    (tmp_path / "training_summary.json").write_text(
        json.dumps({"seed": 5, "args": {"seed": "5", "split_seed": "None", "valid_fraction": "0.1"}})
    )
    assert recorded_split(tmp_path) == RecordedSplit(5, 0.1)
    (tmp_path / "training_summary.json").write_text(json.dumps({"args": {"seed": "5", "split_seed": "9",
                                                                         "valid_fraction": "0.2"}}))
    assert recorded_split(tmp_path) == RecordedSplit(9, 0.2)
    assert recorded_split(tmp_path / "absent") is None


def test_flags_override_the_recorded_split_only_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert topic_split(None, None, RecordedSplit(7, 0.2)) == (7, 0.2)
    assert capsys.readouterr().err == ""
    assert topic_split(13, None, RecordedSplit(7, 0.2)) == (13, 0.2)
    assert "warning: --seed 13 overrides 7" in capsys.readouterr().err
    assert topic_split(None, None, None) == (13, 0.1)  # no summary: monitor train's defaults


def test_evaluation_draws_no_progress_bars_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    def proba(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros((len(texts), 2)), torch.zeros((len(texts), 3))

    topic, _ = with_progress(proba, ["a"] * 600, "fp32 sentiment")
    assert topic.shape == (600, 2) and capsys.readouterr().err == ""


def test_missing_sentiment_csv_names_the_valid_csv_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--valid-csv", str(tmp_path / "absent.csv")]) == 1
    assert "pass --valid-csv PATH, or set MONITOR_DATASET_DIR" in capsys.readouterr().err


def test_eval_scores_the_held_out_topic_rows_of_the_recorded_file_and_max_examples(
    canonical_model_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: after --max-examples eval split the whole file (20 of its 41 rows were training rows), and
    without --topic-csv it scored the default topic_train.csv, not the file the model trained on."""
    header, *rows = tiny_topic_csv.read_text(encoding="utf-8").splitlines()
    topic_csv = tmp_path / "topics.csv"  # the one-row topics first: the first 45 rows hold every topic
    topic_csv.write_text("\n".join([header, *rows[60:], *rows[:60]]) + "\n", encoding="utf-8")
    model = _with_summary(canonical_model_dir, tmp_path, {"split_seed": 13, "valid_fraction": 0.2, "args": {
        "max_examples": "45", "topic_csv": str(topic_csv)}})
    argv = ["--model", str(model), "--valid-csv", str(tiny_csv), "--skip-int8", "--skip-bf16",
            "--report-dir", str(tmp_path / "report")]
    assert eval_command(argv) == 0
    results = json.loads((tmp_path / "report" / "eval.json").read_text())
    args = build_parser().parse_args(["--output", "x", "--train-csv", str(tiny_csv), "--topic-csv", str(topic_csv),
                                      "--max-examples", "45", "--valid-fraction", "0.2"])
    assert results["fp32"]["topic"]["rows"] == len(load_corpus(args).topic_val) == 5  # the whole file's: 10
    assert "warning" not in capsys.readouterr().err
    assert eval_command([*argv, "--topic-csv", str(tiny_topic_csv)]) == 0
    err = capsys.readouterr().err
    assert f"warning: --topic-csv {tiny_topic_csv} is not {topic_csv}, the file the model trained on" in err


def test_eval_warns_of_valid_csv_texts_the_model_trained_on(
    canonical_model_dir: Path, tiny_topic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: the model's own training file scored macro-F1 0.90 (0.25 held out) without a word."""
    train_csv = tmp_path / "sentiment.csv"
    train_csv.write_text("text,label\n" + "".join(f"stock news {i},{i % 3}\n" for i in range(30)), encoding="utf-8")
    model = _with_summary(canonical_model_dir, tmp_path, {"split_seed": 13, "valid_fraction": 0.1, "args": {
        "train_csv": str(train_csv), "topic_csv": str(tiny_topic_csv), "max_examples": "None", "ood_style": "none"}})
    report = tmp_path / "report"
    argv = ["--model", str(model), "--valid-csv", str(train_csv), "--topic-csv", str(tiny_topic_csv), "--skip-int8",
            "--skip-bf16", "--report-dir", str(report)]
    assert eval_command(argv) == 0
    err = capsys.readouterr().err  # one row of each class was held out: 27 trained on
    assert f"warning: 27 of 30 --valid-csv texts ({train_csv}) are training rows of this model" in err
    assert json.loads((report / "eval.json").read_text())["valid_csv_training_rows"] == {"training_rows": 27,
                                                                                          "rows": 30}
