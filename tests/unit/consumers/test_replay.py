from __future__ import annotations

import asyncio
import gzip
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from consumers.replay import FileReplaySource, _csv_row, iter_lines, split_tickers_cell
from consumers.schema import InvalidMessage, message_from_dict
from monitor.config import InputError
from monitor.time_bounds import EventTimeBounds
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


async def test_an_unclosed_quote_is_a_dead_letter_of_its_line_and_the_rows_it_swallowed_are_read_as_rows(
    tmp_path: Path,
) -> None:
    """Before the first fix, rows 2-3 ended up inside row 1's text: one garbage message counted, two real rows lost;
    then they were one dead letter, not counted. Prose with newlines in a quoted text is a row as usual."""
    path = tmp_path / "h.csv"
    path.write_text('id,source,text,published_at\n1,news,"Acme falls,1767225600\n2,news,ok,1767225600\n'
                    '3,news,fine,1767225660\n4,news,"end",1767225720\n'
                    '5,news,"Two paragraphs.\nSecond one, calmly.",1767225780\n6,news,last,1767225840\n')
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["2", "3", "4", "5", "6"]
    [(raw, reason, detail, origin)] = dead.items
    assert (reason, raw, origin["line"]) == ("bad_csv", b'1,news,"Acme falls,1767225600\n', 2)
    assert "line 2 opens a quote that does not close before line 5" in detail and "read as rows" in detail


async def test_an_unclosed_quote_past_the_csv_field_limit_loses_no_row(tmp_path: Path) -> None:
    """Found by review: past the csv module's field limit (128 KiB) the swallowed rows vanished, neither counted nor
    dead-lettered (1,085 of 2,089 in the reviewer's file)."""
    rows = [f"{i},news,row {i},{1767225600 + i}\n" for i in range(3000)]
    path = tmp_path / "h.csv"
    path.write_text("id,source,text,published_at\n" + rows[0] + 'x,news,"unclosed,1767225600\n' + "".join(rows[1:]))
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert len(records) == 3000
    assert [(reason, origin["line"]) for _raw, reason, _detail, origin in dead.items] == [("bad_csv", 3)]


async def test_a_quoted_text_past_the_field_limit_is_one_dead_letter_and_the_rows_after_it_are_read(
    tmp_path: Path,
) -> None:
    """Found by review: reading resumed inside the text, so each later paragraph was a bad row of its own and the
    rows after it were read out of step (7 of 200 lost)."""
    text = "\n".join(f"Paragraph {i}: analysts said, again, that shares fell, and fell." + "z" * 4000
                     for i in range(40))
    path = tmp_path / "h.csv"
    path.write_text("id,source,text,published_at\n1,news,ok,1767225600\n"
                    f'2,news,"{text}",1767225600\n3,news,"fine, quoted",1767225660\n4,news,last,1767225720\n')
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["1", "3", "4"]
    [(_raw, reason, detail, origin)] = dead.items
    assert (reason, origin["line"]) == ("bad_csv", 3) and "lines 3-42" in detail and "field limit" in detail


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


async def test_poison_lines_of_every_known_shape_are_dead_lettered_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    poison = [
        b'{"id": "p1", "source": "news", "text": "x", "published_at": "0001-01-01T00:00:00+05:00"}',
        b'{"id": "p2", "source": "news", "text": "x", "published_at": "9999-12-31T23:00:00-05:00"}',
        b'{"id": "p3", "source": "news", "text": "x", "published_at": 1' + b"0" * 400 + b"}",
        b'{"id": ' + b"9" * 5_000 + b', "source": "news", "text": "x", "published_at": 1767225600}',
        b'{"id": "p5", "source": "news", "text": "x\\ud800", "published_at": 1767225600}',
        b'{"id": "p6\\ud800", "source": "news", "text": "x", "published_at": 1767225600}',
        b'{"id": "p7", "source": "news", "text": "x", "tickers": ["A\\udfff"], "published_at": 1767225600}',
    ]
    lines = [_line("a", "2026-01-01T00:00:00Z").encode(), *(p + b"\n" for p in poison),
             _line("b", "2026-01-01T00:01:00Z").encode()]
    path.write_bytes(b"".join(lines))
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=64_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["a", "b"]
    assert [(d[1], d[3]["line"]) for d in dead.items] == [
        ("bad_timestamp", 2), ("bad_timestamp", 3), ("bad_timestamp", 4), ("bad_json", 5),
        ("bad_encoding", 6), ("bad_encoding", 7), ("bad_encoding", 8)]


async def test_implausible_event_times_are_dead_lettered_against_the_injected_clock(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(_line("ok", "2026-01-01T01:00:00Z") + _line("future", "2026-01-01T01:00:01Z")
                    + _line("ancient", "1999-12-31T00:00:00Z"))
    bounds = EventTimeBounds(max_future_s=3600, clock=lambda: 1_767_225_600.0)  # 2026-01-01T00:00:00Z
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000,
                                               bounds=bounds))
    assert [r.message.id for r in records] == ["ok"]
    assert [(d[1], d[3]["line"]) for d in dead.items] == [("implausible_time", 2), ("implausible_time", 3)]
    assert "source.max_future_s" in dead.items[0][2] and "source.min_event_time" in dead.items[1][2]


async def test_an_unforeseen_error_on_one_line_dead_letters_it_as_parse_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import consumers.replay

    real = consumers.replay.message_from_dict

    def flaky(obj: Any, **kwargs: Any) -> Any:
        if obj.get("id") == "boom":
            raise ZeroDivisionError("validator bug")
        return real(obj, **kwargs)

    monkeypatch.setattr(consumers.replay, "message_from_dict", flaky)
    path = tmp_path / "h.jsonl"
    path.write_text(_line("a", "2026-01-01T00:00:00Z") + _line("boom", "2026-01-01T00:00:00Z")
                    + _line("b", "2026-01-01T00:00:00Z"))
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["a", "b"]
    assert [(d[1], d[3]["line"]) for d in dead.items] == [("parse_error", 2)]
    assert "ZeroDivisionError" in dead.items[0][2]


async def test_csv_rows_with_huge_fields_or_broken_utf8_are_dead_lettered_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(b"id,source,text,published_at\n1,news,ok,1767225600\n2,news," + b"x" * 200_000
                     + b",1767225600\n3,news,caf\xe9,1767225600\n4,news,fine,1767225600\n")
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["1", "4"]
    assert [d[1] for d in dead.items] == ["bad_csv", "bad_encoding"]


async def test_a_gigantic_line_is_dead_lettered_as_oversized_without_being_held_whole(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    huge = b'{"id": "huge", "text": "' + b"x" * 5_000_000 + b'"}\n'
    path.write_bytes(_line("a", "2026-01-01T00:00:00Z").encode() + huge + _line("b", "2026-01-01T00:00:01Z").encode()
                     + b"y" * 3_000_000)  # and a last line with no newline at all
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["a", "b"]
    assert [(d[1], d[3]["line"]) for d in dead.items] == [("oversized", 2), ("oversized", 4)]
    assert all(len(d[0]) <= 10_002 for d in dead.items)
    assert f"{len(huge)} bytes" in dead.items[0][2] and "3000000 bytes" in dead.items[1][2]


async def test_csv_times_in_odd_digits_are_bad_timestamps_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id,source,text,published_at\n1,news,a,\u00b2\u00b3\n2,news,b," + "1" * 400
                    + "\n3,news,c,1767225600\n", encoding="utf-8")
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
    assert [r.message.id for r in records] == ["3"]
    assert [d[1] for d in dead.items] == ["bad_timestamp", "bad_timestamp"]


@given(st.binary(max_size=400))
async def test_any_csv_body_is_read_to_the_end_without_raising(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.csv"
        path.write_bytes(b"id,source,text,published_at,tickers\n" + body)
        dead = CollectingDeadLetter()
        records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
        assert all(r.message.text for r in records) and all(d[1] for d in dead.items)


@given(st.binary(max_size=400))
async def test_any_jsonl_body_is_read_to_the_end_without_raising(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.jsonl"
        path.write_bytes(body)
        dead = CollectingDeadLetter()
        records = await _read_all(FileReplaySource([path], dead, max_message_bytes=10_000, max_text_chars=1000))
        assert all(r.message.text for r in records) and all(d[1] for d in dead.items)


async def test_a_paced_replay_skips_a_gap_longer_than_the_pacing_cap(tmp_path: Path) -> None:
    """One line a year ahead made a replay at 100x sleep 3.6 days; now the gap is skipped and logged."""
    path = tmp_path / "h.jsonl"
    path.write_text(_line("a", "2026-01-01T00:00:00Z") + _line("b", "2026-01-01T00:00:10Z")
                    + _line("far", "2026-12-01T00:00:00Z") + _line("c", "2026-12-01T00:00:10Z"))
    started = time.monotonic()
    with capture_logs() as logs:
        records = await _read_all(FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000,
                                                   max_text_chars=1000, speed=100.0))
    elapsed = time.monotonic() - started
    assert [r.message.id for r in records] == ["a", "b", "far", "c"]
    assert 0.19 <= elapsed < 5  # both 10 s steps paced (0.1 s each), the 11-month gap skipped
    assert [e["event"] for e in logs if e["event"] == "replay_gap_skipped"] == ["replay_gap_skipped"]


async def test_one_line_dated_far_ahead_does_not_turn_pacing_off_for_the_rest_of_the_file(tmp_path: Path) -> None:
    """Found by review: the rogue line became the pacing origin, every later line was behind it, and none slept (a
    3 h file at 300x took 4.7 s instead of 37 s)."""
    path = tmp_path / "h.jsonl"
    path.write_text(_line("a", "2026-01-01T00:00:00Z") + _line("far", "2026-12-01T00:00:00Z")
                    + "".join(_line(f"r{i}", f"2026-01-01T00:00:{10 * i:02d}Z") for i in range(1, 5)))
    started = time.monotonic()
    records = await _read_all(FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000,
                                               max_text_chars=1000, speed=100.0))
    assert [r.message.id for r in records] == ["a", "far", "r1", "r2", "r3", "r4"]
    assert time.monotonic() - started >= 0.3 * 0.95  # r1 -> r4: 30 s of event time at 100x, paced again


async def test_a_paced_replay_hands_lines_already_due_over_in_one_batch_not_one_batch_each(tmp_path: Path) -> None:
    """Found by review: the pending batch was handed over before every line even when no sleep followed, so the
    README's dashboard demo classified one message per batch (2,836 batches for 2,836 messages) and ran far slower
    than its speed."""
    path = tmp_path / "h.jsonl"
    path.write_text("".join(_line(str(i), "2026-01-01T00:00:00Z") for i in range(50)))
    source = FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000, max_text_chars=1000,
                              speed=100.0)
    async with source:
        sizes = [len(batch) async for batch in source.batches(20, 10)]
    assert sizes == [20, 20, 10]


async def test_a_paced_replay_still_hands_each_line_over_before_sleeping_to_the_next(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text("".join(_line(str(i), f"2026-01-01T00:00:{i * 20:02d}Z") for i in range(4)))
    source = FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000, max_text_chars=1000,
                              speed=100.0)
    started = time.monotonic()
    async with source:
        sizes = [len(batch) async for batch in source.batches(20, 10)]
    assert sizes == [1, 1, 1, 1] and time.monotonic() - started >= 0.6 * 0.95  # 60 s of event time at 100x


async def test_a_paced_replay_slower_than_its_speed_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: pacing restarted silently each time the replay fell a minute behind schedule."""
    monkeypatch.setattr("consumers.replay.MAX_PACE_WAIT_S", 0.05)
    path = tmp_path / "h.jsonl"
    path.write_text("".join(_line(str(i), f"2026-01-01T00:00:{i:02d}Z") for i in range(12)))
    source = FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000, max_text_chars=1000,
                              speed=1000.0)
    read = 0
    with capture_logs() as logs:
        async with source:
            async for batch in source.batches(100, 10):
                read += len(batch)
                await asyncio.sleep(0.1)  # a classifier slower than 1 ms of wall time per line
    assert read == 12
    assert [e["event"] for e in logs if e["event"] == "replay_behind_schedule"] == ["replay_behind_schedule"]


async def test_a_line_dated_far_ahead_is_not_reported_as_the_replay_falling_behind(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(_line("a", "2026-01-01T00:00:00Z") + _line("far", "2026-12-01T00:00:00Z")
                    + _line("b", "2026-01-01T00:00:01Z"))
    with capture_logs() as logs:
        records = await _read_all(FileReplaySource([path], CollectingDeadLetter(), max_message_bytes=10_000,
                                                   max_text_chars=1000, speed=100.0))
    assert len(records) == 3 and not [e for e in logs if e["event"] == "replay_behind_schedule"]


def _record_of(size: int, mid: str, t: str) -> bytes:
    """A JSON record of exactly ``size`` bytes (its text padded)."""
    bare = json.dumps({"id": mid, "source": "news", "text": "", "published_at": t}).encode()
    record = json.dumps({"id": mid, "source": "news", "text": "x" * (size - len(bare)), "published_at": t}).encode()
    assert len(record) == size
    return record


async def test_a_line_of_exactly_max_message_bytes_is_read_whatever_its_line_ending(tmp_path: Path) -> None:
    """The limit counts the record, not its newline: a line of exactly ``max_message_bytes`` bytes was
    refused as "record has 64001 bytes" although Kafka accepts the same record."""
    limit = 2_000
    path = tmp_path / "h.jsonl"
    path.write_bytes(_record_of(limit, "lf", "2026-01-01T00:00:00Z") + b"\n"
                     + _record_of(limit, "crlf", "2026-01-01T00:00:01Z") + b"\r\n"
                     + _record_of(limit + 1, "over-lf", "2026-01-01T00:00:02Z") + b"\n"
                     + _record_of(limit, "last", "2026-01-01T00:00:03Z"))  # no newline at the end
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([path], dead, max_message_bytes=limit, max_text_chars=limit))
    assert [r.message.id for r in records] == ["lf", "crlf", "last"]
    assert [(d[1], d[3]["line"]) for d in dead.items] == [("oversized", 3)]
    assert f"record has {limit + 1} bytes, limit is {limit}" in dead.items[0][2]


async def test_a_leading_byte_order_mark_is_skipped_in_jsonl_and_csv_files_alike(tmp_path: Path) -> None:
    """As for a Kafka value (``decode_json``): an editor's or spreadsheet's UTF-8 BOM does not lose the first
    line. In a CSV file it made the first column ``\ufeffid``, so every row was ``missing_field``."""
    jsonl, csv_path = tmp_path / "h.jsonl", tmp_path / "h.csv"
    jsonl.write_bytes("\ufeff".encode() + _line("a", "2026-01-01T00:00:00Z").encode()
                      + _line("b", "2026-01-01T00:00:01Z").encode())
    csv_path.write_bytes("\ufeffid,source,text,published_at\n1,news,Acme falls,1767225600\n".encode())
    dead = CollectingDeadLetter()
    records = await _read_all(FileReplaySource([jsonl, csv_path], dead, max_message_bytes=10_000,
                                               max_text_chars=1000))
    assert [r.message.id for r in records] == ["a", "b", "1"] and dead.items == []


CSV_HEADER = "id,source,text,published_at,tickers\n"


def _source(*paths: Path, dead: CollectingDeadLetter | None = None) -> FileReplaySource:
    return FileReplaySource(list(paths), dead or CollectingDeadLetter(), max_message_bytes=10_000,
                            max_text_chars=1000)


@pytest.mark.parametrize("header", ["id, source, text, published_at, tickers", "ID,Source,Text,Published_At,Tickers",
                                    " Id ,SOURCE,text , published_at,TICKERS "])
async def test_csv_header_names_are_matched_whatever_their_case_and_surrounding_spaces(
    tmp_path: Path, header: str,
) -> None:
    """Found by review: ``id, source, text`` gave "text is required" and ``ID,Text`` "id is required", once
    per row; every row was dead-lettered."""
    path = tmp_path / "h.csv"
    path.write_text(header + "\n1,news,Acme falls,1767225600,ACME\n")
    dead = CollectingDeadLetter()
    records = await _read_all(_source(path, dead=dead))
    assert [(r.message.id, r.message.tickers) for r in records] == [("1", ("ACME",))] and dead.items == []


@pytest.mark.parametrize(("header", "missing"), [
    ("headline,timestamp,symbols", "id, source, text, published_at"),
    ("id,text,published_at,tickers", "source"),
])
async def test_a_csv_header_without_a_required_column_is_one_input_error_before_any_row_is_read(
    tmp_path: Path, header: str, missing: str,
) -> None:
    """One error for the file naming it, what is missing, what was found and the fix, raised at start (before,
    each row was a ``missing_field`` dead letter, and a file without ``source`` lost every row that way)."""
    first = tmp_path / "ok.csv"
    first.write_text(CSV_HEADER + "1,news,Acme falls,1767225600,ACME\n")
    path = tmp_path / "h.csv"
    path.write_text(header + "\n" + "x,y,z,w\n" * 3)
    dead = CollectingDeadLetter()
    with pytest.raises(InputError) as info:
        await _source(first, path, dead=dead).start()
    text = str(info.value)
    assert "\n" not in text and str(path) in text and f"lacks column(s) {missing}" in text
    assert repr(header.split(",")[0]) in text and "id, source, text, published_at (required)" in text
    assert ("news|comment" in text) == ("source" in missing) and dead.items == []


async def test_unknown_csv_columns_are_one_warning_per_file_naming_them_and_the_known_ones(tmp_path: Path) -> None:
    """Found by review: a ``symbols`` column instead of ``tickers`` lost every ticker without a word."""
    path = tmp_path / "h.csv"
    path.write_text("id,source,text,published_at,Symbols,note\n"
                    + "".join(f"{i},news,Acme falls,1767225600,ACME,x\n" for i in range(3)))
    with capture_logs() as logs:
        records = await _read_all(_source(path))
    assert len(records) == 3
    [warning] = [e for e in logs if e["event"] == "csv_columns_ignored"]
    assert warning["ignored"] == ["symbols", "note"] and "tickers" in warning["known"]
    assert warning["file"] == str(path) and warning["log_level"] == "warning"


@pytest.mark.parametrize(("cell", "symbols"), [
    ("", []),
    ("AAPL", ["AAPL"]),
    ("AAPL;MSFT", ["AAPL", "MSFT"]),
    ("AAPL, MSFT", ["AAPL", "MSFT"]),
    ("AAPL|MSFT", ["AAPL", "MSFT"]),
    ("$AAPL $MSFT", ["$AAPL", "$MSFT"]),
    ("AAPL MSFT", ["AAPL", "MSFT"]),
    ("SPX Index", ["SPX"]),
    ("AAPL US EQUITY", ["AAPL"]),
    ("SPX INDEX", ["SPX"]),
    ('["AAPL","MSFT"]', ["AAPL", "MSFT"]),
    (' ["AAPL", "MSFT"] ', ["AAPL", "MSFT"]),
    ("[]", []),
    ("AAPL US Equity", ["AAPL"]),
    ("AAPL US Equity;MSFT US Equity", ["AAPL", "MSFT"]),
    ("NASDAQ:AAPL, NYSE:IBM", ["NASDAQ:AAPL", "NYSE:IBM"]),  # normalise_ticker drops the exchange, as in JSON
    ("AAPL:US;VOD:LN", ["AAPL:US", "VOD:LN"]),
    ("SPY GOVT", ["SPY", "GOVT"]),
    ("TLT CORP MUNI", ["TLT", "CORP", "MUNI"]),
    ("SPX Index", ["SPX"]),
    ("AAPL US EQUITY", ["AAPL"]),
    ("SPX INDEX", ["SPX"]),
    ("VOD LN Equity|ESZ5 Comdty", ["VOD", "ESZ5"]),
    ("AAPL MSFT IBM Equity", ["AAPL", "MSFT", "IBM", "Equity"]),  # four words: no Bloomberg ticker
    (" ; ,|", []),
])
def test_a_tickers_cell_is_split_into_its_symbols_in_each_spelling(cell: str, symbols: list[str]) -> None:
    """Found by review: a JSON list, ``AAPL|MSFT`` and ``NASDAQ:AAPL`` gave no ticker, ``AAPL US Equity`` three;
    then ``SPY GOVT`` gave SPY alone (``GOVT`` read as Bloomberg's yellow key ``Govt``)."""
    assert split_tickers_cell(cell) == symbols


@pytest.mark.parametrize(("cell", "tickers"), [
    ("AAPL:US", ("AAPL",)),
    ("AAPL:US;VOD:LN;7203:JP", ("AAPL", "VOD", "7203")),
    ("NASDAQ:AAPL", ("AAPL",)),
    ("nyse:brk-b, LSE:VOD", ("BRK.B", "VOD")),
    ("SPY GOVT", ("SPY", "GOVT")),
    ("TLT CORP MUNI", ("TLT", "CORP", "MUNI")),
    ("AAPL US Equity", ("AAPL",)),
    ("SPX Index", ("SPX",)),
    ("$AAPL,MSFT", ("AAPL", "MSFT")),
    ("ACME;AAPL:", ("ACME",)),  # not a symbol: dropped with a ticker_dropped warning
])
def test_every_spelling_of_a_csv_ticker_reaches_the_message_as_its_symbol(cell: str, tickers: tuple[str, ...]) -> None:
    """``AAPL:US`` was ``US`` (every US stock one key, ``ticker:US``) and ``TLT CORP MUNI`` only TLT (found by
    review)."""
    obj = _csv_row({"id": "1", "source": "news", "text": "x", "published_at": "1767225600", "tickers": cell})
    assert message_from_dict(obj, max_text_chars=100).tickers == tickers


@pytest.mark.parametrize("cell", ['["AAPL",', "[AAPL, MSFT]", "[1, 2]", '[["AAPL"]]', "[" * 100_000])
def test_a_tickers_cell_that_is_not_a_json_list_of_strings_is_a_bad_field(cell: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        split_tickers_cell(cell)
    assert info.value.reason == "bad_field" and "tickers cell" in info.value.detail


@given(st.text(max_size=60))
def test_any_tickers_cell_gives_a_list_of_strings_or_a_bad_field(cell: str) -> None:
    try:
        symbols = split_tickers_cell(cell)
    except InvalidMessage as exc:
        assert exc.reason == "bad_field"
    else:
        assert isinstance(symbols, list) and all(isinstance(s, str) for s in symbols)


async def test_csv_tickers_cells_of_every_spelling_reach_the_message_and_a_broken_list_is_dead_lettered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.csv"
    path.write_text(CSV_HEADER + '1,news,a,1767225600,"[""ZQA"",""ZQB""]"\n2,news,b,1767225600,ZQC US Equity\n'
                    '3,news,c,1767225600,"[""ZQD"""\n4,news,d,1767225600,NASDAQ:ZQE|ZQF\n')
    dead = CollectingDeadLetter()
    records = await _read_all(_source(path, dead=dead))
    assert [(r.message.id, r.message.tickers) for r in records] == [
        ("1", ("ZQA", "ZQB")), ("2", ("ZQC",)), ("4", ("ZQE", "ZQF"))]
    assert [(d[1], d[3]["line"]) for d in dead.items] == [("bad_field", 4)]
    assert "not a JSON list" in dead.items[0][2]


async def test_gzipped_jsonl_and_csv_files_are_read_like_the_plain_ones(tmp_path: Path) -> None:
    """Found by review: ``clean.jsonl.gz`` was read as bytes (every line ``bad_json``) and ``x.csv.gz`` as JSONL.
    The format is the suffix before ``.gz``; a gzipped file without ``.gz`` is known by its magic bytes."""
    jsonl = _line("a", "2026-01-01T00:00:00Z") + _line("b", "2026-01-01T00:00:01Z")
    csv_text = CSV_HEADER + "c,news,Acme falls,1767225602,ACME;BZ\n"
    paths = [tmp_path / "h.jsonl.gz", tmp_path / "h.CSV.GZ", tmp_path / "unnamed.jsonl"]
    for path, text in zip(paths, [jsonl, csv_text, _line("d", "2026-01-01T00:00:03Z")], strict=True):
        path.write_bytes(gzip.compress(text.encode()))
    dead = CollectingDeadLetter()
    records = await _read_all(_source(*paths, dead=dead))
    assert [(r.message.id, r.message.tickers) for r in records] == [
        ("a", ()), ("b", ()), ("c", ("ACME", "BZ")), ("d", ())]
    assert dead.items == []


async def test_a_gigantic_line_in_a_gzipped_file_is_oversized_and_the_lines_after_it_are_read(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl.gz"
    path.write_bytes(gzip.compress(_line("a", "2026-01-01T00:00:00Z").encode() + b"x" * 3_000_000 + b"\n"
                                   + _line("b", "2026-01-01T00:00:01Z").encode()))
    dead = CollectingDeadLetter()
    records = await _read_all(_source(path, dead=dead))
    assert [r.message.id for r in records] == ["a", "b"]
    assert [(d[1], d[3]["line"], len(d[0])) for d in dead.items] == [("oversized", 2, 10_002)]
    assert "3000001 bytes" in dead.items[0][2]


@pytest.mark.parametrize("name", ["h.jsonl.gz", "h.csv.gz"])
async def test_a_truncated_gzip_file_is_read_up_to_the_damage_then_one_bad_gzip_dead_letter(
    tmp_path: Path, name: str,
) -> None:
    """A file cut off in transfer: the rows before the damage count, the rest is one dead letter saying so (a
    gzip error was a traceback out of the engine), and the next file is read."""
    path, after = tmp_path / name, tmp_path / "after.jsonl"
    body = CSV_HEADER + "".join(f"{i},news,Acme falls {i},1767225600,\n" for i in range(3000))
    if name.endswith(".jsonl.gz"):
        body = "".join(_line(str(i), "2026-01-01T00:00:00Z", f"Acme falls {i}") for i in range(3000))
    path.write_bytes(gzip.compress(body.encode())[:-200])
    after.write_text(_line("after", "2026-01-01T00:00:00Z"))
    dead = CollectingDeadLetter()
    source = _source(path, after, dead=dead)
    records = await _read_all(source, max_records=10_000)
    assert 0 < len(records) - 1 < 3000 and records[-1].message.id == "after"
    assert source.cut_off == [str(path)], "the run's verdict says so (it exited 0 with most of the file unread)"
    [(raw, reason, detail, origin)] = dead.items
    assert (raw, reason, origin["file"]) == (b"", "bad_gzip", str(path))
    assert "truncated or corrupt after line" in detail and "copy or compress the file again" in detail


def test_a_csv_header_naming_a_column_twice_is_one_input_error_naming_it(tmp_path: Path) -> None:
    """``...,tickers,Text``: DictReader kept the last, empty ``Text``, and every row was empty_text (found by
    review)."""
    path = tmp_path / "h.csv"
    path.write_text("id,source,text,published_at,tickers,Text\n1,news,Acme falls,1767225600,ACME,\n")
    with pytest.raises(InputError) as info:
        list(iter_lines(path))
    text = str(info.value)
    assert "\n" not in text and str(path) in text and "names column(s) text more than once" in text
    assert "'Text'" in text and "rename or remove" in text


@pytest.mark.parametrize("header", ['id,source,"text,published_at', "id,source,text,published_at," + "h" * 200_000])
async def test_a_csv_header_the_csv_module_refuses_is_one_input_error_naming_the_file(
    tmp_path: Path, header: str,
) -> None:
    """An unclosed quote or a 200k-character field in the first line was ``Error: field larger than field limit``
    without a file name, exit 1 (found by review)."""
    path = tmp_path / "h.csv"
    path.write_text(header + "\n" + "".join(f"{i},news,Acme falls {i},1767225600\n" for i in range(20_000)))
    with pytest.raises(InputError) as info:
        await _source(path).start()
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: the CSV header (first line) cannot be read")
    assert "every quote closed" in text


async def test_a_huge_csv_line_in_a_gzipped_file_is_one_bad_csv_and_the_rows_after_it_are_read(tmp_path: Path) -> None:
    """The csv module read a whole line before its field limit applied: a gzip file of one 512 MiB line took 1.2 GB.
    The line is now read in bounded pieces, skipped and dead-lettered; the line numbers after it stay right."""
    path = tmp_path / "h.csv.gz"
    huge = b"2,news," + b"x" * 3_000_000 + b",1767225600\n"
    path.write_bytes(gzip.compress(CSV_HEADER.encode() + b"1,news,first,1767225600,\n" + huge
                                   + b'3,news,"two\nlines",1767225600,ZQA\n4,news,last,1767225600,\n'))
    dead = CollectingDeadLetter()
    records = await _read_all(_source(path, dead=dead))
    assert [(r.message.id, r.position[1]) for r in records] == [("1", 2), ("3", 5), ("4", 6)]
    [(raw, reason, detail, origin)] = dead.items
    assert (reason, origin["line"]) == ("bad_csv", 3) and len(raw) < 1000
    assert f"line 3 has {len(huge)} characters, more than the 10002" in detail


def test_a_huge_line_inside_a_quoted_csv_field_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(CSV_HEADER + '1,news,"open\n' + "y" * 50_000 + "\n" + "2,news,ok,1767225600,\n")
    records = list(iter_lines(path, 1_000))
    assert [(n, type(obj).__name__) for n, _raw, obj in records] == [(2, "InvalidMessage"), (4, "dict")]
    assert "line 3 has 50001 characters" in str(records[0][2]) and "lines 2-3" in str(records[0][2])


def test_a_jsonl_file_with_cr_only_line_endings_says_so_in_its_dead_letter(tmp_path: Path) -> None:
    """Found by review: the reason was only ``Extra data`` (or ``oversized``), nothing about the line endings."""
    path = tmp_path / "h.jsonl"
    path.write_bytes((_line("a", "2026-01-01T00:00:00Z") + _line("b", "2026-01-01T00:00:10Z")).replace("\n", "\r")
                     .encode())
    [(_n, _raw, obj)] = list(iter_lines(path, 10_000))
    assert isinstance(obj, InvalidMessage) and "CR-only line endings" in obj.detail
    [(_n, _raw, obj)] = list(iter_lines(path, 120))  # the first CR is within the bytes kept
    assert obj.reason == "oversized" and "CR-only line endings" in obj.detail
    path.write_bytes(_line("a", "2026-01-01T00:00:00Z").replace("\n", "\r\n").encode() + b'{"id": \r\n')
    assert "CR" not in str([obj for _n, _raw, obj in iter_lines(path, 10_000)])


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_rows_an_unclosed_quote_swallowed_are_read_whatever_the_line_ends_and_the_column(
    tmp_path: Path, newline: str,
) -> None:
    """Found by review: with CR-only line ends, or the quote in a cell past the header, the swallowed rows were lost
    without a trace; a blank line before the bad row made a second, misplaced dead letter."""
    rows = "2,news,two,1767225600\n3,news,three,1767225660\n"
    for bad in ('1,news,"unclosed\n', '1,news,Apple rises,1767225600,"Q3 note\n'):
        path = tmp_path / "h.csv"
        path.write_bytes(("id,source,text,published_at\n\n" + bad + rows).replace("\n", newline).encode())
        got = [(n, obj.get("id") if isinstance(obj, dict) else obj.reason) for n, _raw, obj in iter_lines(path, None)]
        assert got == [(3, "bad_csv"), (4, "2"), (5, "3")], (bad, newline)


def test_an_over_long_line_among_swallowed_rows_is_its_own_dead_letter_and_line_numbers_hold(tmp_path: Path) -> None:
    """Found by review: the over-long line vanished and the rows before it were reported one line late."""
    path = tmp_path / "h.csv"
    path.write_text('id,source,text,published_at\n1,news,"unclosed\n2,news,two,1767225600\n'
                    f"3,news,{'x' * 300},1767225600\n4,news,four,1767225600\n")
    got = [(n, obj.get("id") if isinstance(obj, dict) else obj.reason) for n, _raw, obj in iter_lines(path, 200)]
    assert got == [(2, "bad_csv"), (3, "2"), (4, "bad_csv"), (5, "4")]


def test_a_quote_inside_an_unquoted_field_does_not_open_a_field_when_the_record_is_refused(tmp_path: Path) -> None:
    """Found by review: counting every quote took the 5" of a too-long text for an open field and dropped the next
    (valid, multi-line) row."""
    path = tmp_path / "h.csv"
    path.write_text(f'id,source,text,published_at\n1,news,the 5" screen {"q" * 140_000},1767225600\n'
                    '2,news,"two\nparagraphs",1767225600\n3,news,three,1767225660\n')
    got = [(n, obj.get("id") if isinstance(obj, dict) else obj.reason) for n, _raw, obj in iter_lines(path, None)]
    assert got == [(2, "bad_csv"), (4, "2"), (5, "3")]
