"""File replay source: JSONL or CSV history (gzipped or not) replayed in event-time order, at max speed or paced.

Used by the embedded default (``monitor run`` with no Kafka) and by ``monitor replay``/``backtest``.
Lines that fail validation go to the dead-letter sink with ``file:line`` as origin and replay goes on.
Pacing (``speed`` > 0) sleeps so that event-time gaps shrink by the speed factor; 0 = no sleeping.
Files are expected in event-time order; out-of-order lines are handled by the pipeline's watermark.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import re
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from io import BufferedIOBase, BufferedReader, TextIOWrapper
from pathlib import Path
from typing import Any, AnyStr

import structlog

from consumers.deadletter import DeadLetterSink
from consumers.schema import InvalidMessage, decode_json, epoch_or_text, guarded, message_from_dict
from monitor.config import InputError
from monitor.lifecycle import Service
from monitor.time_bounds import EventTimeBounds
from monitor.types import RawMessage, SourceKind, SourceRecord, WireRecord

log = structlog.get_logger(__name__)

READ_CHUNK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
"""What reading damaged gzip data raises: a file cut off in transfer, or bytes that only start like gzip."""
MAX_PACE_WAIT_S = 60.0
"""A paced replay (``source.replay_speed``) never sleeps longer than this for one message: a longer gap is
skipped. One line dated a year ahead made a replay at 60x sleep six days."""


CSV_REQUIRED = ("id", "source", "text", "published_at")
"""Columns without which every row of a CSV file is dead-lettered (a file row has no topic to imply ``source``)."""
CSV_OPTIONAL = ("tickers", "lang", "url")
_CSV_KNOWN = CSV_REQUIRED + CSV_OPTIONAL
_TICKER_SEPARATORS = re.compile(r"[,;|]")


def csv_columns(path: Path, header: Sequence[str]) -> list[str]:
    """The header's names stripped and lower-cased (``ID``, `` text`` are ``id``, ``text``); a missing required
    column is one ``InputError`` for the file, not a ``missing_field`` dead letter for each of its rows."""
    columns = [name.strip().lower() for name in header]
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:  # DictReader keeps the last one: an empty ``Text`` after ``text`` made every row empty_text
        raise InputError(f"{path}: the CSV header names column(s) {', '.join(repeated)} more than once (names are "
                         f"read without case and surrounding spaces); found {', '.join(map(repr, header))} -- "
                         "rename or remove the extra column(s) in the first line")
    missing = [name for name in CSV_REQUIRED if name not in columns]
    if missing:
        why = " (news|comment: a file row has no topic to imply it)" if "source" in missing else ""
        raise InputError(f"{path}: the CSV header lacks column(s) {', '.join(missing)}{why}; found "
                         f"{', '.join(map(repr, header)) or 'none'} -- name the columns in the first line: "
                         f"{', '.join(CSV_REQUIRED)} (required), {', '.join(CSV_OPTIONAL)} (optional)")
    return columns


def check_csv_header(path: Path, max_line_bytes: int | None = None, *, warn: bool = True) -> None:
    """Refuse a CSV file whose header lacks a required column, names one twice or cannot be read, and warn once
    about columns that are ignored (a ``symbols`` column lost every ticker without a word; ``warn=False`` for a
    check before the one that warns). An empty file has no header and no rows. ``max_line_bytes`` as for
    ``iter_lines``."""
    try:
        with _open_text(path) as fh:
            header = _header(path, csv.DictReader(_BoundedLines(fh, csv_line_limit(max_line_bytes))))
    except GZIP_ERRORS:  # reading the file says so, as a dead letter
        return
    if header is None:
        return
    unknown = [name for name in header if name not in _CSV_KNOWN]
    if unknown and warn:
        log.warning("csv_columns_ignored", file=str(path), ignored=unknown, known=list(_CSV_KNOWN))


_BLOOMBERG_KEYS = frozenset({"EQUITY", "INDEX", "COMDTY", "CURNCY", "M-MKT"})
"""Yellow keys ending a Bloomberg ticker (``AAPL US Equity``, ``SPX INDEX``) in any case."""
_BLOOMBERG_TITLE_KEYS = frozenset({"Corp", "Govt", "Mtge", "Muni", "Pfd"})
"""Yellow keys that are also ETF tickers in capitals (``SPY GOVT`` kept only SPY): only in Bloomberg's Title case."""


def _bloomberg(words: Sequence[str]) -> bool:
    return len(words) in (2, 3) and (words[-1].upper() in _BLOOMBERG_KEYS or words[-1] in _BLOOMBERG_TITLE_KEYS)


def split_tickers_cell(cell: str) -> list[str]:
    """The tickers of a CSV ``tickers`` cell, written as a JSON list (``["AAPL","MSFT"]``), or separated by
    ``,`` ``;`` ``|`` or spaces, except a Bloomberg ticker (a part of 2 or 3 words ending in a yellow key:
    ``AAPL US Equity``, ``SPX Index``), which is its first word. Exchanges and countries (``NASDAQ:AAPL``,
    ``AAPL:US``) are left to ``normalise_ticker``, as in a JSON payload. ``InvalidMessage("bad_field")`` for a
    list that is not JSON."""
    if cell.lstrip().startswith("["):
        try:
            parsed = json.loads(cell)
        except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested past the limit
            raise InvalidMessage("bad_field", f"tickers cell {cell[:64]!r} starts with '[' but is not a JSON "
                                              f"list ({exc}) -- write [\"AAPL\",\"MSFT\"] or AAPL;MSFT") from exc
        if not isinstance(parsed, list) or not all(isinstance(t, str) for t in parsed):
            raise InvalidMessage("bad_field", f"tickers cell {cell[:64]!r} is not a JSON list of strings")
        return parsed
    symbols: list[str] = []
    for part in _TICKER_SEPARATORS.split(cell):
        words = part.split()
        if not words:
            continue
        symbols.extend(words[:1] if _bloomberg(words) else words)
    return symbols


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    obj: dict[str, Any] = {key: value for key, value in row.items() if key in _CSV_KNOWN}
    obj["tickers"] = split_tickers_cell(obj.get("tickers") or "")
    for key in ("url", "lang", "source"):
        if not obj.get(key):
            obj.pop(key, None)
    if isinstance(obj.get("published_at"), str):  # CSV has no types: epoch seconds/ms arrive as text
        obj["published_at"] = epoch_or_text(obj["published_at"])
    return obj


def csv_line_limit(max_line_bytes: int | None) -> int:
    """Most characters of one physical CSV line: ``max_line_bytes`` (a line of more characters has more bytes
    in UTF-8, so its record is oversized anyway), else 8 times the csv module's field limit (1 MiB by default)."""
    return max_line_bytes if max_line_bytes is not None else 8 * csv.field_size_limit()


_LINE_ENDS = ("\n", "\r")  # what ends a line read with newline="" (a CR-only file too)


class _QuoteState:
    """Whether CSV text fed so far ends inside a quoted field, by the csv module's rule: a quote opens a field only
    at its start, ``""`` inside one is a quote, and the next quote closes it (a ``"`` inside an unquoted field, as in
    ``5" screen``, is text: counting every quote took it for an open field and dropped the next row; found by review).
    Fed line by line, or chunk by chunk for an over-long line; ``find`` does the scanning, not a Python loop."""

    __slots__ = ("field_start", "in_quotes", "quote_pending")

    def __init__(self) -> None:
        self.in_quotes = False
        self.field_start = True
        self.quote_pending = False
        """A quote ended the last chunk inside a quoted field: the next character says escape (``"``) or close."""

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        if self.quote_pending and n:
            self.quote_pending = False
            if text[0] == '"':
                i = 1
            else:
                self.in_quotes = False
        while i < n:
            if self.in_quotes:
                j = text.find('"', i)
                if j < 0:
                    return
                if j + 1 == n:
                    self.quote_pending = True
                    return
                if text[j + 1] == '"':
                    i = j + 2
                    continue
                self.in_quotes, self.field_start, i = False, False, j + 1
            elif self.field_start and text[i] == '"':
                self.in_quotes, i = True, i + 1
            else:
                ends = [k for k in (text.find(",", i), text.find("\n", i), text.find("\r", i)) if k >= 0]
                if not ends:
                    self.field_start = False
                    return
                self.field_start, i = True, min(ends) + 1

    @property
    def open(self) -> bool:
        return self.in_quotes and not self.quote_pending


@dataclass(frozen=True, slots=True)
class _Skipped:
    """An over-long line inside a record, read and dropped: a pushed-back record raises its error again."""

    error: str


class _BoundedLines:
    """The lines of a CSV file for ``csv.reader``, each read with at most ``limit`` characters in memory: the
    csv module reads a whole line before its field limit applies (a gzip file of one 512 MiB line took all of it).
    A longer line is read on and discarded in chunks and raises ``csv.Error`` naming it, which the reader lets
    through; its next call reads on at the next line. ``line_num`` counts physical lines, the skipped ones too.

    It also keeps the lines of the record being read (since ``mark``; bounded: the csv module refuses a field past
    its limit, and each line is bounded; an over-long one as a ``_Skipped`` marker), so a record the csv module
    refused can be told apart (an unclosed quote, or a text too long) and reading resumes where the record really
    ends; ``push_back`` hands lines to the reader again."""

    def __init__(self, fh: TextIOWrapper, limit: int) -> None:
        self._fh = fh
        self._limit = limit
        self.line_num = 0
        self.record: list[str | _Skipped] = []
        self._state: _QuoteState | None = None
        """The record's quote state, built only once something asks (an error path), then kept up to date."""
        self._again: list[str | _Skipped] = []

    def mark(self) -> None:
        self.record, self._state = [], None

    def push_back(self, lines: Sequence[str | _Skipped]) -> None:
        self._again = [*lines, *self._again]
        self.line_num -= len(lines)

    def quote_state(self) -> _QuoteState:
        if self._state is None:
            self._state = _QuoteState()
            for line in self.record:
                if isinstance(line, str):
                    self._state.feed(line)
        return self._state

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        if self._again:
            line = self._again.pop(0)
        else:
            line = self._fh.readline(self._limit + 1)
            if not line:
                raise StopIteration
            if len(line) > self._limit and not line.endswith(_LINE_ENDS):
                line = self._skip_rest(line)
        self.line_num += 1
        if isinstance(line, _Skipped):
            self.record.append(line)
            raise csv.Error(line.error)
        if self._state is not None:
            self._state.feed(line)
        self.record.append(line)
        return line

    def _skip_rest(self, head: str) -> _Skipped:
        """Read the rest of an over-long line in chunks, kept only in the quote state."""
        state = self.quote_state()
        state.feed(head)
        size = len(head)
        while rest := self._fh.readline(READ_CHUNK_BYTES):
            size += len(rest)
            state.feed(rest)
            if rest.endswith(_LINE_ENDS):
                break
        return _Skipped(f"line {self.line_num + 1} has {size} characters, more than the {self._limit} a CSV line "
                        "may have")

    def to_record_end(self, is_row: Callable[[str], bool]) -> None:
        """Read on (nothing kept) until the quoted field the record stopped in is closed, the file ends, or a line
        is a row of its own (``is_row``: the quote never closes; that line is handed to the reader again)."""
        while self.quote_state().open:
            try:
                line = next(self)
            except csv.Error:
                continue
            except StopIteration:
                return
            self.record.clear()
            if is_row(line):
                self.push_back([line])
                return


def _header(path: Path, reader: csv.DictReader[str]) -> list[str] | None:
    """The file's columns (``csv_columns``), None for an empty file; a header the csv module refuses (an unclosed
    quote, a field past its limit) is an ``InputError`` naming the file (it was a bare ``Error: field larger
    than field limit``, exit 1)."""
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InputError(f"{path}: the CSV header (first line) cannot be read: {exc} -- the first line must name "
                         f"the columns ({', '.join(CSV_REQUIRED)}), with every quote closed") from exc
    return None if header is None else csv_columns(path, header)


def _csv_records(path: Path, max_line_bytes: int | None) -> Iterator[tuple[int, bytes, Any]]:
    # Undecodable bytes become lone surrogates, which validation refuses as ``bad_encoding``; a row
    # the csv module refuses (a field past its size limit, a line past ``csv_line_limit``) is one ``bad_csv``
    # record, and reading goes on.
    # A spreadsheet's byte-order mark is skipped, as on a JSONL line (it made the first column "\ufeffid").
    with _open_text(path) as fh:
        lines = _BoundedLines(fh, csv_line_limit(max_line_bytes))
        reader = csv.DictReader(lines)
        reader.fieldnames = _header(path, reader)
        columns = list(reader.fieldnames or ())
        while True:
            line_before = lines.line_num
            lines.mark()
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _refused_record(lines, line_before, columns, exc)
                continue
            raw = json.dumps(row).encode()
            if _swallowed_rows(row, columns):
                yield _unclosed_quote(lines, line_before)
                continue
            obj: Any
            try:
                obj = _csv_row(row)
            except InvalidMessage as exc:
                obj = exc
            except (ValueError, TypeError, AttributeError) as exc:  # a row shape nobody foresaw
                obj = InvalidMessage("parse_error", f"unexpected error: {exc!r}"[:500])
            yield lines.line_num, raw, obj


def _leading_blanks(record: Sequence[str | _Skipped]) -> int:
    """Blank lines the csv reader skipped before the record's first row (they are in ``record`` too)."""
    return next((i for i, line in enumerate(record) if not isinstance(line, str) or line.strip()), len(record))


def _unclosed_quote(lines: _BoundedLines, line_before: int) -> tuple[int, bytes, InvalidMessage]:
    """The record's first line is the bad row (its quote never closes); the lines it swallowed are read again as
    rows of their own. Before, they were one dead letter, not counted; past the csv module's field limit (128 KiB)
    they vanished: one ``bad_csv`` with only the error text, and ~1,000 valid rows neither counted nor dead-lettered
    (found by review). An over-long line among them is handed back too, and is its own ``bad_csv`` again."""
    blanks = _leading_blanks(lines.record)
    first, rest = lines.record[blanks], lines.record[blanks + 1:]
    assert isinstance(first, str)  # an over-long first line is not a record with rows inside
    lines.push_back(rest)
    at = line_before + 1 + blanks
    return at, first.encode("utf-8", "surrogateescape"), InvalidMessage(
        "bad_csv", f"line {at} opens a quote that does not close before line {at + len(rest)}, and the line(s) after "
                   "it read as rows of their own: this line is left out and they are read as rows -- fix the quoting")


def _refused_record(lines: _BoundedLines, line_before: int, columns: list[str], exc: csv.Error
                    ) -> tuple[int, bytes, InvalidMessage]:
    """A record the csv module refused (a field past its limit, a line past ``csv_line_limit``): an unclosed quote
    if lines inside it are rows of their own, else one dead letter for the whole record, and reading resumes after
    its closing quote (it resumed inside the field: every further line of the text was a bad row of its own, and
    the rows after it were read out of step; found by review)."""
    blanks = _leading_blanks(lines.record)
    inside = [line for line in lines.record[blanks + 1:] if isinstance(line, str)]
    head = lines.record[blanks] if blanks < len(lines.record) else None
    if isinstance(head, str) and _rows_among(inside, columns):
        return _unclosed_quote(lines, line_before)
    raw = "".join(line for line in lines.record if isinstance(line, str))
    lines.to_record_end(lambda line: _rows_among([line], columns) > 0)
    first = line_before + 1 + blanks
    last = max(lines.line_num, first)
    where = f"line {last}" if last == first else f"lines {first}-{last}"
    return first, raw.lstrip("\r\n").encode("utf-8", "surrogateescape") or str(exc).encode(), InvalidMessage(
        "bad_csv", f"the record of {where} cannot be read: {exc}"[:300])


def _swallowed_rows(row: dict[str, Any], columns: list[str]) -> int:
    """Lines inside a multi-line field that parse as a whole row of the file: an unclosed quote read them
    into one field (before, silently: one garbage message counted, the real rows lost). A field with
    paragraphs of prose has no such lines."""
    return _rows_among(lines_inside_fields(row), columns)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def lines_inside_fields(row: Mapping[Any, object]) -> list[str]:
    """The lines after the first of each multi-line field of a CSV row: where rows an unclosed quote swallowed are.
    Breaks are LF, CRLF or a lone CR (a CR-only file hid them), and the cells past the header count too
    (``DictReader`` puts them in a list under ``None``: an unclosed quote there hid the rows it swallowed; both
    found by review)."""
    cells = [cell for value in row.values() for cell in (value if isinstance(value, list) else [value])]
    return [line for cell in cells if isinstance(cell, str) for line in _LINE_BREAK.split(cell)[1:]]


_SOURCE_KINDS = frozenset(kind.value for kind in SourceKind)


def _rows_among(lines: Sequence[str], columns: list[str]) -> int:
    """How many of ``lines`` parse as a row of a file with these ``columns``: every column there, and ``news`` or
    ``comment`` under ``source`` (a line of prose with commas is not one: a long text of such paragraphs was taken
    for rows its quote had swallowed)."""
    at = columns.index("source") if "source" in columns else None
    if at is None or len(columns) < 2:
        return 0
    rows = (next(csv.reader([line]), []) for line in lines)
    return sum(1 for cells in rows if len(cells) >= len(columns) and cells[at].strip().lower() in _SOURCE_KINDS)


def _bounded_lines(fh: BufferedIOBase, max_line_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(the first ``max_line_bytes + 1`` bytes of each line, its full size): a line without newlines
    of gigabytes is skipped in chunks, never held in memory."""
    while line := fh.readline(max_line_bytes + 1):
        size = len(line)
        if size > max_line_bytes and not line.endswith(b"\n"):
            size += _skip_rest_of_line(fh.readline, b"\n")
        yield line, size


def _skip_rest_of_line(readline: Callable[[int], AnyStr], ends: AnyStr | tuple[AnyStr, ...]) -> int:
    """Reads the rest of an over-long line in ``READ_CHUNK_BYTES`` pieces, holding none; returns its size."""
    size = 0
    while (rest := readline(READ_CHUNK_BYTES)) and not rest.endswith(ends):
        size += len(rest)
    return size + len(rest)


def is_gzip(path: Path) -> bool:
    """A ``.gz`` name or gzip's magic bytes (a compressed file someone named ``.jsonl``)."""
    if path.suffix.lower() == ".gz":
        return True
    with path.open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def is_csv(path: Path) -> bool:
    """The format is the suffix before any ``.gz``: ``x.csv.gz`` is CSV, everything else JSONL."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
    return suffixes[-1:] == [".csv"]


def open_input(path: Path) -> BufferedReader | gzip.GzipFile:
    """The bytes of an input file, decompressed when it is gzip (reading it raw made every line ``bad_json``)."""
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")


def _open_text(path: Path) -> TextIOWrapper:
    # a spreadsheet's byte-order mark is skipped; undecodable bytes become lone surrogates (``bad_encoding``)
    return TextIOWrapper(open_input(path), encoding="utf-8-sig", errors="surrogateescape", newline="")


def iter_lines(path: Path, max_line_bytes: int | None = None) -> Generator[tuple[int, bytes, Any], None, None]:
    """(line number, raw bytes, decoded object or an ``InvalidMessage``) for each record of a file.
    JSONL lines longer than ``max_line_bytes`` are ``oversized`` (raw cut to that bound) and never decoded; a CSV
    line of more characters is one ``bad_csv`` record (``csv_line_limit``), never held whole either.
    Gzip data that is cut off or corrupt ends the file with one ``bad_gzip`` record (it was a traceback)."""
    line = 0
    try:
        for record in _csv_records(path, max_line_bytes) if is_csv(path) else _jsonl_records(path, max_line_bytes):
            line = record[0]
            yield record
    except GZIP_ERRORS as exc:
        yield line + 1, b"", InvalidMessage("bad_gzip", f"the gzip data is truncated or corrupt after line {line} "
                                                        f"({exc}); the rest of the file is unread -- copy or "
                                                        "compress the file again")


def _jsonl_records(path: Path, max_line_bytes: int | None) -> Iterator[tuple[int, bytes, Any]]:
    limit = max_line_bytes if max_line_bytes is not None else sys.maxsize - 1
    with open_input(path) as fh:
        for n, (line, size) in enumerate(_bounded_lines(fh, limit), start=1):
            if size > limit:
                yield n, line[:limit], InvalidMessage("oversized", f"line has {size} bytes, limit is {limit}"
                                                                   + _cr_hint(line))
                continue
            if not line.strip():
                continue
            try:
                yield n, line, decode_json(line)
            except InvalidMessage as exc:
                yield n, line, InvalidMessage(exc.reason, exc.detail + _cr_hint(line))


_BARE_CR = re.compile(rb"\r(?!\n)")


def _cr_hint(line: bytes) -> str:
    """Why a whole file may be one bad line: JSON strings cannot hold a raw CR, so a CR inside a line is a line end
    of a file saved with CR-only endings (classic Mac), which JSONL does not split on (found by review: the reason
    was only ``oversized`` or ``Extra data``)."""
    if not _BARE_CR.search(line.rstrip(b"\r\n")):
        return ""
    return " -- the line holds CR (\\r) characters: a file with CR-only line endings reads as one line; convert " \
           "them to LF (tr '\\r' '\\n' < in.jsonl > out.jsonl)"


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
        self.cut_off: list[str] = []
        """Files whose gzip data broke off (``bad_gzip``): the rows after the break were never read."""
        self.committed: tuple[str, int] | None = None
        self._pace_origin: tuple[float, float] | None = None
        self._behind_logged = False

    async def _start(self) -> None:
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"replay file(s) not found: {', '.join(missing)} -- fix source.replay_paths or --input"
            )
        for path in self.paths:  # before any row is read: a bad header of the last file wastes no run
            if is_csv(path):
                check_csv_header(path, self.max_message_bytes + 2)

    def _validate(self, raw: bytes, obj: Any) -> RawMessage:
        if isinstance(obj, InvalidMessage):
            raise obj
        size = record_bytes(raw)
        if size > self.max_message_bytes:
            raise InvalidMessage("oversized", f"record has {size} bytes, limit is {self.max_message_bytes}")
        return guarded(lambda: message_from_dict(obj, max_text_chars=self.max_text_chars, bounds=self.bounds))

    def _due_in(self, msg: RawMessage) -> float:
        """Seconds until ``msg`` is due at ``speed`` (<= 0: due now). A gap or a lag past ``MAX_PACE_WAIT_S`` moves
        the origin to this line, so pacing goes on from here instead of sleeping the gap or never sleeping again."""
        if self.speed <= 0:
            return 0.0
        event_s = msg.event_time.timestamp()
        if self._pace_origin is None:
            self._pace_origin = (time.monotonic(), event_s)
            return 0.0
        event0 = self._pace_origin[1]
        delay = self._schedule_delay(event_s)
        if delay > MAX_PACE_WAIT_S:  # a night without news, or one line dated far ahead: skip the gap, not
            log.info("replay_gap_skipped", would_wait_s=round(delay), event_gap_s=round(event_s - event0))
            self._pace_origin = (time.monotonic(), event_s)  # sleep it (results depend on event time only)
        elif delay < -MAX_PACE_WAIT_S:  # the origin is a line dated far ahead (which the pipeline then refused),
            if event_s >= event0 and not self._behind_logged:  # or the pipeline is slower than the speed asks
                self._behind_logged = True
                log.warning("replay_behind_schedule", behind_s=round(-delay), speed=self.speed,
                            hint="the pipeline classifies slower than source.replay_speed asks; pacing restarts "
                                 "from this line, so event time runs slower than the speed says")
            self._pace_origin = (time.monotonic(), event_s)  # else every later line was behind it, none slept
        else:
            return delay
        return 0.0

    def _schedule_delay(self, event_s: float) -> float:
        """Seconds from now until event time ``event_s`` is due against the pacing origin."""
        assert self._pace_origin is not None
        wall0, event0 = self._pace_origin
        return (event_s - event0) / self.speed - (time.monotonic() - wall0)

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        batch: list[SourceRecord] = []
        for path in self.paths:
            for line_no, raw, obj in iter_lines(path, self.max_message_bytes + 2):  # + CRLF, as the header
                wire = WireRecord({"file": str(path), "line": line_no})
                try:
                    msg = self._validate(raw, obj)
                except InvalidMessage as exc:
                    self.dead_count += 1
                    if exc.reason == "bad_gzip":
                        self.cut_off.append(str(path))
                    await self.dead_letter.send(raw, exc.reason, exc.detail, wire.origin)
                    continue
                self.read_count += 1
                delay = self._due_in(msg)
                if delay > 0:
                    # paced: hand over what we have before sleeping, so latency stays low; a line already due
                    # joins the batch instead (found by review: one classifier batch per message made a paced
                    # replay fall far behind its speed)
                    if batch:
                        yield batch
                        batch = []
                        delay = self._schedule_delay(msg.event_time.timestamp())  # the batch's work took time
                    if delay > 0:
                        await asyncio.sleep(delay)
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
