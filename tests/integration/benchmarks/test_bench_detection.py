"""The detection benchmark on a stand-in dev set (the synthetic sparse fixture, where ../shared is absent):
it replays, scores and prints recall, alert rate and delays; a missing dev set is one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import bench_detection
from monitor.backtest.scoring import Incident

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


class _AnswerKeyRead(Exception):
    """Stops the run once the incidents reached the backtest: they are all that test needs."""


def test_incidents_are_loaded_as_monitor_backtest_loads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark scored ``ticker:FB`` against FB's windows while entity linking counts its stories under META,
    and read naive times as UTC whatever ``source.naive_time_zone`` said (found by review)."""
    shutil.copy(FIXTURES / "sparse_stream.jsonl", tmp_path / "stocknet.jsonl")
    (tmp_path / "dev_incidents.csv").write_text(
        "key,start,end,description\n"
        "ticker:FB,2014-01-29T21:00:00Z,2014-01-31T00:00:00Z,fb\n"
        "ticker:GOOG,2014-01-30 16:00:00,2014-02-01T00:00:00Z,naive start\n"
    )
    monkeypatch.setenv("FINSENT_DEV_SET", str(tmp_path))
    monkeypatch.setenv("MONITOR_SOURCE__NAIVE_TIME_ZONE", "America/New_York")
    scored: list[list[tuple[str, int]]] = []

    async def recording(_settings: object, incidents: list[Incident], *_a: object,
                        **_kw: object) -> list[object]:
        scored.append([(inc.key, inc.start_s) for inc in incidents])
        raise _AnswerKeyRead

    monkeypatch.setattr(bench_detection, "run_backtest", recording)
    with pytest.raises(_AnswerKeyRead):
        bench_detection.main(["--classifier", "lexicon", "--no-progress"])
    [(fb, _), (goog, goog_start)] = scored[0]
    assert fb == "ticker:META" and goog == "ticker:GOOGL"
    assert goog_start == 1391115600  # 2014-01-30 16:00 in New York = 21:00 UTC
