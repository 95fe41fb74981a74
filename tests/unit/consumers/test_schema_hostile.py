"""Hostile input never escapes the validator as anything but ``InvalidMessage`` (issue 10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.schema import InvalidMessage, guarded, message_from_dict, message_to_dict, parse_message
from monitor.config import ConfigError, load_settings
from monitor.time_bounds import EventTimeBounds
from monitor.types import RawMessage
from tests.strategies import MAX_MESSAGE_BYTES, MAX_TEXT_CHARS, any_payloads, invalid_messages, valid_payloads

LIMITS = {"max_message_bytes": MAX_MESSAGE_BYTES, "max_text_chars": MAX_TEXT_CHARS}
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BOUNDS = EventTimeBounds(max_future_s=3600, clock=NOW.timestamp)
REASONS = {"bad_json", "bad_encoding", "missing_field", "bad_field", "bad_timestamp", "implausible_time",
           "oversized", "empty_text"}


def _wire(**fields: object) -> bytes:
    base: dict[str, object] = {"id": "m1", "source": "news", "text": "Acme beats",
                               "published_at": "2026-11-24T11:00:00Z"}
    base.update(fields)
    return json.dumps(base).encode()


def _reason(raw: bytes, bounds: EventTimeBounds | None = None) -> str:
    with pytest.raises(InvalidMessage) as info:
        parse_message(raw, **LIMITS, bounds=bounds)
    return info.value.reason


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "9999-12-31T23:59:00Z",
                                   "0001-01-01T00:00:00Z", "2100-01-02T00:00:00Z"])
def test_iso_times_that_overflow_or_leave_1970_to_2100_are_bad_timestamps(value: str) -> None:
    assert _reason(_wire(published_at=value)) == "bad_timestamp"


def test_a_400_digit_integer_published_at_is_a_bad_timestamp_not_an_overflow() -> None:
    raw = b'{"id": "a", "source": "news", "text": "x", "published_at": 1' + b"0" * 400 + b"}"
    assert _reason(raw) == "bad_timestamp"


@pytest.mark.parametrize("field", ["id", "published_at", "text"])
def test_integers_past_the_4300_digit_limit_are_bad_json(field: str) -> None:
    raw = _wire(**{field: "@"}).replace(b'"@"', b"9" * 5_000)
    assert _reason(raw, BOUNDS) == "bad_json"


def test_a_long_integer_id_is_refused_before_it_is_converted_to_text() -> None:
    obj = {"id": 10**5_000, "source": "news", "text": "x", "published_at": 1_764_000_000}
    with pytest.raises(InvalidMessage) as info:
        message_from_dict(obj, max_text_chars=100)
    assert info.value.reason == "bad_field"


@pytest.mark.parametrize("raw", [
    b'{"id": "a", "source": "news", "text": "x\\ud800", "published_at": 1764000000}',
    b'{"id": "\\udfff", "source": "news", "text": "x", "published_at": 1764000000}',
    b'{"id": "a", "source": "news", "text": "x", "tickers": ["AC\\ud83d"], "published_at": 1764000000}',
    b'{"id": "a", "source": "news", "text": "x", "meta": {"\\ud800": 1}, "published_at": 1764000000}',
    b'{"id": "a", "source": "news", "text": "x", "url": "https://x/\\ud800", "published_at": 1764000000}',
])
def test_lone_surrogates_anywhere_are_bad_encoding(raw: bytes) -> None:
    assert _reason(raw) == "bad_encoding"


def test_a_surrogate_pair_escape_is_a_valid_character() -> None:
    raw = b'{"id": "a", "source": "news", "text": "down \\ud83d\\udcc9", "published_at": 1764000000}'
    assert parse_message(raw, **LIMITS).text == "down \U0001f4c9"


def test_junk_nested_past_the_limit_is_a_bad_field() -> None:
    raw = _wire(meta={"x": "@"}).replace(b'"@"', b"[" * 100 + b"]" * 100)
    assert _reason(raw) == "bad_field"


def test_an_overlong_ticker_is_a_bad_field() -> None:
    assert _reason(_wire(tickers=["A" * 33])) == "bad_field"


def test_event_time_beyond_max_future_s_is_implausible_and_names_the_setting() -> None:
    ahead = (NOW + timedelta(seconds=3601)).isoformat()
    with pytest.raises(InvalidMessage) as info:
        parse_message(_wire(published_at=ahead), **LIMITS, bounds=BOUNDS)
    assert info.value.reason == "implausible_time" and "source.max_future_s=3600" in info.value.detail
    edge = (NOW + timedelta(seconds=3600)).isoformat()
    assert parse_message(_wire(published_at=edge), **LIMITS, bounds=BOUNDS).event_time == NOW + timedelta(hours=1)


def test_event_time_before_min_event_time_is_implausible_and_names_the_setting() -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(_wire(published_at="1999-12-31T23:59:59Z"), **LIMITS, bounds=BOUNDS)
    assert info.value.reason == "implausible_time" and "source.min_event_time=2000-01-01" in info.value.detail
    assert parse_message(_wire(published_at="2000-01-01T00:00:00Z"), **LIMITS, bounds=BOUNDS)


def test_bounds_off_accept_old_history_and_far_future() -> None:
    off = EventTimeBounds(max_future_s=0, min_event_time=None, clock=NOW.timestamp)
    for value in ("1985-06-01T00:00:00Z", "2090-01-01T00:00:00Z"):
        assert parse_message(_wire(published_at=value), **LIMITS, bounds=off)


def test_time_bounds_come_from_the_source_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_SOURCE__MAX_FUTURE_S", "60")
    monkeypatch.setenv("MONITOR_SOURCE__MIN_EVENT_TIME", "1990-01-01T00:00:00")
    bounds = EventTimeBounds.from_settings(load_settings().source, clock=NOW.timestamp)
    assert bounds.max_future_s == 60 and bounds.min_event_time == datetime(1990, 1, 1, tzinfo=UTC)
    monkeypatch.setenv("MONITOR_SOURCE__MIN_EVENT_TIME", "")
    assert load_settings().source.min_event_time is None
    monkeypatch.setenv("MONITOR_SOURCE__MAX_FUTURE_S", "-1")
    with pytest.raises(ConfigError, match=r"source\.max_future_s"):
        load_settings()


def test_an_unforeseen_validator_error_becomes_a_parse_error() -> None:
    def broken() -> RawMessage:
        raise KeyError("surprise")

    with pytest.raises(InvalidMessage) as info:
        guarded(broken)
    assert info.value.reason == "parse_error" and "surprise" in info.value.detail


def _assert_sane(msg: RawMessage) -> None:
    """What every accepted message guarantees downstream (Redis keys, tokenizers, dead letters)."""
    assert msg.text.strip() and len(msg.text) <= MAX_TEXT_CHARS
    assert 0 < len(msg.id) <= 256 and all(len(t) <= 32 for t in msg.tickers)
    json.dumps(message_to_dict(msg), ensure_ascii=False).encode("utf-8")  # every string is valid UTF-8
    assert BOUNDS.min_event_time is not None
    assert BOUNDS.min_event_time <= msg.event_time <= NOW + timedelta(seconds=BOUNDS.max_future_s)


@given(any_payloads(NOW.timestamp()))
def test_any_payload_raises_only_invalid_message_or_gives_a_sane_message(raw: bytes) -> None:
    try:
        msg = parse_message(raw, **LIMITS, bounds=BOUNDS)
    except InvalidMessage as exc:
        assert exc.reason in REASONS
        return
    _assert_sane(msg)


@given(invalid_messages(NOW.timestamp()))
def test_every_hostile_shape_is_rejected_with_a_reason(raw: bytes) -> None:
    assert _reason(raw, BOUNDS) in REASONS


@given(valid_payloads(NOW.timestamp()))
def test_odd_but_legal_messages_are_accepted(raw: bytes) -> None:
    _assert_sane(parse_message(raw, **LIMITS, bounds=BOUNDS))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_with_bounds_raise_only_invalid_message(raw: bytes) -> None:
    try:
        _assert_sane(parse_message(raw, **LIMITS, bounds=BOUNDS))
    except InvalidMessage as exc:
        assert exc.reason in REASONS


@pytest.mark.parametrize("text", [
    "\u200b\u200c\u200d\u2060\ufeff",  # zero-width space, joiners, word joiner, BOM
    "\u202e\u202c", "\u202a\u202b\u202d",  # direction overrides and embeddings
    "\x00\x01\x7f", "\x1b\x00 \x08",  # control characters only
    "\u0301\u0302\u20dd", " \u0301 ",  # combining and enclosing marks only
    "\u3164\u115f", "\u00ad\u200e\u2060\u3000",  # Hangul fillers; soft hyphen, LRM, ideographic space
])
def test_text_of_only_invisible_characters_is_empty_text(text: str) -> None:
    """Before, zero-width, direction, control or combining characters alone were accepted and counted (in
    the ACME volume when the payload named ACME), although they are empty to a reader and to ``fold``."""
    with pytest.raises(InvalidMessage) as info:
        parse_message(_wire(text=text, tickers=["ACME"]), **LIMITS)
    assert info.value.reason == "empty_text" and "visible" in info.value.detail


@pytest.mark.parametrize("text", ["\u200bAcme", "\u202eAcme falls\u202c", "\x00x", "e\u0301", "\u0301e", "\U0001f4c9",
                                  "\u200d\u05e9\u05dc\u05d5\u05dd", "\u4e0a\u6da8", "\ue000"])
def test_text_with_a_visible_character_among_invisible_ones_is_accepted_unchanged(text: str) -> None:
    assert parse_message(_wire(text=text), **LIMITS).text == text


@pytest.mark.parametrize("meta", [0, False, 1, "x", [1, 2], [{}]])
def test_a_meta_that_is_not_an_object_is_a_bad_field_even_when_falsy(meta: object) -> None:
    """Before, ``0`` and ``false`` became ``{}`` silently while ``[1, 2]`` was refused."""
    with pytest.raises(InvalidMessage) as info:
        parse_message(_wire(meta=meta), **LIMITS)
    assert info.value.reason == "bad_field" and "meta" in info.value.detail


@pytest.mark.parametrize("meta", [[], ""])
def test_an_empty_list_or_string_meta_is_an_empty_object_as_phps_json_encode_writes_an_empty_map(
    meta: object,
) -> None:
    """Found by review: ``json_encode([])`` is ``[]``; such a producer had every message dead-lettered."""
    assert parse_message(_wire(meta=meta), **LIMITS).meta == {}


def test_a_null_or_missing_meta_is_an_empty_object() -> None:
    assert parse_message(_wire(meta=None), **LIMITS).meta == {}
    assert parse_message(_wire(), **LIMITS).meta == {}
    assert parse_message(_wire(meta={"a": [0]}), **LIMITS).meta == {"a": [0]}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_json_in_utf16_or_utf32_is_bad_json(encoding: str) -> None:
    """``json.loads`` of bytes detects UTF-16/32 by itself; the schema (README) allows UTF-8 only."""
    raw = _wire().decode().encode(encoding)
    assert _reason(raw) == "bad_json"


def test_a_leading_utf8_byte_order_mark_is_skipped_as_in_a_jsonl_file() -> None:
    """Kept as before (``json.loads`` skipped it): an editor's BOM on a file's first line, or on a Kafka
    value, does not lose the message. A second BOM is not skipped."""
    bom = "\ufeff".encode()
    assert parse_message(bom + _wire(), **LIMITS).text == "Acme beats"
    assert _reason(bom + bom + _wire()) == "bad_json"
