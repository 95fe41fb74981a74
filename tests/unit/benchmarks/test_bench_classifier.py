"""The classifier benchmark's short version: every variant in one table, on the tiny random model (a smoke
test of the script: no speed is asserted, the host is shared)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import bench_classifier
from monitor.classify.transformer import TransformerClassifier
from monitor.config import ClassifierSettings


def _table(out: str) -> dict[str, list[str]]:
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].removeprefix("| "): cells for cells in rows[1:]}


def test_short_run_prints_the_peer_every_variant_and_both_ceilings(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", str(tiny_model_dir), "--texts", "16", "--naive-texts", "4", "--rounds", "1",
            "--threads", "1", "--valid-csv", str(tmp_path / "absent.csv")]
    assert bench_classifier.main(argv) == 0
    out = capsys.readouterr().out
    table = _table(out)
    assert next(iter(table)).startswith("peer: transformers.pipeline(batch_size=64)")
    assert any(name.startswith("**ours: default") for name in table)
    assert len(table) == 8
    assert table[next(iter(table))][6] == "1.0x"  # the peer against itself
    for cells in table.values():
        assert float(cells[2].replace(",", "")) > 0  # msg/s (best)
    assert "16 texts (SYNTHETIC texts)" in out
    assert "sustained" in out and "at 1024x384x1536" in out


def test_the_peer_also_runs_on_the_normalised_texts_ours_tokenizes_and_both_ratios_are_printed(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one "vs peer" ratio mixed URL stripping (ours only) with inference (found by review)."""
    argv = ["--model", str(tiny_model_dir), "--texts", "10", "--naive-texts", "2", "--rounds", "1",
            "--threads", "1", "--batch-size", "5", "--valid-csv", str(tmp_path / "absent.csv")]
    assert bench_classifier.main(argv) == 0  # synthetic texts: 2 in 5 carry a URL
    out = capsys.readouterr().out
    assert "| vs peer, raw texts | vs peer, same normalised texts |" in out
    table = _table(out)
    raw = "peer: transformers.pipeline(batch_size=5)"
    same = "peer (same normalised texts): transformers.pipeline(batch_size=5)"
    tokens = {name: int(cells[-1].split(" / ")[0].replace(",", "")) for name, cells in table.items()}
    assert tokens[same] == tokens["ours: fp32"] < tokens[raw]  # the URLs are gone from both
    assert table[raw][6] == "1.0x" and table[same][7] == "1.0x"
    assert "vs peer on raw texts (what a user would run):" in out
    assert "vs peer on the same normalised texts (inference alone):" in out


def test_without_env_or_flag_the_shared_datasets_sent_valid_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented command ran on synthetic texts: the default looked only in the working directory."""
    shared = tmp_path / "sent_valid.csv"
    shared.write_text("text,label\nAcme plunges,0\n")
    monkeypatch.setattr(bench_classifier, "DATASET_DIR", tmp_path / "cwd")  # the "." fallback, empty
    monkeypatch.setattr(bench_classifier, "SHARED_VALID_CSV", shared)
    assert bench_classifier.valid_csv(None) == shared


def test_no_sent_valid_warns_on_stderr_and_labels_the_texts_synthetic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_classifier, "DATASET_DIR", tmp_path)
    monkeypatch.setattr(bench_classifier, "SHARED_VALID_CSV", tmp_path / "absent.csv")
    texts, origin = bench_classifier.load_texts(bench_classifier.valid_csv(None), 3)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(texts) == 3 and origin == "SYNTHETIC texts"
    assert len(err) == 1 and "SYNTHETIC" in err[0]


def test_forward_rows_are_the_padded_sub_batches_predict_runs(tiny_model_dir: Path) -> None:
    clf = TransformerClassifier(ClassifierSettings(model_path=str(tiny_model_dir), num_threads=1))
    texts = [" ".join(["stock"] * n) for n in (3, 40, 17, 9, 12, 5, 33, 8)]
    shapes: list[tuple[int, int]] = []
    forward = clf._forward

    def recording(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shapes.append((ids.shape[0], ids.shape[1]))
        return forward(ids, mask)

    clf._forward = recording  # type: ignore[method-assign]
    for start in (0, 4):
        clf.predict(texts[start : start + 4])
    lengths = [len(ids) for ids in clf._encode(texts)]
    assert bench_classifier.bucketed_forward_rows(lengths, 4, clf) == [rows * width for rows, width in shapes]
