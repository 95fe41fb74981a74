"""``monitor backtest`` end to end on a small synthetic stream (lexicon classifier, in-memory windows): what it
says about its input and about incidents it could not have detected."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from monitor.backtest.command import _spans_s
from monitor.bundled import DEFAULT_CONFIG
from monitor.cli import main
from tests.integration.streams import BUCKET_S, T0, stream

SURGE_START = T0.timestamp() + 30 * BUCKET_S


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_WINDOWS__BUCKET_S", str(BUCKET_S))
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")


def _backtest(tmp_path: Path, rows: list[dict[str, object]], incidents: str) -> int:
    history, events = tmp_path / "h.jsonl", tmp_path / "events.csv"
    history.write_text("".join(json.dumps(r) + "\n" for r in rows))
    events.write_text("key,start,end,description\n" + incidents)
    return main(["--config", str(DEFAULT_CONFIG), "backtest", "--input", str(history), "--events", str(events),
                 "--out", str(tmp_path / "out"), "--no-progress"])


def test_the_backtest_says_where_every_input_row_went_in_its_output_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = stream()
    rows += [rows[-1], {"id": "bad", "text": "no time"}]  # a duplicate (in its bucket) and a rejected row
    assert _backtest(tmp_path, rows, f"ticker:ACME,{SURGE_START:.0f},{SURGE_START + 180:.0f},surge\n") == 0
    line = f"input: {len(rows) - 1} valid messages ({len(rows) - 2} counted, 1 duplicates, 0 late); 1 rows rejected"
    assert line in capsys.readouterr().out
    assert line in (tmp_path / "out" / "report.md").read_text()


def test_a_backtest_whose_every_row_is_rejected_exits_1_instead_of_reporting_recall_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: a CSV export with its own column names gave "recall 0.00" and exit 0."""
    rows: list[dict[str, object]] = [{"headline": "ACME plunges", "timestamp": "2026-03-02T14:00:00Z"}] * 5
    assert _backtest(tmp_path, rows, "ticker:ACME,2026-03-02T14:00:00Z,2026-03-02T15:00:00Z,x\n") == 1
    captured = capsys.readouterr()
    assert "input: 0 valid messages (0 counted, 0 duplicates, 0 late); 5 rows rejected" in captured.out
    assert "error: all 5 input rows were dead-lettered" in captured.err


def test_an_incident_on_a_key_the_input_never_names_is_reported_as_such_not_as_a_plain_miss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incidents = (f"ticker:ACME,{SURGE_START:.0f},{SURGE_START + 180:.0f},surge\n"
                 f"ticker:NEVER,{SURGE_START:.0f},{SURGE_START + 180:.0f},\"typo | in the key\nsecond line\"\n")
    assert _backtest(tmp_path, stream(), incidents) == 0
    captured = capsys.readouterr()
    assert "warning: incident 1 (ticker:NEVER" in captured.err
    assert "detected 1/2 (1 could not be detected, see the report)" in captured.out  # beside the recall it lowers
    report = (tmp_path / "out" / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| ticker:NEVER |"))
    assert "missed (no message on this key in the input)" in row
    assert "typo / in the key second line" in row, "a | or a line break in a description breaks the table"


def test_an_incident_key_spelt_like_a_cashtag_scores_against_the_ticker_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _backtest(tmp_path, stream(), f"ticker:$acme,{SURGE_START:.0f},{SURGE_START + 180:.0f},surge\n") == 0
    assert "detected 1/1" in capsys.readouterr().out


def test_a_plot_file_name_is_safe_for_any_key() -> None:
    """A key with ``/`` made a path into a missing directory, after the whole run."""
    from monitor.backtest.command import plot_name

    assert plot_name(3, "topic_ticker:legal/regulation|BRK.B") == "incident_3_topic_ticker_legal_regulation_BRK.B.png"


def test_an_incident_on_a_former_ticker_is_scored_against_the_ticker_its_stories_are_counted_under(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundled watchlist counts FB stories under META (one company, one key): an incident written as
    ``ticker:FB`` (as a 2014 incident list would be) must still match."""
    rows = [{**row, "tickers": ["FB"]} for row in stream()]
    assert _backtest(tmp_path, rows, f"ticker:FB,{SURGE_START:.0f},{SURGE_START + 180:.0f},surge\n") == 0
    assert "detected 1/1" in capsys.readouterr().out


def test_the_backtest_input_line_counts_rows_the_jump_guard_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: 302 rows, 2 refused by the event-time jump guard, printed "302 valid messages (300
    counted, 0 duplicates, 0 late); 2 rows rejected": the 2 were in neither count."""
    rows = stream()
    rows.insert(100, {**rows[100], "id": "rogue", "published_at": "2026-09-02T14:00:00Z"})
    assert _backtest(tmp_path, rows, f"ticker:ACME,{SURGE_START:.0f},{SURGE_START + 180:.0f},surge\n") == 0
    line = (f"input: {len(rows)} valid messages ({len(rows) - 1} counted, 0 duplicates, 0 late, 1 implausible_time); "
            "1 rows rejected (the implausible_time ones included)")
    assert line in capsys.readouterr().out


def test_a_backtest_starts_its_dead_letter_file_afresh_so_it_holds_this_runs_rejected_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: rerun with the same --out, the dead-letter file kept every earlier run's rows (3, then 6)
    while the input line counted this run's 3."""
    out = tmp_path / "out"
    out.mkdir()
    for stale in (out / "dead-letter.jsonl", out / "dead-letter.jsonl.1"):
        stale.write_text('{"reason": "bad_json"}\n' * 4)
    rows = stream()
    rows.append({"id": "bad", "text": "no time"})
    assert _backtest(tmp_path, rows, f"ticker:ACME,{SURGE_START:.0f},{SURGE_START + 180:.0f},surge\n") == 0
    assert len((out / "dead-letter.jsonl").read_text().splitlines()) == 1
    assert not (out / "dead-letter.jsonl.1").exists()


def test_a_backtest_of_its_own_dead_letter_file_is_refused_and_the_file_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = out / "dead-letter.jsonl"
    dead.write_text('{"reason": "bad_json"}\n')
    with pytest.raises(SystemExit):
        main(["--config", str(DEFAULT_CONFIG), "backtest", "--input", str(dead), "--out", str(out), "--no-progress"])
    assert "is also this backtest's dead-letter file" in capsys.readouterr().err
    assert dead.read_text() == '{"reason": "bad_json"}\n'


def test_a_backtest_of_a_rotation_of_its_own_dead_letter_file_is_refused_and_the_file_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: clearing the run's dead-letter rotations deleted the --input that was one of them."""
    out = tmp_path / "out"
    out.mkdir()
    rotation = out / "dead-letter.jsonl.1"
    rotation.write_text('{"reason": "bad_json"}\n')
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(DEFAULT_CONFIG), "backtest", "--input", str(rotation), "--out", str(out),
              "--no-progress"])
    assert exit_.value.code == 2
    assert "is also a rotation (dead-letter.jsonl.1) of this backtest's dead-letter file" in capsys.readouterr().err
    assert rotation.read_text() == '{"reason": "bad_json"}\n'


def test_a_backtest_out_holding_the_daemons_dead_letters_is_refused_and_they_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: ``--out var`` deleted var/dead-letter.jsonl and its rotations, the daemon's
    source.dead_letter_path (a running daemon then wrote to an unlinked file)."""
    monkeypatch.chdir(tmp_path)
    history = tmp_path / "h.jsonl"
    history.write_text("".join(json.dumps(r) + "\n" for r in stream()))
    daemon = [Path("var/dead-letter.jsonl"), Path("var/dead-letter.jsonl.3")]
    Path("var").mkdir()
    for path in daemon:
        path.write_text('{"reason": "bad_json"}\n')
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(DEFAULT_CONFIG), "backtest", "--input", str(history), "--out", "var", "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "would be the daemon's (source.dead_letter_path var/dead-letter.jsonl" in err
    assert "choose another --out" in err
    assert all(path.read_text() == '{"reason": "bad_json"}\n' for path in daemon)


def test_the_rates_per_day_leave_out_gaps_in_the_data_longer_than_a_market_closure() -> None:
    """Found by review: 11 false alarms over 4 days with data, 58 days apart, read 0.18/day (over the span)."""
    day = 86_400
    starts = [0, 60, 20 * day, 20 * day + 60, 29 * day]  # a 20-day collection gap, then a 9-day closure (kept)

    async def buckets(key: str, start_s: int, end_s: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(start_s=s) for s in starts]

    result = SimpleNamespace(store=SimpleNamespace(bucket_s=60, buckets=buckets))
    with_data, spanned = asyncio.run(_spans_s(result))  # type: ignore[arg-type]
    assert spanned == 29 * day + 60
    assert with_data == spanned - (20 * day - 120)


def test_an_incident_inside_a_gap_of_the_input_is_marked_and_the_rates_are_over_the_days_with_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: an incident in a 58-day gap of the input was a plain miss, and the rates per day counted the
    gap as quiet days."""
    gap_s = 20 * 86_400
    later = [{**row, "id": f"later-{row['id']}", "published_at": _shifted(str(row["published_at"]), gap_s)}
             for row in stream()]
    in_gap = SURGE_START + gap_s / 2
    incidents = (f"ticker:ACME,{SURGE_START:.0f},{SURGE_START + 180:.0f},surge\n"
                 f"ticker:ACME,{in_gap:.0f},{in_gap + 3600:.0f},in the gap\n")
    assert _backtest(tmp_path, stream() + later, incidents) == 0
    captured = capsys.readouterr()
    assert "warning: incident 1 (ticker:ACME, in the gap): no message in the input during the incident" in captured.err
    assert "detected 1/2 (1 could not be detected, see the report)" in captured.out
    assert "/day over 0.1 days with data, 20.0 spanned)" in captured.out
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| in the gap | missed (no message in the input during the incident) |" in report


def _shifted(iso: str, by_s: int) -> str:
    return (datetime.fromisoformat(iso) + timedelta(seconds=by_s)).isoformat().replace("+00:00", "Z")
