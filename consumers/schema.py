"""Wire schema of input messages and its validation.

One JSON object per message (Kafka record value, or one JSONL line)::

    {
      "id": "reuters-2026-11-24-0001",          # required, unique per message (dedup key)
      "source": "news" | "comment",             # optional when the topic implies it
      "text": "Acme shares plunge after ...",    # required, with at least one visible character
      "published_at": "2026-11-24T14:03:00Z",    # required: ISO-8601 with offset/Z, or epoch seconds/ms
      "tickers": ["ACME"],                       # optional list of symbols (the pipeline adds those the
                                                 # text names: $CASHTAGS, watchlist names; monitor/engine/enrich.py)
      "lang": "en",                              # optional, default "en"
      "url": "https://...",                      # optional
      "meta": {...}                              # optional, free-form, kept as-is
    }

Event time is ``published_at`` from the payload, never the broker timestamp. Invalid input raises
``InvalidMessage`` with a short machine ``reason`` so the caller can dead-letter it; nothing else
ever escapes (hostile shapes included: huge integers, unrepresentable dates, lone surrogates).

Two time checks, two reasons: ``bad_timestamp`` when ``published_at`` is not a time at all or lies
outside what the parser can represent (1970 .. 2100); ``implausible_time`` (``monitor.time_bounds``)
when it is a time but outside the configured plausibility window (``source.max_future_s`` ahead of
the wall clock at ingest, ``source.min_event_time``), so one bogus time cannot move the watermark or
the alert cursor out of range.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import Any

import structlog

from monitor.entities.fold import fold, unicode_class
from monitor.logging import LogThrottle
from monitor.time_bounds import EventTimeBounds
from monitor.types import RawMessage, SourceKind

log = structlog.get_logger(__name__)

MAX_TICKERS = 32
MAX_TICKER_CHARS = 32
TICKER = re.compile(r"[A-Z0-9^][A-Z0-9.^=_-]{0,15}")
"""A normalised ticker: upper case letters, digits, ``.`` (share class: ``BRK.B``) and the ``^``/``=``/``_``/``-``
of index, futures and pair symbols (``^GSPC``, ``EURUSD=X``, ``ES_F``, ``BTC-USD``), at most 16. Never ``:``,
``|``, braces or spaces: they delimit window and Redis keys."""
_SHARE_CLASS = re.compile(r"([A-Z0-9]+)[-/]([A-Z]{1,2})")
"""``BRK-B``, ``BRK/B``: a share class written with another separator (only a 1-2 letter suffix: ``BTC-USD``
is a pair, not a class, and keeps its key; a space is not a separator: ``AAPL US`` names an exchange)."""
EXCHANGE_PREFIXES = frozenset({
    "NASDAQ", "NYSE", "NYSEARCA", "NYSEAMERICAN", "NYSE AMERICAN", "AMEX", "BATS", "CBOE", "OTC", "OTCMKTS",  # US
    "CME", "CME_MINI", "CBOT", "NYMEX", "COMEX", "ICE", "ICEUS", "ICEEU", "EUREX",  # futures venues
    "LSE", "LON", "XETR", "XETRA", "ETR", "FRA", "EPA", "EURONEXT", "AMS", "EBR", "ELI", "BME", "BIT", "MIL", "SIX",
    "SWX", "VIE", "CPH", "STO", "HEL", "OSL", "WSE", "MOEX", "TASE", "JSE",  # Europe, Middle East, Africa
    "TSX", "TSXV", "CVE", "NEO", "BMV", "BMFBOVESPA", "BOVESPA",  # the Americas
    "ASX", "NZX", "HKEX", "HKG", "TSE", "TYO", "SGX", "KRX", "TWSE", "SSE", "SZSE", "NSE", "BSE", "IDX", "SET",
    "FX", "FX_IDC", "OANDA", "FOREXCOM", "BINANCE", "COINBASE", "KRAKEN", "BITSTAMP", "TVC", "SP", "DJ",  # others
})
EXCHANGE_OPERATORS = frozenset({"ICE", "CME", "CBOE"})
"""Exchanges that are listed companies under their venue's name: ``ICE:US`` is ICE (Bloomberg form), not the
symbol US on ICE."""
MARKET_SUFFIXES = frozenset({
    "US", "UN", "UW", "UQ", "UA", "UR", "UP", "UV", "LN", "JP", "JT", "HK", "GR", "GY", "FP", "NA", "SW", "SE", "SM",
    "IM", "CN", "CT", "AU", "AT", "KS", "KP", "TT", "SP", "IN", "IB", "BZ", "MM", "SJ", "DC", "SS", "FH", "NO", "ID",
    "BB", "PL", "AV", "PW", "CP", "LI", "TB", "MK", "NZ", "CH", "CG", "CS", "C1", "C2", "IT", "SA", "AB",
})
"""Bloomberg's country and exchange codes written after a symbol (``AAPL:US``, ``VOD:LN``, ``7203:JP``): the symbol
is the part before the ``:``, unless the part before is a known exchange (``NYSE:IT`` is IT; ``_without_market``
has the order). Any other ``X:Y`` is kept as written, so dropped as no symbol: guessing its order read ``CME:ES``
as CME Group or made every US stock ``US`` (found by reviews)."""
_dropped_tickers = LogThrottle(60.0)
MAX_ID_CHARS = 256
MAX_NESTING = 64
"""Deeper ``meta`` is refused (``bad_field``) before anything recurses into it."""
_EPOCH_MS_THRESHOLD = 10**11  # numbers above this are milliseconds
_MIN_EPOCH_S = 0.0
_MAX_EPOCH_S = 4102444800.0  # 2100-01-01


_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Mn", "Me", "Zs", "Zl", "Zp"})
"""Characters that show nothing on their own: controls, format characters (zero-width space and joiners,
word joiner, BOM, direction marks and overrides), combining and enclosing marks, spaces and separators."""
_BLANK_LETTERS = "\u115f\u1160\u3164\uffa0"
"""The Hangul fillers: letters (Lo) by category, but default-ignorable (they render as nothing)."""


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES or char in _BLANK_LETTERS


@cache
def _visible_character() -> re.Pattern[str]:
    """Matches one character that is not ``_invisible``, built once on first use (~100 ms, only when a text
    starts with an invisible character), then searched at C speed (25 us for 10,000 invisible characters)."""
    return unicode_class(_invisible, negate=True)


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has a character that shows: text of only zero-width, direction, control or combining
    characters is empty to a reader, the model and the entity linker (``fold`` drops the format characters)
    alike. O(1) for text that starts with a visible character (almost all), else one regex search."""
    if not text:
        return False
    if not _invisible(text[0]):
        return True
    return _visible_character().search(text) is not None


class InvalidMessage(Exception):
    """A message that cannot be processed; ``reason`` is a short code, ``detail`` says what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _epoch_seconds(value: int | float) -> float:
    """Epoch seconds of a number of seconds or milliseconds; range-checked *before* any float
    conversion, so a 400-digit integer is refused instead of overflowing."""
    if abs(value) > _MAX_EPOCH_S * 1000:  # exact for any int: Python compares int and float without converting
        raise InvalidMessage("bad_timestamp", _epoch_too_large(value))
    seconds = float(value) / 1000.0 if abs(value) >= _EPOCH_MS_THRESHOLD else float(value)
    if not math.isfinite(seconds) or not _MIN_EPOCH_S <= seconds <= _MAX_EPOCH_S:
        raise InvalidMessage("bad_timestamp", f"published_at epoch {value!r} out of range")
    return seconds


def _epoch_too_large(value: int | float) -> str:
    """Why an epoch number past 2100 in milliseconds is refused: one that is a time in micro- or nanoseconds says
    so and what to divide by (it said "epoch integer of 51 bits out of range"; found by review)."""
    for divisor, unit in ((10**3, "microseconds"), (10**6, "nanoseconds")):
        if 0 < value <= _MAX_EPOCH_S * 1000 * divisor:
            return (f"published_at epoch {value!r} looks like {unit}: only epoch seconds or milliseconds are "
                    f"supported -- divide it by {divisor:,}")
    shown = f"integer of {value.bit_length()} bits" if isinstance(value, int) else repr(value)
    return f"published_at epoch {shown} out of range"


_LEAP_SECOND = re.compile(r"([Tt ]\d{2}:?\d{2}:?)60(?:[.,]\d+)?(?=[Zz+-]|$)")


def _rfc3339_spellings(text: str) -> str:
    """What ``datetime.fromisoformat`` refuses of RFC 3339: a lower-case ``z`` (RFC 3339 allows it), and a leap
    second (``23:59:60``), read as the last microsecond before it; both were "not a valid ISO-8601 time" (found by
    review). Only tried once the plain parse failed: the hot path is unchanged."""
    if text[-1:] == "z":
        text = text[:-1] + "Z"
    return _LEAP_SECOND.sub(r"\g<1>59.999999", text, count=1)


def _from_iso(text: str) -> datetime:
    """``datetime.fromisoformat``, with the RFC 3339 spellings it refuses (``_rfc3339_spellings``)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        fixed = _rfc3339_spellings(text)
        if fixed == text:
            raise
        return datetime.fromisoformat(fixed)


def parse_event_time(value: Any, naive_zone: tzinfo = UTC) -> datetime:
    """``published_at`` as an aware UTC datetime. Naive ISO strings are read in ``naive_zone``. Any time outside
    1970 .. 2100 is ``bad_timestamp``, whatever its form (epoch, ISO with any offset)."""
    if isinstance(value, bool):
        raise InvalidMessage("bad_timestamp", "published_at must be ISO-8601 or epoch, got a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(_epoch_seconds(value), tz=UTC)
    if isinstance(value, str):
        if not value.strip():
            raise InvalidMessage("bad_timestamp", "published_at is empty: a message needs the moment it was published")
        try:
            parsed = _from_iso(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=naive_zone)
            parsed = parsed.astimezone(UTC)  # year 1 at +05:00 or 9999-12-31 at -05:00 overflow here
        except (ValueError, OverflowError) as exc:
            hint = " (epoch seconds/milliseconds must be a JSON number, not a string)" if _epoch_digits(value) else ""
            raise InvalidMessage("bad_timestamp",
                                 f"published_at {value[:64]!r} is not a valid ISO-8601 time{hint}") from exc
        if not _MIN_EPOCH_S <= parsed.timestamp() <= _MAX_EPOCH_S:
            raise InvalidMessage("bad_timestamp", f"published_at {value[:64]!r} is outside 1970 .. 2100")
        return parsed
    raise InvalidMessage("bad_timestamp", f"published_at must be a string or number, got {type(value).__name__}")


_TIME_OF_DAY = re.compile(r"[Tt ]\d{2}:?\d{2}")
_naive_seen: list[str] = []
"""The first ``published_at`` without an offset this process read (logged once)."""


def message_time(value: Any, naive_zone: tzinfo) -> datetime:
    """A message's ``published_at``: ``parse_event_time``, and an ISO string must hold a time of day to the minute.
    ``2026-11-24`` or ``2026-W48-2`` parsed as midnight: a feed dated by day collapsed into one bucket a day, or was
    judged late, with nothing saying why (found by review). The first time without an offset is logged once."""
    if isinstance(value, str):
        if value.strip() and not _TIME_OF_DAY.search(value.strip()):  # stripped: ' 2026-11-24' matched its space
            why = ("epoch seconds/milliseconds must be a JSON number, not a string" if _epoch_digits(value) else
                   "it has no time of day (hh:mm): a message needs the moment it was published")
            raise InvalidMessage("bad_timestamp", f"published_at {value[:64]!r}: {why}")
        parsed = parse_event_time(value, naive_zone)
        if not _naive_seen and _is_naive(value):
            _naive_seen.append(value)
            log.warning("published_at_without_offset", example=value[:64], read_in=str(naive_zone),
                        fix="if the producer writes local time, set source.naive_time_zone to its zone "
                            "(e.g. America/New_York); better, send an offset or Z")
        return parsed
    return parse_event_time(value, naive_zone)


def _is_naive(text: str) -> bool:
    try:
        return _from_iso(text.strip()).tzinfo is None
    except ValueError:
        return False


def _epoch_digits(text: str) -> bool:
    """Text that reads as epoch seconds/ms (``1389571814``, ``1389571814.5``): a number in a CSV cell or on the
    command line; in a JSON string it stays refused (JSON is typed), with a reason that says so."""
    return text.strip().replace(".", "", 1).isdigit()


def epoch_or_text(text: str) -> str | float:
    """A time written as text (CSV cell, CLI argument): epoch seconds/ms as a number, else unchanged.
    JSON payloads are typed and go to ``parse_event_time`` directly (a quoted epoch stays invalid)."""
    if not _epoch_digits(text):
        return text
    try:
        return float(text.strip())
    except ValueError:  # isdigit() accepts digits float() does not ("²")
        return text


def check_encodable(value: Any, depth: int = 0) -> None:
    """Refuse strings that cannot be written as UTF-8 anywhere in the object (lone surrogates from
    ``"\\ud800"`` escapes: tokenizers, Redis keys and dead-letter writers all fail on them) and
    nesting deeper than ``MAX_NESTING``. Cheap: ASCII strings are checked by ``isascii`` alone."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidMessage("bad_encoding", f"a string holds {exc.reason} at index {exc.start}") from exc
        return
    if depth >= MAX_NESTING and isinstance(value, dict | list):
        raise InvalidMessage("bad_field", f"message nested deeper than {MAX_NESTING} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            check_encodable(key, depth + 1)
            check_encodable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_encodable(item, depth + 1)


def _source(value: Any, default: SourceKind | None) -> SourceKind:
    if value is None:
        if default is None:
            raise InvalidMessage("missing_field", "source is required (news|comment)")
        return default
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return SourceKind(value.lower())
    except ValueError as exc:
        shown = value[:32] if isinstance(value, str) else type(value).__name__
        raise InvalidMessage("bad_field", f"source must be news or comment, got {shown!r}") from exc


def normalise_ticker(raw: str) -> str:
    """One spelling per symbol, wherever it comes from (payload, CSV cell, cashtag, watchlist): ``$brk-b``,
    ``BRK/B``, ``NYSE:BRK-B``, ``BRK.B:US`` and ``BRK.B`` in fullwidth letters are all ``BRK.B``, so one company
    gets one window key: folded like text (``monitor.entities.fold``: NFKC, zero-width characters dropped),
    upper case, the market dropped (``_without_market``), ``$`` and spaces stripped, a share class's ``-``/``/``
    made ``.``. Empty when nothing is left; check it with ``TICKER``."""
    symbol = _without_market(fold(raw).upper()).strip().lstrip("$").strip()
    return _SHARE_CLASS.sub(r"\1.\2", symbol) if _SHARE_CLASS.fullmatch(symbol) else symbol


def _without_market(symbol: str) -> str:
    """``NASDAQ:AAPL``, ``XETR:SAP`` and ``AAPL:US`` are the symbols ``AAPL``, ``SAP`` and ``AAPL``: a known
    exchange before it (``EXCHANGE_PREFIXES``), else a Bloomberg market code after it (``MARKET_SUFFIXES``), and an
    exchange operator with a market code is the operator (``ICE:US``); any other ``:`` is kept (and the ticker
    dropped as no symbol). Both orders were wrong once: ``AAPL:US`` became ``US``, ``NYSE:IT`` became ``NYSE``."""
    head, colon, tail = symbol.partition(":")
    head, tail = head.strip(), tail.strip()
    if not colon or not head or not tail or ":" in tail:
        return symbol
    if head in EXCHANGE_OPERATORS and tail in MARKET_SUFFIXES:  # ``ICE:US``: the operator, listed in the US
        return head
    if head in EXCHANGE_PREFIXES:  # ``NYSE:IT`` is Gartner, though IT is also a market code
        return tail
    return head if tail in MARKET_SUFFIXES else symbol


def _tickers(value: Any) -> tuple[str, ...]:
    """Payload tickers normalised and deduplicated; blank ones (``""``, ``"$"``) are dropped as before, and so
    is one that is not a symbol after normalising (``AAPL US Equity``, ``a,b``: a window key must be a symbol),
    with a ``ticker_dropped`` warning (one a minute): the message keeps its valid tickers and its text (a
    dead letter for one odd ticker lost the message for every key)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidMessage("bad_field", "tickers must be a list of strings")
    if any(len(t) > MAX_TICKER_CHARS for t in value):
        raise InvalidMessage("bad_field", f"a ticker is longer than {MAX_TICKER_CHARS} characters")
    normalised = tuple(dict.fromkeys(t for t in map(normalise_ticker, value) if t))
    cleaned = tuple(t for t in normalised if TICKER.fullmatch(t))
    if len(cleaned) < len(normalised) and (held := _dropped_tickers.allow()) is not None:
        log.warning("ticker_dropped", tickers=[t for t in normalised if t not in cleaned], left_out_since=held,
                    why="not a symbol: letters, digits and . ^ = _ -, at most 16")
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


def message_from_dict(
    obj: Any, *, max_text_chars: int, default_source: SourceKind | None = None, bounds: EventTimeBounds | None = None
) -> RawMessage:
    """Validate an already-decoded object (used by JSONL/CSV replay and by ``parse_message``);
    with ``bounds``, an event time outside them is ``implausible_time``."""
    if not isinstance(obj, dict):
        raise InvalidMessage("bad_json", "message must be a JSON object")
    check_encodable(obj)
    msg_id = obj.get("id")
    if msg_id is None or (isinstance(msg_id, str) and not msg_id.strip()):
        raise InvalidMessage("missing_field", "id is required")
    if not isinstance(msg_id, str | int) or isinstance(msg_id, bool):
        raise InvalidMessage("bad_field", "id must be a string or integer")
    if isinstance(msg_id, int) and abs(msg_id) >= 10**MAX_ID_CHARS:  # before str(): no 4,300-digit limit hit
        raise InvalidMessage("bad_field", f"id longer than {MAX_ID_CHARS} characters")
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
    if not has_visible_text(text):
        raise InvalidMessage("empty_text", "text has no visible character (only control, format, combining or "
                                           "space characters)")
    if len(text) > max_text_chars:
        raise InvalidMessage("oversized", f"text has {len(text)} characters, limit is {max_text_chars}")
    if "published_at" not in obj:
        raise InvalidMessage("missing_field", "published_at is required")
    meta = obj.get("meta")
    if meta is None or meta == [] or meta == "":  # missing, null, or empty: PHP's json_encode writes an empty
        meta = {}  # map as []; any other non-object (0, false, a non-empty list or string) is refused
    elif not isinstance(meta, dict):
        raise InvalidMessage("bad_field", f"meta must be an object, got {type(meta).__name__}")
    lang = _optional_str(obj, "lang") or "en"
    msg = RawMessage(
        id=msg_id,
        source=_source(obj.get("source"), default_source),
        text=text,
        event_time=message_time(obj["published_at"], UTC if bounds is None else bounds.naive_zone),
        tickers=_tickers(obj.get("tickers")),
        lang=lang[:16],
        url=_optional_str(obj, "url"),
        meta=meta,
    )
    problem = None if bounds is None else bounds.violation(msg.event_time)
    if problem is not None:
        raise InvalidMessage("implausible_time", f"published_at {problem}")
    return msg


def parse_message(
    raw: bytes,
    *,
    max_message_bytes: int,
    max_text_chars: int,
    default_source: SourceKind | None = None,
    bounds: EventTimeBounds | None = None,
) -> RawMessage:
    """Decode and validate one wire message. Raises ``InvalidMessage``; never anything else."""
    if raw is None:
        raise InvalidMessage("bad_json", "empty record value (tombstone)")
    if len(raw) > max_message_bytes:
        raise InvalidMessage("oversized", f"payload has {len(raw)} bytes, limit is {max_message_bytes}")
    return message_from_dict(decode_json(raw), max_text_chars=max_text_chars, default_source=default_source,
                             bounds=bounds)


def decode_json(raw: bytes) -> Any:
    """``json.loads`` raising only ``InvalidMessage("bad_json")``: bad UTF-8, bad JSON, nesting past the
    recursion limit and integers past Python's 4,300-digit conversion limit (a ``ValueError``).

    Decoded as UTF-8 first, strictly: ``json.loads`` of bytes detects UTF-16 and UTF-32 by itself, which
    the schema does not allow. A leading UTF-8 byte-order mark is skipped (as before, in a Kafka value and
    on any line of a JSONL file alike: an editor's BOM on a file's first line keeps that line)."""
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidMessage("bad_json", f"not valid UTF-8 JSON: {exc}"[:200]) from exc


def guarded(parse: Callable[[], RawMessage]) -> RawMessage:
    """Runs ``parse``; an exception other than ``InvalidMessage`` (a validator bug on a shape nobody
    foresaw) becomes ``InvalidMessage("parse_error")``, logged with its traceback. The sources' last
    resort: one record is dead-lettered instead of the daemon crash-looping on its partition."""
    try:
        return parse()
    except InvalidMessage:
        raise
    except Exception as exc:
        log.error("parse_error", error=repr(exc)[:500], exc_info=True)
        raise InvalidMessage("parse_error", f"unexpected error while parsing: {exc!r}"[:500]) from exc


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
