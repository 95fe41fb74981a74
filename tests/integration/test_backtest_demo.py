"""``monitor backtest`` works out of the box on the bundled demo history and its scores are pinned.

Runs the bundled transformer model (deterministically trained, committed) over the 4,230 demo
messages once, and re-runs windows + detection for a two-point threshold sweep from the cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import DEFAULT_CONFIG
from tests.integration.streams import BUCKET_S, stream

pytestmark = pytest.mark.integration


def test_backtest_on_the_demo_history_detects_every_incident_without_false_alarms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["--config", str(DEFAULT_CONFIG), "backtest", "--sweep", "z_threshold=3,4",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "precision 1.00, recall 1.00, false alarms/day 0.00, median detection delay 10 min" in printed
    report = (out / "report.md").read_text()
    for key in ("ticker:BA", "ticker:NVDA", "ticker:WFC"):
        assert f"| {key} |" in report
    assert "missed" not in report
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["incident_0_ticker_BA.png", "incident_1_ticker_NVDA.png", "incident_2_ticker_WFC.png"]
    assert all((out / p).stat().st_size > 10_000 for p in pngs)
    assert len((out / "dead-letter.jsonl").read_text().splitlines()) == 3  # the demo's malformed lines
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert {a["window_key"] for n in alerts if n["status"] == "firing" for a in n["alerts"]} >= {
        "ticker:BA", "ticker:NVDA", "ticker:WFC"}


def test_replay_command_is_isolated_and_writes_alerts_to_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_WINDOWS__BUCKET_S", str(BUCKET_S))
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    history = tmp_path / "h.jsonl"

    monkeypatch.chdir(tmp_path)  # relative paths (dead-letter file) land in the test's directory
    history.write_text("".join(json.dumps(m) + "\n" for m in stream()) + "{broken\n")
    report = tmp_path / "alerts.jsonl"
    code = main(["--config", str(DEFAULT_CONFIG), "replay", "--input", str(history), "--report", str(report),
                 "--no-progress"])
    assert code == 0
    notes = [json.loads(line) for line in report.read_text().splitlines()]
    assert [n["status"] for n in notes] == ["firing", "resolved"]
    assert any(a["window_key"] == "ticker:ACME" for a in notes[0]["alerts"])
    dead_path = tmp_path / "alerts.dead-letter.jsonl"  # isolated next to the report, not the production file
    dead = [json.loads(line) for line in dead_path.read_text().splitlines()]
    assert [d["reason"] for d in dead] == ["bad_json"]
