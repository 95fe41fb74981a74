"""``monitor eval`` on a tiny random model and tiny CSVs: both heads, every variant, figures, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from monitor.classify.topics import load_taxonomy
from monitor.classify.training.calibration import expected_calibration_error, reliability_bins
from monitor.classify.training.evaluate import eval_command
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
