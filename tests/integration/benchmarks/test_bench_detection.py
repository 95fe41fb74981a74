"""The detection benchmark on a stand-in dev set (the synthetic sparse fixture, where ../shared is absent):
it replays, scores and prints recall, alert rate and delays; a missing dev set is one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import bench_detection

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_sparse_fixture_as_dev_set_is_replayed_scored_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(FIXTURES / "sparse_stream.jsonl", tmp_path / "stocknet.jsonl")
    shutil.copy(FIXTURES / "sparse_incidents.csv", tmp_path / "dev_incidents.csv")
    monkeypatch.setenv("FINSENT_DEV_SET", str(tmp_path))
    assert bench_detection.main(["--classifier", "lexicon", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "dev set: 1030 messages over 24 days, 3 incidents, production.toml, classifier lexicon" in out
    assert "recall 3/3" in out  # configs/production.toml on the sparse fixture, as tests/integration pins
    assert "median delay from incident start" in out and "wall time" in out


def test_a_missing_dev_set_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINSENT_DEV_SET", str(tmp_path))
    assert bench_detection.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs stocknet.jsonl and dev_incidents.csv" in err[0]
