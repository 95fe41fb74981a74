"""FileDeadLetter (JSONL) and the sink factory; the Kafka DLQ is covered in tests/integration/consumers."""

from __future__ import annotations

import base64
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs

from consumers.deadletter import (
    LOG_EVERY_S,
    MAX_DETAIL_CHARS,
    SMALL_RAW_BYTES,
    DeadLetterLog,
    DeadLetterWriteError,
    FileDeadLetter,
    Headers,
    KafkaDeadLetter,
    build_dead_letter,
    dead_letter_record,
    file_dead_letter,
)
from monitor.config import Settings, SourceSettings
from monitor.metrics import prometheus_client_value
from monitor.rotating_file import MIB, rotated_path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_each_dead_letter_is_one_json_line_with_reason_detail_origin_payload_and_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "dead.jsonl"  # parent directory does not exist yet
    async with FileDeadLetter(path) as sink:
        await sink.send(b'{"id": 1', "bad_json", "not valid UTF-8 JSON", {"file": "in.jsonl", "line": 7})
        await sink.send(b'{"id": "x"}', "missing_field", "text is required",
                        {"topic": "news", "partition": 2, "offset": 41})
    first, second = lines(path)
    assert first["reason"] == "bad_json"
    assert first["detail"] == "not valid UTF-8 JSON"
    assert first["origin"] == {"file": "in.jsonl", "line": 7}
    assert first["raw"] == '{"id": 1'
    assert "raw_b64" not in first
    assert first["raw_truncated"] is False
    at = datetime.fromisoformat(first["dead_lettered_at"])
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)
    assert second["origin"] == {"topic": "news", "partition": 2, "offset": 41}


async def test_non_utf8_payload_keeps_exact_bytes_in_base64_and_readable_text(tmp_path: Path) -> None:
    raw = b"caf\xe9 \xff{"
    async with FileDeadLetter(tmp_path / "dead.jsonl") as sink:
        await sink.send(raw, "bad_json", "not UTF-8", {"file": "x", "line": 1})
    (record,) = lines(tmp_path / "dead.jsonl")
    assert base64.b64decode(record["raw_b64"]) == raw
    assert record["raw"] == "caf\ufffd \ufffd{"


async def test_oversized_payload_is_cut_to_the_bound_and_flagged(tmp_path: Path) -> None:
    raw = b"x" * 5_000
    async with FileDeadLetter(tmp_path / "dead.jsonl", max_raw_bytes=1_000) as sink:
        await sink.send(raw, "oversized", "d" * 10_000, {"topic": "news"})
    (record,) = lines(tmp_path / "dead.jsonl")
    assert record["raw"] == "x" * 1_000
    assert record["raw_truncated"] is True
    assert record["raw_size"] == 5_000
    assert len(record["detail"]) == 1_000
    assert len((tmp_path / "dead.jsonl").read_bytes()) < 2_500


@given(raw=st.binary(max_size=64), bound=st.integers(min_value=1, max_value=80))
def test_any_payload_gives_a_bounded_json_record_that_keeps_undecodable_bytes(raw: bytes, bound: int) -> None:
    record = dead_letter_record(raw, "bad_json", "detail", {"offset": 3}, max_raw_bytes=bound)
    json.dumps(record)
    assert len(record["raw"].encode("utf-8")) <= 3 * bound
    if "raw_b64" in record:
        assert base64.b64decode(record["raw_b64"]) == raw[:bound]
    else:
        assert raw.decode("utf-8").startswith(record["raw"])


async def test_restarted_sink_appends_instead_of_truncating(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    for n in range(2):
        async with FileDeadLetter(path) as sink:
            await sink.send(b"{}", "missing_field", "id is required", {"file": "f", "line": n})
    assert [r["origin"]["line"] for r in lines(path)] == [0, 1]


async def test_full_file_rotates_and_keeps_only_the_configured_number_of_old_files(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    async with FileDeadLetter(path, max_bytes=1, keep=2) as sink:  # every line fills a file
        for n in range(4):
            await sink.send(b"{}", "missing_field", "id is required", {"file": "f", "line": n})
    assert [lines(p)[0]["origin"]["line"] for p in (path, rotated_path(path, 1), rotated_path(path, 2))] == [3, 2, 1]
    assert not rotated_path(path, 3).exists()
    assert sink.count == 4


async def test_non_json_origin_values_are_written_as_strings(tmp_path: Path) -> None:
    async with FileDeadLetter(tmp_path / "dead.jsonl") as sink:
        await sink.send(b"{}", "bad_field", "x", {"file": tmp_path / "in.jsonl", "line": 3})
    (record,) = lines(tmp_path / "dead.jsonl")
    assert record["origin"] == {"file": str(tmp_path / "in.jsonl"), "line": 3}


async def test_send_before_start_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="before start"):
        await FileDeadLetter(tmp_path / "dead.jsonl").send(b"{}", "bad_json", "x", {})


def test_factory_uses_the_kafka_topic_for_a_kafka_source_and_the_file_otherwise(tmp_path: Path) -> None:
    kafka_sink = build_dead_letter(Settings(source=SourceSettings(kind="kafka")))
    assert isinstance(kafka_sink, KafkaDeadLetter)
    assert kafka_sink.topic == "finsent.dead-letter"
    path = tmp_path / "dead.jsonl"
    file_sink = build_dead_letter(Settings(source=SourceSettings(kind="replay", dead_letter_path=path)))
    assert isinstance(file_sink, FileDeadLetter)
    assert file_sink.path == path
    assert (file_sink.file.max_bytes, file_sink.file.keep) == (100 * MIB, 5)


def test_factory_takes_the_file_size_limit_and_kept_files_from_settings(tmp_path: Path) -> None:
    source = SourceSettings(dead_letter_path=tmp_path / "dead.jsonl", dead_letter_max_mb=7, dead_letter_keep_files=2)
    sink = build_dead_letter(Settings(source=source))
    assert isinstance(sink, FileDeadLetter)
    assert (sink.file.max_bytes, sink.file.keep) == (7 * MIB, 2)


@pytest.mark.parametrize("key", ["dead_letter_max_mb", "dead_letter_keep_files"])
def test_dead_letter_rotation_settings_must_be_positive(key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        SourceSettings.model_validate({key: 0})


hostile_text = st.text(st.characters(), max_size=40) | st.integers(0xD800, 0xDFFF).map(chr) | st.just("\x00" * 5_000)


@given(raw=st.binary(max_size=64) | st.just(b"\xed\xa0\x80\x00" * 5_000), reason=hostile_text, detail=hostile_text,
       origin_value=hostile_text | st.just(10**5_000) | st.floats())
async def test_file_sink_writes_any_bytes_reason_detail_and_origin_as_one_valid_utf8_json_line(
    raw: bytes, reason: str, detail: str, origin_value: object
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dead.jsonl"
        async with FileDeadLetter(path, max_raw_bytes=1_000) as sink:
            await sink.send(raw, reason, detail, {"file": origin_value, reason: origin_value})
        # strict UTF-8 (no surrogate got through), one record per "\n" (U+0085/U+2028 may appear inside)
        (line,) = path.read_bytes().decode("utf-8").rstrip("\n").split("\n")
        record = json.loads(line)
        assert len(record["detail"]) <= 2 * MAX_DETAIL_CHARS and record["raw_size"] == len(raw)


async def test_surrogates_in_detail_and_origin_are_kept_readable_as_escapes(tmp_path: Path) -> None:
    async with FileDeadLetter(tmp_path / "dead.jsonl") as sink:
        await sink.send(b"{}", "bad_encoding", "text \ud800 here", {"file": "in\udcff.jsonl", "line": 1})
    (record,) = lines(tmp_path / "dead.jsonl")
    assert record["detail"] == "text \\ud800 here" and record["origin"]["file"] == "in\\udcff.jsonl"


class _Producer:
    """Stands in for AIOKafkaProducer: records sends, refuses values over ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes, dict[str, bytes]]] = []
        self.keys: list[bytes | None] = []
        self.header_lists: list[list[tuple[str, bytes | None]]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None,
                            headers: list[tuple[str, bytes]] | None = None) -> None:
        if len(value) > self.limit:
            raise MessageSizeTooLargeError(f"{len(value)} bytes")
        self.sent.append((value, dict(headers or [])))
        self.keys.append(key)
        self.header_lists.append(list(headers or []))


async def test_kafka_dead_letter_encodes_surrogates_in_headers_and_cuts_what_the_broker_refuses() -> None:
    sink = KafkaDeadLetter(Settings().kafka)
    producer = _Producer(limit=100_000)
    sink._producer = producer  # type: ignore[assignment]
    await sink.send(b"x" * 500_000, "bad_\ud800", "detail \ud800\x00", {"key": "k\udcff", "offset": 10**5_000})
    ((value, headers),) = producer.sent
    assert len(value) == SMALL_RAW_BYTES and headers["dlq.truncated_from"] == b"500000"
    assert headers["dlq.reason"] == b"bad_\\ud800" and headers["dlq.detail"] == b"detail \\ud800\x00"
    assert json.loads(headers["dlq.origin"])["offset"].startswith("<integer of")


async def test_a_dead_letter_file_that_cannot_be_written_stops_with_the_path_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    async with FileDeadLetter(path) as sink:
        path.unlink()
        path.mkdir()  # the path turned unwritable under the running sink (as a full disk or a lost mount)
        with pytest.raises(DeadLetterWriteError) as caught:
            await sink.send(b"{}", "missing_field", "id is required", {"file": "f", "line": 1})
    message = str(caught.value)
    assert message.startswith(f"source.dead_letter_path {path}: cannot write a dead letter (Is a directory)")
    assert "MONITOR_SOURCE__DEAD_LETTER_PATH" in message and not isinstance(caught.value, OSError)
    assert sink.count == 0


async def test_kafka_dead_letter_keeps_the_original_key_and_headers_and_adds_its_own_after_them() -> None:
    """Found by review: key and headers were dropped, so a record re-fed from the dead-letter topic landed on
    another partition. A ``dlq.*`` header of the original (dead-lettered before, re-fed, rejected again) is
    replaced by this dead letter's, so a reader never sees two reasons."""
    sink = KafkaDeadLetter(Settings().kafka)
    producer = _Producer(limit=100_000)
    sink._producer = producer  # type: ignore[assignment]
    original = [("trace-id", b"abc"), ("empty", None), ("dlq.reason", b"bad_json")]
    await sink.send(b"{}", "missing_field", "text is required", {"offset": 3}, key=b"ACME", headers=original)
    await sink.send(b"x" * 200_000, "oversized", "too big", {"offset": 4}, key=b"ACME", headers=original[:1])
    assert producer.keys == [b"ACME", b"ACME"]  # the cut resend keeps it too
    first, second = producer.header_lists
    assert first[:2] == [("trace-id", b"abc"), ("empty", None)]
    assert [name for name, _ in first[2:]] == ["dlq.reason", "dlq.detail", "dlq.origin", "dlq.at"]
    assert dict(first)["dlq.reason"] == b"missing_field"
    assert second[0] == ("trace-id", b"abc") and dict(second)["dlq.truncated_from"] == b"200000"


async def test_file_dead_letter_keeps_the_original_kafka_headers_as_text(tmp_path: Path) -> None:
    async with FileDeadLetter(tmp_path / "dead.jsonl") as sink:
        await sink.send(b"{}", "missing_field", "text is required", {"topic": "news", "offset": 3, "key": "ACME"},
                        key=b"ACME", headers=[("trace-id", b"abc"), ("bin", b"\xff"), ("empty", None)])
        await sink.send(b"{}", "missing_field", "text is required", {"file": "f", "line": 1})
    with_headers, without = lines(tmp_path / "dead.jsonl")
    assert with_headers["headers"] == [["trace-id", "abc"], ["bin", "\\xff"], ["empty", None]]
    assert "headers" not in without


async def test_a_message_within_max_message_bytes_is_kept_whole_in_the_dead_letter_file(tmp_path: Path) -> None:
    """Found by review: the file kept 16 KiB, so a 23,484-byte message rejected only for its time was cut,
    though the replay summary says each rejected row is kept."""
    message = b'{"id": "n-1", "text": "' + b"y" * 23_430 + b'", "published_at": "yesterday"}'
    assert len(message) == 23_484
    at_limit = b'{"text": "' + b"z" * (64_000 - 12) + b'"}\r\n'  # a replayed line of the limit, with its CRLF
    dead_letter = build_dead_letter(Settings(source=SourceSettings(dead_letter_path=tmp_path / "dead.jsonl")))
    async with dead_letter as sink:
        await sink.send(message, "bad_time", "published_at: not a time", {"file": "in.jsonl", "line": 1})
        await sink.send(at_limit, "late", "behind the watermark", {"file": "in.jsonl", "line": 2})
    for record, raw in zip(lines(tmp_path / "dead.jsonl"), (message, at_limit), strict=True):
        assert record["raw_truncated"] is False and record["raw"].encode() == raw


async def test_a_raised_max_message_bytes_raises_what_the_dead_letter_file_keeps_and_only_oversized_is_cut(
    tmp_path: Path,
) -> None:
    source = SourceSettings(dead_letter_path=tmp_path / "dead.jsonl", max_message_bytes=200_000)
    async with file_dead_letter(source) as sink:
        await sink.send(b"a" * 200_000, "late", "behind the watermark", {"offset": 1})
        await sink.send(b"b" * 300_000, "oversized", "payload has 300000 bytes, limit is 200000", {"offset": 2})
    kept, oversized = lines(tmp_path / "dead.jsonl")
    assert kept["raw_truncated"] is False and kept["raw"] == "a" * 200_000
    assert oversized["raw_truncated"] is True and oversized["raw_size"] == 300_000
    assert 200_000 <= len(oversized["raw"]) < 300_000


def _key_and_headers(record: dict[str, Any]) -> tuple[bytes | None, list[tuple[str, bytes | None]]]:
    """What a re-feed reads back from a file dead letter (the rule the module docstring gives)."""
    key = base64.b64decode(record["key_b64"]) if "key_b64" in record else None
    if "headers_b64" in record:
        return key, [(n, None if v is None else base64.b64decode(v)) for n, v in record["headers_b64"]]
    return key, [(n, None if v is None else v.encode("utf-8")) for n, v in record.get("headers", [])]


async def test_file_dead_letter_keeps_the_exact_bytes_of_a_binary_key_and_non_utf8_header_values(
    tmp_path: Path,
) -> None:
    """Found by review: the key was kept only as text in ``origin`` (bytes replaced, cut to 200 characters) and
    header values as escaped text, where ``b"\\xff"`` and ``b"\\\\xff"`` both read ``\\xff``."""
    key = b"\x00\xffACME\xfe" * 30
    headers = [("trace-id", b"abc"), ("bin", b"\xff"), ("text", b"\\xff"), ("empty", None), ("long", b"x" * 2_000)]
    async with FileDeadLetter(tmp_path / "dead.jsonl") as sink:
        await sink.send(b"{}", "missing_field", "text is required", {"topic": "news"}, key=key, headers=headers)
        await sink.send(b"{}", "missing_field", "text is required", {"topic": "news"}, key=b"",
                        headers=[("trace-id", b"abc")])
        await sink.send(b"{}", "missing_field", "text is required", {"file": "f", "line": 1})
    binary, plain, from_file = lines(tmp_path / "dead.jsonl")
    assert _key_and_headers(binary) == (key, headers)
    assert binary["headers"][1:3] == [["bin", "\\xff"], ["text", "\\xff"]]  # the readable form, for humans
    assert _key_and_headers(plain) == (b"", [("trace-id", b"abc")]) and "headers_b64" not in plain
    assert "key_b64" not in from_file and "headers" not in from_file


@given(key=st.none() | st.binary(max_size=40),
       headers=st.lists(st.tuples(st.text(max_size=80), st.none() | st.binary(max_size=1_200)), max_size=4))
def test_any_kafka_key_and_headers_are_recovered_exactly_from_a_file_dead_letter(
    key: bytes | None, headers: Headers
) -> None:
    record = dead_letter_record(b"{}", "bad_json", "x", {"offset": 1}, max_raw_bytes=100, key=key, headers=headers)
    assert _key_and_headers(json.loads(json.dumps(record))) == (key, list(headers))


async def test_the_dead_letter_file_and_the_directory_it_creates_are_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dead.jsonl"
    async with FileDeadLetter(path) as sink:
        await sink.send(b"{}", "missing_field", "id is required", {"file": "f", "line": 1})
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _dead_lettered(logs: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["reason"], e["left_out_since"]) for e in logs if e["event"] == "message_dead_lettered"]


async def test_dead_letters_are_logged_once_per_reason_a_minute_with_the_count_left_out_and_all_counted(
    tmp_path: Path,
) -> None:
    """Found by review: a WARNING per dead letter, at 1,000 bad messages a second, was ~20 GB of logs a day."""
    clock = _Clock()
    async with FileDeadLetter(tmp_path / "dead.jsonl") as sink:
        sink.throttled_log = DeadLetterLog(clock=clock)
        before = prometheus_client_value("finsent_dead_letters_total", reason="bad_json") or 0.0
        with capture_logs() as logs:
            for _ in range(1_000):
                await sink.send(b"{", "bad_json", "not JSON", {"file": "f", "line": 1})
            await sink.send(b"{}", "missing_field", "id is required", {"file": "f", "line": 2})
            clock.now += LOG_EVERY_S
            await sink.send(b"{", "bad_json", "not JSON", {"file": "f", "line": 3})
    # the first of each reason at once, the next a minute later with the 999 it left out
    assert _dead_lettered(logs) == [("bad_json", 0), ("missing_field", 0), ("bad_json", 999)]
    assert prometheus_client_value("finsent_dead_letters_total", reason="bad_json") == before + 1_001
    assert sink.count == 1_002 and len(lines(tmp_path / "dead.jsonl")) == 1_002


async def test_the_kafka_dead_letter_log_is_throttled_per_reason_too() -> None:
    clock = _Clock()
    sink = KafkaDeadLetter(Settings().kafka)
    sink._producer = _Producer(limit=100_000)  # type: ignore[assignment]
    sink.throttled_log = DeadLetterLog(clock=clock)
    with capture_logs() as logs:
        for offset in range(100):
            await sink.send(b"{", "bad_json", "not JSON", {"offset": offset})
    assert _dead_lettered(logs) == [("bad_json", 0)]
    assert sink.count == 100
