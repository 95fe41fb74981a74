from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from consumers.replay import FileReplaySource
from monitor.types import SourceRecord
from tests.fakes import CollectingDeadLetter


def _line(mid: str, t: str, text: str = "hello") -> str:
    return json.dumps({"id": mid, "source": "news", "text": text, "published_at": t}) + "\n"


async def _read_all(source: FileReplaySource, max_records: int = 100) -> list[SourceRecord]:
    out: list[SourceRecord] = []
    async with source:
        async for batch in source.batches(max_records, 10):
            out.extend(batch)
    return out


async def test_malformed_lines_are_dead_lettered_with_file_and_line_and_replay_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(_line("a", "2026-01-01T00:00:00Z") + "{broken\n" + _line("b", "soon") + "\n"
                    + _line("c", "2026-01-01T00:01:00Z"))
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["a", "c"]
    assert [(d[1], d[3]["line"]) for d in dead.items] == [("bad_json", 2), ("bad_timestamp", 3)]


async def test_csv_history_is_read_with_tickers_split(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id,source,text,published_at,tickers\n1,news,Acme falls,2026-01-01T00:00:00Z,ACME;BZ\n"
                    "2,comment,ok,1767225660,\n")
    records = await _read_all(FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000,
                                               max_text_chars=1000))
    assert [(r.message.id, r.message.tickers) for r in records] == [("1", ("ACME", "BZ")), ("2", ())]


async def test_speed_factor_paces_by_event_time(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text("".join(_line(str(i), f"2026-01-01T00:00:{i * 10:02d}Z") for i in range(4)))
    started = time.monotonic()
    records = await _read_all(FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000,
                                               max_text_chars=1000, speed=100.0))
    elapsed = time.monotonic() - started
    assert len(records) == 4
    assert elapsed >= 0.3 * 0.95  # 30 s of event time at 100x


async def test_missing_replay_file_is_a_clear_error(tmp_path: Path) -> None:
    source = FileReplaySource([tmp_path / "nope.jsonl"], CollectingDeadLetter(), max_message_bytes=1, max_text_chars=1)
    with pytest.raises(FileNotFoundError, match=r"source\.replay_paths"):
        await source.start()
