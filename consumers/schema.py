"""Wire schema of input messages and its validation.

One JSON object per message (Kafka record value, or one JSONL line)::

    {
      "id": "reuters-2026-11-24-0001",          # required, unique per message (dedup key)
      "source": "news" | "comment",             # optional when the topic implies it
      "text": "Acme shares plunge after ...",    # required, non-empty
      "published_at": "2026-11-24T14:03:00Z",    # required: ISO-8601 with offset/Z, or epoch seconds/ms
      "tickers": ["ACME"],                       # optional list of symbols (the pipeline adds those the
                                                 # text names: $CASHTAGS, watchlist names; monitor/enrich.py)
      "lang": "en",                              # optional, default "en"
      "url": "https://...",                      # optional
      "meta": {...}                              # optional, free-form, kept as-is
    }

Event time is ``published_at`` from the payload, never the broker timestamp. Invalid input raises
``InvalidMessage`` with a short machine ``reason`` so the caller can dead-letter it.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from monitor.types import RawMessage, SourceKind

MAX_TICKERS = 32
MAX_ID_CHARS = 256
_EPOCH_MS_THRESHOLD = 10**11  # numbers above this are milliseconds
_MIN_EPOCH_S = 0.0
_MAX_EPOCH_S = 4102444800.0  # 2100-01-01


class InvalidMessage(Exception):
    """A message that cannot be processed; ``reason`` is a short code, ``detail`` says what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_event_time(value: Any) -> datetime:
    """``published_at`` as an aware UTC datetime. Naive ISO strings are read as UTC."""
    if isinstance(value, bool):
        raise InvalidMessage("bad_timestamp", "published_at must be ISO-8601 or epoch, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0 if abs(value) >= _EPOCH_MS_THRESHOLD else float(value)
        if not math.isfinite(seconds) or not _MIN_EPOCH_S <= seconds <= _MAX_EPOCH_S:
            raise InvalidMessage("bad_timestamp", f"published_at epoch {value!r} out of range")
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise InvalidMessage("bad_timestamp", f"published_at {value[:64]!r} is not ISO-8601") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise InvalidMessage("bad_timestamp", f"published_at must be a string or number, got {type(value).__name__}")


def epoch_or_text(text: str) -> str | float:
    """A time written as text (CSV cell, CLI argument): epoch seconds/ms as a number, else unchanged.
    JSON payloads are typed and go to ``parse_event_time`` directly (a quoted epoch stays invalid)."""
    stripped = text.strip()
    return float(stripped) if stripped.replace(".", "", 1).isdigit() else text


def _source(value: Any, default: SourceKind | None) -> SourceKind:
    if value is None:
        if default is None:
            raise InvalidMessage("missing_field", "source is required (news|comment)")
        return default
    try:
        return SourceKind(str(value).lower())
    except ValueError as exc:
        raise InvalidMessage("bad_field", f"source must be news or comment, got {str(value)[:32]!r}") from exc


def _tickers(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidMessage("bad_field", "tickers must be a list of strings")
    cleaned = tuple(dict.fromkeys(t.strip().lstrip("$").upper() for t in value if t.strip()))
    if len(cleaned) > MAX_TICKERS:
        raise InvalidMessage("bad_field", f"at most {MAX_TICKERS} tickers per message")
    return cleaned


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMessage("bad_field", f"{key} must be a string")
    return value


def message_from_dict(obj: Any, *, max_text_chars: int, default_source: SourceKind | None = None) -> RawMessage:
    """Validate an already-decoded object (used by JSONL/CSV replay and by ``parse_message``)."""
    if not isinstance(obj, dict):
        raise InvalidMessage("bad_json", "message must be a JSON object")
    msg_id = obj.get("id")
    if msg_id is None or (isinstance(msg_id, str) and not msg_id.strip()):
        raise InvalidMessage("missing_field", "id is required")
    if not isinstance(msg_id, str | int) or isinstance(msg_id, bool):
        raise InvalidMessage("bad_field", "id must be a string or integer")
    msg_id = str(msg_id)
    if len(msg_id) > MAX_ID_CHARS:
        raise InvalidMessage("bad_field", f"id longer than {MAX_ID_CHARS} characters")
    text = obj.get("text")
    if text is None:
        raise InvalidMessage("missing_field", "text is required")
    if not isinstance(text, str):
        raise InvalidMessage("bad_field", "text must be a string")
    text = text.strip()
    if not text:
        raise InvalidMessage("empty_text", "text is empty")
    if len(text) > max_text_chars:
        raise InvalidMessage("oversized", f"text has {len(text)} characters, limit is {max_text_chars}")
    if "published_at" not in obj:
        raise InvalidMessage("missing_field", "published_at is required")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise InvalidMessage("bad_field", "meta must be an object")
    lang = _optional_str(obj, "lang") or "en"
    return RawMessage(
        id=msg_id,
        source=_source(obj.get("source"), default_source),
        text=text,
        event_time=parse_event_time(obj["published_at"]),
        tickers=_tickers(obj.get("tickers")),
        lang=lang[:16],
        url=_optional_str(obj, "url"),
        meta=meta,
    )


def parse_message(
    raw: bytes,
    *,
    max_message_bytes: int,
    max_text_chars: int,
    default_source: SourceKind | None = None,
) -> RawMessage:
    """Decode and validate one wire message. Raises ``InvalidMessage``; never anything else."""
    if raw is None:
        raise InvalidMessage("bad_json", "empty record value (tombstone)")
    if len(raw) > max_message_bytes:
        raise InvalidMessage("oversized", f"payload has {len(raw)} bytes, limit is {max_message_bytes}")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidMessage("bad_json", f"not valid UTF-8 JSON: {exc}"[:200]) from exc
    return message_from_dict(obj, max_text_chars=max_text_chars, default_source=default_source)


def message_to_dict(msg: RawMessage) -> dict[str, Any]:
    """The wire form of a message (inverse of ``message_from_dict``)."""
    return {
        "id": msg.id,
        "source": str(msg.source),
        "text": msg.text,
        "published_at": msg.event_time.isoformat().replace("+00:00", "Z"),
        "tickers": list(msg.tickers),
        "lang": msg.lang,
        "url": msg.url,
        "meta": msg.meta,
    }
