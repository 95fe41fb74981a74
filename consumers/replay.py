"""File replay source: JSONL or CSV history replayed in event-time order, at max speed or paced.

Used by the embedded default (``monitor run`` with no Kafka) and by ``monitor replay``/``backtest``.
Lines that fail validation go to the dead-letter sink with ``file:line`` as origin and replay goes on.
Pacing (``speed`` > 0) sleeps so that event-time gaps shrink by the speed factor; 0 = no sleeping.
Files are expected in event-time order; out-of-order lines are handled by the pipeline's watermark.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from consumers.deadletter import DeadLetterSink
from consumers.schema import InvalidMessage, decode_json, epoch_or_text, guarded, message_from_dict
from monitor.lifecycle import Service
from monitor.time_bounds import EventTimeBounds
from monitor.types import RawMessage, SourceRecord, WireRecord

log = structlog.get_logger(__name__)

READ_CHUNK_BYTES = 1 << 20
MAX_PACE_WAIT_S = 60.0
"""A paced replay (``source.replay_speed``) never sleeps longer than this for one message: a longer gap is
skipped. One line dated a year ahead made a replay at 60x sleep six days."""


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    obj: dict[str, Any] = dict(row)
    tickers = obj.get("tickers") or ""
    obj["tickers"] = [t for t in tickers.replace(";", ",").replace(" ", ",").split(",") if t]
    for key in ("url", "lang", "source"):
        if not obj.get(key):
            obj.pop(key, None)
    obj.pop("meta", None)
    if isinstance(obj.get("published_at"), str):  # CSV has no types: epoch seconds/ms arrive as text
        obj["published_at"] = epoch_or_text(obj["published_at"])
    return obj


def _csv_records(path: Path) -> Iterator[tuple[int, bytes, Any]]:
    # Undecodable bytes become lone surrogates, which validation refuses as ``bad_encoding``; a row
    # the csv module refuses (a field past its size limit) is one ``bad_csv`` record, and reading goes on.
    # A spreadsheet's byte-order mark is skipped, as on a JSONL line (it made the first column "\ufeffid").
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.DictReader(fh)
        while True:
            line_before = reader.line_num
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader consumed the bad row: the next call reads on
                yield line_before + 1, str(exc).encode(), InvalidMessage("bad_csv", str(exc)[:200])
                continue
            raw = json.dumps(row).encode()
            swallowed = _swallowed_rows(row, len(reader.fieldnames or ()))
            obj: Any
            if swallowed:
                obj = InvalidMessage("bad_csv", f"an unclosed quote made one record of lines {line_before + 1}-"
                                                f"{reader.line_num}, {swallowed} of them rows of their own -- fix "
                                                "the quoting (the rows are in this dead letter)")
            else:
                try:
                    obj = _csv_row(row)
                except (ValueError, TypeError, AttributeError) as exc:  # a row shape nobody foresaw
                    obj = InvalidMessage("parse_error", f"unexpected error: {exc!r}"[:500])
            yield reader.line_num, raw, obj


def _swallowed_rows(row: dict[str, Any], fields: int) -> int:
    """Lines inside a multi-line field that parse as a whole row of the file: an unclosed quote read them
    into one field (before, silently: one garbage message counted, the real rows lost). A field with
    paragraphs of prose has no such lines."""
    if fields < 2:
        return 0
    inner = [line for value in row.values() if isinstance(value, str) and "\n" in value
             for line in value.splitlines()[1:]]
    return sum(1 for line in inner if len(next(csv.reader([line]), [])) >= fields)


def _bounded_lines(fh: BinaryIO, max_line_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(the first ``max_line_bytes + 1`` bytes of each line, its full size): a line without newlines
    of gigabytes is skipped in chunks, never held in memory."""
    while line := fh.readline(max_line_bytes + 1):
        size = len(line)
        if size > max_line_bytes and not line.endswith(b"\n"):
            while (rest := fh.readline(READ_CHUNK_BYTES)) and not rest.endswith(b"\n"):
                size += len(rest)
            size += len(rest)
        yield line, size


def iter_lines(path: Path, max_line_bytes: int | None = None) -> Iterator[tuple[int, bytes, Any]]:
    """(line number, raw bytes, decoded object or an ``InvalidMessage``) for each record of a file.
    Lines longer than ``max_line_bytes`` are ``oversized`` (raw cut to that bound) and never decoded."""
    if path.suffix.lower() == ".csv":
        yield from _csv_records(path)
        return
    limit = max_line_bytes if max_line_bytes is not None else sys.maxsize - 1
    with path.open("rb") as fh:
        for n, (line, size) in enumerate(_bounded_lines(fh, limit), start=1):
            if size > limit:
                yield n, line[:limit], InvalidMessage("oversized", f"line has {size} bytes, limit is {limit}")
                continue
            if not line.strip():
                continue
            try:
                yield n, line, decode_json(line)
            except InvalidMessage as exc:
                yield n, line, exc


def record_bytes(line: bytes) -> int:
    """Size of the record a line holds, without its line ending (``\\n`` or ``\\r\\n``): a line of exactly
    ``source.max_message_bytes`` bytes passes, as the same record does from Kafka."""
    if line.endswith(b"\r\n"):
        return len(line) - 2
    return len(line) - 1 if line.endswith(b"\n") else len(line)


class FileReplaySource(Service):
    """Implements the Source protocol over files; ``commit`` records progress for ``position``."""

    def __init__(
        self,
        paths: Sequence[Path],
        dead_letter: DeadLetterSink,
        *,
        max_message_bytes: int,
        max_text_chars: int,
        speed: float = 0.0,
        bounds: EventTimeBounds | None = None,
    ) -> None:
        self.paths = list(paths)
        self.dead_letter = dead_letter
        self.max_message_bytes = max_message_bytes
        self.max_text_chars = max_text_chars
        self.speed = speed
        self.bounds = bounds
        """Event-time plausibility (``source.max_future_s``/``min_event_time``); None = not checked."""
        self.read_count = 0
        self.dead_count = 0
        self.committed: tuple[str, int] | None = None
        self._pace_origin: tuple[float, float] | None = None

    async def _start(self) -> None:
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"replay file(s) not found: {', '.join(missing)} -- fix source.replay_paths or --input"
            )

    def _validate(self, raw: bytes, obj: Any) -> RawMessage:
        if isinstance(obj, InvalidMessage):
            raise obj
        size = record_bytes(raw)
        if size > self.max_message_bytes:
            raise InvalidMessage("oversized", f"record has {size} bytes, limit is {self.max_message_bytes}")
        return guarded(lambda: message_from_dict(obj, max_text_chars=self.max_text_chars, bounds=self.bounds))

    async def _pace(self, msg: RawMessage) -> None:
        if self.speed <= 0:
            return
        event_s = msg.event_time.timestamp()
        if self._pace_origin is None:
            self._pace_origin = (time.monotonic(), event_s)
            return
        wall0, event0 = self._pace_origin
        delay = (event_s - event0) / self.speed - (time.monotonic() - wall0)
        if delay > MAX_PACE_WAIT_S:  # a night without news, or one line dated far ahead: skip the gap, not
            log.info("replay_gap_skipped", would_wait_s=round(delay), event_gap_s=round(event_s - event0))
            self._pace_origin = (time.monotonic(), event_s)  # sleep it (results depend on event time only)
        elif delay > 0:
            await asyncio.sleep(delay)

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        batch: list[SourceRecord] = []
        for path in self.paths:
            for line_no, raw, obj in iter_lines(path, self.max_message_bytes + 2):  # + CRLF
                wire = WireRecord({"file": str(path), "line": line_no})
                try:
                    msg = self._validate(raw, obj)
                except InvalidMessage as exc:
                    self.dead_count += 1
                    await self.dead_letter.send(raw, exc.reason, exc.detail, wire.origin)
                    continue
                self.read_count += 1
                if self.speed > 0 and batch:
                    # paced: hand over what we have before sleeping, so latency stays low
                    yield batch
                    batch = []
                await self._pace(msg)
                batch.append(SourceRecord(msg, (str(path), line_no), wire=wire))
                if len(batch) >= max_records:
                    yield batch
                    batch = []
                    await asyncio.sleep(0)
        if batch:
            yield batch

    async def commit(self, records: Sequence[SourceRecord]) -> None:
        if records:
            self.committed = records[-1].position
