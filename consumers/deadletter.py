"""Dead letters: input that failed validation, kept with *why* and *where from*, never silently dropped.

A source hands every rejected record to a ``DeadLetterSink`` and moves on, so one bad message can never
crash the daemon or block its partition. What the *source* rejects (schema, size, encoding) is stored as it
came, byte for byte. What the *pipeline* rejects later (``late``, ``implausible_time``, ``id_conflict``,
``classifier_error``) was valid and is stored as the message it parsed to, re-serialised (monitor/types.py
``WireRecord``): it reads back as the same message, but fields the schema ignores are gone and the time and
tickers are in their normal form (found by review: documented rather than kept, as keeping every buffered
record's bytes doubles the engine's memory). ``send`` returns only once the record is stored (file written,
or DLQ produce acknowledged): the source may then count the record as processed and commit past it.

- ``KafkaDeadLetter`` (source kind ``kafka``): the original bytes, unchanged, as the value of a record on
  ``kafka.dead_letter_topic``, with the original record's key and headers; reason/detail/origin/time go in
  headers of their own (``dlq.*``, after the original ones), so the record can be re-fed to the input topic
  once the producer is fixed and lands on the partition its key chose. A broker outage is waited for like any other
  (``monitor/retry.py``: the ``dead_letter`` dependency on ``/readyz``), never a reason to pass a record over.
- ``FileDeadLetter`` (any other source, and ``monitor replay --kafka-topic``): one JSON object per line with
  reason, detail, origin, the payload as text (undecodable bytes replaced) plus ``raw_b64`` when it is not
  UTF-8, and ``dead_lettered_at``. A Kafka record's key and headers are kept exactly, so it can be re-fed
  as it came: ``key_b64`` (base64 of the key's bytes; absent for a null key), ``headers`` as readable
  ``[name, text]`` pairs and, when that text is not the exact header (a value that is not UTF-8, or one cut
  for length), ``headers_b64``: all of them again as ``[name, base64 or null]``. ``origin.key`` is for
  humans only (undecodable bytes replaced, cut to 200 characters).
  Each line is bounded: the payload is cut to ``max_raw_bytes`` (``raw_truncated``/``raw_size`` say so),
  which is never below ``source.max_message_bytes``, so only an ``oversized`` payload is cut; key and headers
  are bounded by the largest record the consumer fetches (1 MiB). The file rotates to ``.1`` … ``.N``
  (``source.dead_letter_max_mb``/``_keep_files``).

Each sink logs a WARNING ``message_dead_lettered`` for the first dead letter of a reason at once, then at most
one per reason per ``LOG_EVERY_S`` with ``left_out_since`` (how many it did not log since its last line):
``finsent_dead_letters_total{reason}`` keeps the full count.

The sink's lifecycle belongs to whoever built it (the app), not to the source that uses it.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from monitor import metrics
from monitor.config import ConfigError, KafkaSettings, Settings, SourceSettings
from monitor.lifecycle import Service
from monitor.logging import LogThrottle
from monitor.retry import retrying
from monitor.rotating_file import DEFAULT_KEEP, DEFAULT_MAX_BYTES, MIB, RotatingFile
from monitor.types import Lifecycle

log = structlog.get_logger(__name__)

MAX_DETAIL_CHARS = 1_000
"""Details are produced by our validators, but may quote input: keep them short."""
MAX_REASON_CHARS = 64
MAX_ORIGIN_CHARS = 512
SMALL_RAW_BYTES = 65_536
"""What the Kafka DLQ still sends when the broker refuses the payload as too large."""
DEFAULT_MAX_RAW_BYTES = 65_536
"""Payload bytes a dead-letter file line keeps by default: above ``source.max_message_bytes``' default (64,000)."""
LINE_END_BYTES = 2
"""A replayed file line is dead-lettered with its ending (``\\r\\n`` at most), past ``source.max_message_bytes``."""
DLQ_HEADER_PREFIX = "dlq."
"""The headers a dead letter adds; an original record's own ``dlq.*`` headers (a record dead-lettered before,
re-fed and rejected again) are replaced by this dead-lettering's, so a reader never sees two reasons."""

Headers = Sequence[tuple[str, bytes | None]]
"""Kafka record headers as aiokafka gives them: (name, value) pairs, a value may be null."""
LOG_EVERY_S = 60.0
"""At most one ``message_dead_lettered`` line per reason per this long (the first at once)."""
MAX_LOGGED_REASONS = 256
"""Reasons whose throttles are remembered (the code has 16: ``metrics.DEAD_LETTER_REASONS``); past it, all reset."""


class DeadLetterLog:
    """Logs dead letters per reason: the first at once, then one line per ``every_s`` with the count left out.

    Why: a line per dead letter, at 1,000 bad messages a second, wrote about 20 GB of logs a day (found by
    review); the metric counts each one, the log only has to say that a reason is happening and from where."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._throttles: dict[str, LogThrottle] = {}

    def dead_lettered(self, reason: str, origin: Mapping[str, object], sink: str) -> None:
        throttle = self._throttles.get(reason)
        if throttle is None:
            if len(self._throttles) >= MAX_LOGGED_REASONS:
                self._throttles.clear()
            throttle = self._throttles[reason] = LogThrottle(self.every_s, self._clock)
        left_out = throttle.allow()
        if left_out is not None:
            log.warning("message_dead_lettered", reason=reason, origin=origin, sink=sink, left_out_since=left_out)


class DeadLetterSink(Lifecycle, Protocol):
    """Stores rejected input. ``origin`` says where it came from (topic/partition/offset or file/line);
    ``key`` and ``headers`` are the original Kafka record's, kept with it (none for file input)."""

    async def send(self, raw: bytes, reason: str, detail: str, origin: Mapping[str, object], *,
                   key: bytes | None = None, headers: Headers = ()) -> None: ...


def safe_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters and made writable as UTF-8 whatever it holds: lone
    surrogates (from ``"\\ud800"`` escapes, or file names) become ``\\udXXX`` text instead of
    raising ``UnicodeEncodeError`` in the very code that handles bad input."""
    text = text[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_bytes(obj: dict[str, Any]) -> bytes:
    """``obj`` as UTF-8 JSON, never raising: odd values become text, a value JSON cannot hold at all
    (an integer past the 4,300-digit limit, a cycle) becomes a marker, lone surrogates ``\\u`` escapes."""
    try:
        text = json.dumps(obj, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        fields: dict[str, Any] = {}
        for key, value in obj.items():
            try:
                json.dumps(value, default=str)
                fields[str(key)] = value
            except (ValueError, TypeError, RecursionError):
                fields[str(key)] = f"<{type(value).__name__} that JSON cannot hold>"
        text = json.dumps(fields, ensure_ascii=False, default=str)
    return text.encode("utf-8", "backslashreplace")


def _safe_value(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float) and math.isfinite(value):
        return value
    return safe_text(value if isinstance(value, str) else str(value), MAX_ORIGIN_CHARS)


def _json_safe(origin: Mapping[str, object]) -> dict[str, object]:
    """Origin values as JSON scalars that always encode (huge ints and odd objects become short text)."""
    return {safe_text(str(k), MAX_REASON_CHARS): _safe_value(v) for k, v in origin.items()}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _header_text(value: bytes | None) -> str | None:
    if value is None:
        return None
    return safe_text(value.decode("utf-8", errors="backslashreplace"), MAX_DETAIL_CHARS)


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _header_fields(headers: Headers) -> dict[str, Any]:
    """``headers`` as readable ``[name, text]`` pairs (each cut to ``MAX_DETAIL_CHARS``), plus ``headers_b64``
    with every pair exact (``[name, base64 or null]``) when any text is not the header itself.

    Why both: the text escapes undecodable bytes (``\\xff``), so two different values could read the same
    and a re-feed from the file would send the wrong bytes (found by review); the text stays for humans."""
    readable = [[safe_text(str(name), MAX_REASON_CHARS), _header_text(value)] for name, value in headers]
    fields: dict[str, Any] = {"headers": readable}
    if any(text_name != name or (None if text is None else text.encode("utf-8")) != value
           for (name, value), (text_name, text) in zip(headers, readable, strict=True)):
        fields["headers_b64"] = [[safe_text(str(name), len(str(name))), _b64(value)] for name, value in headers]
    return fields


def dead_letter_record(
    raw: bytes, reason: str, detail: str, origin: Mapping[str, object], *, max_raw_bytes: int,
    key: bytes | None = None, headers: Headers = (),
) -> dict[str, Any]:
    """The JSON-ready form of one dead letter, with the payload bounded to ``max_raw_bytes``; the original
    Kafka record's key as ``key_b64`` (exact bytes, none for a null key) and its ``headers`` (if any) as
    ``_header_fields`` gives them."""
    kept = raw[:max_raw_bytes]
    record: dict[str, Any] = {
        "reason": safe_text(reason, MAX_REASON_CHARS),
        "detail": safe_text(detail, MAX_DETAIL_CHARS),
        "origin": _json_safe(origin),
        "dead_lettered_at": _now_iso(),
        "raw_size": len(raw),
        "raw_truncated": len(raw) > max_raw_bytes,
    }
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw"] = kept.decode("utf-8", errors="replace")
        record["raw_b64"] = base64.b64encode(kept).decode("ascii")
    else:
        record["raw"] = kept.decode("utf-8", errors="ignore")  # the cut may split one trailing character
    if key is not None:
        record["key_b64"] = _b64(key)
    if headers:
        record.update(_header_fields(headers))
    return record


class DeadLetterWriteError(RuntimeError):
    """The dead-letter file cannot be written (disk full, permissions): the run stops rather than pass over
    a record it cannot keep. Not an ``OSError``, so no retry loop waits on it: a file replay is a batch job
    that nobody watches on ``/readyz``, and a one-line error that names the path is what its operator needs."""


class FileDeadLetter(Service):
    """Appends dead letters to a size-bounded JSONL file (created with its parent directories on start)."""

    def __init__(self, path: Path, *, max_raw_bytes: int = DEFAULT_MAX_RAW_BYTES,
                 max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        self.path = path
        self.max_raw_bytes = max_raw_bytes
        self.file = RotatingFile(path, max_bytes=max_bytes, keep=keep)
        self.count = 0
        self.throttled_log = DeadLetterLog()

    async def _start(self) -> None:
        try:
            self.file.create()
        except OSError as exc:
            raise ConfigError(
                f"source.dead_letter_path {self.path}: cannot create it ({exc.strerror or exc}) -- choose a "
                "writable path (or set MONITOR_SOURCE__DEAD_LETTER_PATH)"
            ) from exc

    async def send(self, raw: bytes, reason: str, detail: str, origin: Mapping[str, object], *,
                   key: bytes | None = None, headers: Headers = ()) -> None:
        if not self.started:
            raise RuntimeError("FileDeadLetter.send() before start()")
        record = dead_letter_record(raw, reason, detail, origin, max_raw_bytes=self.max_raw_bytes, key=key,
                                    headers=headers)
        # One small write per rare event, flushed (the file is closed after each line): cheaper than a
        # thread hop, and a crash of the daemon loses nothing.
        try:
            self.file.append((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        except OSError as exc:
            raise DeadLetterWriteError(
                f"source.dead_letter_path {self.path}: cannot write a dead letter ({exc.strerror or exc}) -- free "
                "space or choose another path (MONITOR_SOURCE__DEAD_LETTER_PATH); the record was not passed "
                "over: a rerun reads it again"
            ) from exc
        self.count += 1
        metrics.DEAD_LETTERS.labels(record["reason"]).inc()
        self.throttled_log.dead_lettered(record["reason"], record["origin"], "file")


class KafkaDeadLetter(Service):
    """Produces dead letters to ``settings.dead_letter_topic`` (acks=all; ``send`` waits for the ack)."""

    def __init__(self, settings: KafkaSettings, *, max_raw_bytes: int = 900_000) -> None:
        self.settings = settings
        self.topic = settings.dead_letter_topic
        self.max_raw_bytes = max_raw_bytes
        """Below the producer's 1 MiB request limit, so an oversized payload still gets through."""
        self.count = 0
        self.throttled_log = DeadLetterLog()
        self._producer: AIOKafkaProducer | None = None

    async def _start(self) -> None:
        from consumers.kafka_client import client_kwargs, require_topics, start_client

        await require_topics(self.settings, ("dead_letter_topic",), "dead-letter producer")
        producer = AIOKafkaProducer(
            acks="all", enable_idempotence=False, **client_kwargs(self.settings, "dead-letter")
        )
        await start_client(producer, self.settings, "dead-letter producer")
        self._producer = producer

    async def _stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, raw: bytes, reason: str, detail: str, origin: Mapping[str, object], *,
                   key: bytes | None = None, headers: Headers = ()) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaDeadLetter.send() before start()")
        reason = safe_text(reason, MAX_REASON_CHARS)
        safe_origin = _json_safe(origin)
        # the original record's headers first (a re-feed keeps them), then this dead letter's own
        kept: list[tuple[str, bytes | None]] = [
            (name, value) for name, value in headers if not name.startswith(DLQ_HEADER_PREFIX)]
        all_headers = [
            *kept,
            ("dlq.reason", reason.encode()),
            ("dlq.detail", safe_text(detail, MAX_DETAIL_CHARS).encode()),
            ("dlq.origin", json.dumps(safe_origin).encode()),
            ("dlq.at", _now_iso().encode()),
        ]
        try:
            await retrying("dead_letter", lambda: self._produce(raw, key, all_headers, self.max_raw_bytes))
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            # the broker's (or topic's) limit is below ours: keep the head of the payload, not nothing
            log.warning("dead_letter_payload_cut", raw_size=len(raw), kept=SMALL_RAW_BYTES, error=repr(exc))
            await retrying("dead_letter", lambda: self._produce(raw, key, all_headers, SMALL_RAW_BYTES))
        self.count += 1
        metrics.DEAD_LETTERS.labels(reason).inc()
        self.throttled_log.dead_lettered(reason, safe_origin, "kafka")

    async def _produce(self, raw: bytes, key: bytes | None, headers: list[tuple[str, bytes | None]],
                       max_raw_bytes: int) -> None:
        assert self._producer is not None
        if len(raw) > max_raw_bytes:
            headers = [*headers, ("dlq.truncated_from", str(len(raw)).encode())]
        await self._producer.send_and_wait(self.topic, raw[:max_raw_bytes], key=key, headers=headers)


def file_dead_letter(source: SourceSettings) -> FileDeadLetter:
    """The JSONL file ``source.dead_letter_path`` (rotation from ``source.dead_letter_max_mb``/``_keep_files``).

    A line keeps any payload ``source.max_message_bytes`` lets through whole (a replayed line with its ending):
    a fixed 16 KiB cut a 23 KB message that was rejected only for its time (found by review)."""
    max_raw_bytes = max(DEFAULT_MAX_RAW_BYTES, source.max_message_bytes + LINE_END_BYTES)
    return FileDeadLetter(source.dead_letter_path, max_raw_bytes=max_raw_bytes,
                          max_bytes=source.dead_letter_max_mb * MIB, keep=source.dead_letter_keep_files)


def build_dead_letter(settings: Settings) -> DeadLetterSink:
    """Kafka DLQ topic when consuming from Kafka, else the JSONL file ``source.dead_letter_path``."""
    if settings.source.kind == "kafka":
        return KafkaDeadLetter(settings.kafka)
    return file_dead_letter(settings.source)
