"""The shipped production thresholds, backtested: the bundled demo (dense, bundled model) and the
synthetic sparse fixture (real density: a few messages per ticker per hour, daily rhythm, a two-day
collection gap; tests/fixtures, written by scripts/make_sparse_fixture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import REPO_ROOT

pytestmark = pytest.mark.integration
PRODUCTION = REPO_ROOT / "configs" / "production.toml"
FIXTURES = REPO_ROOT / "tests" / "fixtures"


def _printed_scores(printed: str) -> dict[str, str]:
    line = next(x for x in printed.splitlines() if x.startswith("detected "))
    detected, rest = line.split(";", 1)
    return {"detected": detected.removeprefix("detected ").strip(), "rest": rest}


def test_production_settings_catch_every_demo_incident(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["--config", str(PRODUCTION), "backtest", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "recall 1.00" in printed and _printed_scores(printed)["detected"] == "3/3"
    report = (out / "report.md").read_text()
    assert "| delay from first negative message |" in report and "missed" not in report
    firing = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    detectors = {a["signal"]["triggered"][0] for n in firing if n["status"] == "firing" for a in n["alerts"]}
    assert all("@" in d for d in detectors), "production alerts come from the multi-scale tests"


def test_production_settings_catch_sparse_incidents_with_few_false_alarms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")  # the fixture's templates are unambiguous
    out = tmp_path / "report"
    assert main(["--config", str(PRODUCTION), "backtest", "--input", str(FIXTURES / "sparse_stream.jsonl"),
                 "--events", str(FIXTURES / "sparse_incidents.csv"), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert _printed_scores(printed)["detected"] == "3/3"
    report = (out / "report.md").read_text()
    false_alarms = int(report.split("## False alarms (best parameter set): ", 1)[1].split("\n", 1)[0])
    assert false_alarms <= 3  # over 24 days of 14 sparse tickers
    assert "story right after the gap" in report
    firing = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    gap_start, gap_end = 1_768_694_400, 1_768_867_200  # 2026-01-18 .. 2026-01-20, no data at all
    assert not [n for n in firing if n["status"] == "firing" and gap_end <= n["event_time_s"] < gap_end + 6 * 3600
                and not any(a["window_key"].endswith("WXYZ") for a in n["alerts"])], "the gap's end is no burst"
    assert gap_start < gap_end
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 3 and all((out / p).stat().st_size > 10_000 for p in pngs)
