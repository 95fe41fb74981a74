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
    assert len(table) == 7
    assert table[next(iter(table))][6] == "1.0x"  # the peer against itself
    for cells in table.values():
        assert float(cells[2].replace(",", "")) > 0  # msg/s (best)
    assert "synthetic texts" in out
    assert "sustained" in out and "at 1024x384x1536" in out


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
