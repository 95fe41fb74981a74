from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from consumers.schema import TICKER, InvalidMessage, has_visible_text, message_to_dict, normalise_ticker, parse_message
from monitor.types import SourceKind

LIMITS = {"max_message_bytes": 4_000, "max_text_chars": 1_000}


def _wire(**fields: object) -> bytes:
    base: dict[str, object] = {
        "id": "m1", "source": "news", "text": "Acme beats estimates",
        "published_at": "2026-11-24T14:03:00Z", "tickers": ["acme"],
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_valid_message_takes_event_time_from_payload_and_normalises_tickers() -> None:
    msg = parse_message(_wire(tickers=["$acme", "ACME", "bz"]), **LIMITS)
    assert msg.event_time == datetime(2026, 11, 24, 14, 3, tzinfo=UTC)
    assert msg.tickers == ("ACME", "BZ")
    assert msg.source is SourceKind.NEWS


def test_payload_tickers_get_one_spelling_per_symbol() -> None:
    raw = _wire(tickers=["$BRK-B", "brk/b", "BRK.B", " $ aapl ", "\uff21\uff21\uff30\uff2c", "AAPL\u200b", "bf-b"])
    assert parse_message(raw, **LIMITS).tickers == ("BRK.B", "AAPL", "BF.B")


@pytest.mark.parametrize(("raw", "ticker"), [
    ("NASDAQ:AAPL", "AAPL"), ("nyse: $brk-b", "BRK.B"), ("LSE:VOD", "VOD"), ("NYSE American:FOO", "FOO"),
    ("AAPL:US", "AAPL"), ("VOD:LN", "VOD"), ("7203:JP", "7203"), ("BRK.B:US", "BRK.B"),
    ("XETR:SAP", "SAP"), ("CME:ES", "ES"), ("NYMEX:CL", "CL"), ("OTCMKTS:TCEHY", "TCEHY"), ("FX:EURUSD", "EURUSD"),
    ("D05:SP", "D05"), ("SP:SPX", "SPX"), ("ICE:US", "ICE"), ("CME:US", "CME"), ("NYSE:IT", "IT"),
    ("NYSE:CP", "CP"), ("NASDAQ:LI", "LI"), ("TSX:CP", "CP"),
])
def test_an_exchange_prefix_or_a_country_suffix_is_dropped_from_a_ticker(raw: str, ticker: str) -> None:
    """``AAPL:US`` became ``US`` in a CSV cell (every US stock one key) and was dropped in a payload; one rule
    now serves payloads, CSV cells, cashtags and the watchlist (found by review)."""
    assert normalise_ticker(raw) == ticker
    assert parse_message(_wire(tickers=[raw]), **LIMITS).tickers == (ticker,)


@pytest.mark.parametrize("raw", ["AAPL:", ":US", "A:B", "FOO:BAR", "NYSE:", "X:Y:ZZ", "AAPL:USA"])
def test_a_ticker_with_any_other_colon_is_kept_as_written_and_so_dropped(raw: str) -> None:
    assert normalise_ticker(raw) == raw.upper()
    assert parse_message(_wire(tickers=["ACME", raw]), **LIMITS).tickers == ("ACME",)


@pytest.mark.parametrize("blank", ["$", "$$", " ", "\n", "\u200b"])
def test_a_blank_payload_ticker_is_dropped(blank: str) -> None:
    assert parse_message(_wire(tickers=[blank, "acme"]), **LIMITS).tickers == ("ACME",)


@pytest.mark.parametrize("bad", ["AAPL US Equity", "a,b", "X" * 17, "\u0130", ".B", "T|X", "A:B", "{AB}"])
def test_a_payload_ticker_that_is_not_a_symbol_is_dropped_and_the_message_kept(bad: str) -> None:
    """A dead letter for one odd ticker lost the message for every key (found by a regression review)."""
    with capture_logs() as logs:
        msg = parse_message(_wire(tickers=["ACME", bad]), **LIMITS)
    assert msg.tickers == ("ACME",)
    assert [e["event"] for e in logs] in ([], ["ticker_dropped"])  # one warning a minute at most


@given(st.text(max_size=12))
def test_normalising_a_ticker_twice_changes_nothing(raw: str) -> None:
    once = normalise_ticker(raw)
    assert normalise_ticker(once) == once or not TICKER.fullmatch(once)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_764_000_000, datetime.fromtimestamp(1_764_000_000, tz=UTC)),
        (1_764_000_000_000, datetime.fromtimestamp(1_764_000_000, tz=UTC)),
        ("2026-11-24T15:03:00+01:00", datetime(2026, 11, 24, 14, 3, tzinfo=UTC)),
        ("2026-11-24T14:03:00", datetime(2026, 11, 24, 14, 3, tzinfo=UTC)),
    ],
)
def test_published_at_accepts_epoch_seconds_millis_and_iso_offsets(value: object, expected: datetime) -> None:
    assert parse_message(_wire(published_at=value), **LIMITS).event_time == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (_wire(text=...), "missing_field"),
        (_wire(text="   "), "empty_text"),
        (_wire(text=42), "bad_field"),
        (_wire(id=...), "missing_field"),
        (_wire(published_at=...), "missing_field"),
        (_wire(published_at="yesterday"), "bad_timestamp"),
        (_wire(published_at=True), "bad_timestamp"),
        (_wire(published_at=-5), "bad_timestamp"),
        (_wire(source="tweet"), "bad_field"),
        (_wire(tickers=[1, 2]), "bad_field"),
        (_wire(text="x" * 1_001), "oversized"),
        (b" " * 4_001, "oversized"),
    ],
)
def test_malformed_message_raises_invalid_message_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(raw, **LIMITS)
    assert info.value.reason == reason


def test_missing_source_uses_the_topic_default() -> None:
    msg = parse_message(_wire(source=...), **LIMITS, default_source=SourceKind.COMMENT)
    assert msg.source is SourceKind.COMMENT


@given(st.binary(max_size=600))
def test_arbitrary_bytes_either_parse_or_raise_invalid_message(raw: bytes) -> None:
    try:
        parse_message(raw, **LIMITS)
    except InvalidMessage as exc:
        assert exc.reason in {"bad_json", "missing_field", "bad_field", "bad_timestamp", "oversized", "empty_text"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["id", "source", "text", "published_at", "tickers", "lang", "url", "meta"]),
                       json_values))
def test_arbitrary_json_objects_never_raise_anything_but_invalid_message(obj: dict[str, object]) -> None:
    with contextlib.suppress(InvalidMessage):
        parse_message(json.dumps(obj).encode(), **LIMITS)


@given(
    st.text(min_size=1, max_size=200).filter(lambda t: t.strip() == t and has_visible_text(t)),
    st.lists(st.from_regex(r"[A-Z]{1,5}", fullmatch=True), max_size=4, unique=True),
    st.integers(min_value=0, max_value=4_000_000_000),
)
def test_wire_roundtrip_preserves_message(text: str, tickers: list[str], epoch_s: int) -> None:
    raw = _wire(text=text, tickers=tickers, published_at=epoch_s)
    msg = parse_message(raw, **LIMITS)
    again = parse_message(json.dumps(message_to_dict(msg)).encode(), **LIMITS)
    assert again == msg


@pytest.mark.parametrize("symbol", ["^GSPC", "ES_F", "EURUSD=X", "BRK.B", "BTC-USD"])
def test_index_and_futures_symbols_are_tickers_not_bad_fields(symbol: str) -> None:
    assert parse_message(_wire(tickers=[symbol.lower()]), **LIMITS).tickers == (symbol,)


@pytest.mark.parametrize("quoted", ["1389571814", "1389571814000", " 1389571814.5 "])
def test_a_quoted_epoch_is_a_bad_timestamp_that_says_epochs_must_be_json_numbers(quoted: str) -> None:
    """Found by review: the same value a CSV cell accepts was refused in JSON as "not a valid ISO-8601 time",
    with no word on why."""
    with pytest.raises(InvalidMessage, match="epoch seconds/milliseconds must be a JSON number") as info:
        parse_message(_wire(published_at=quoted), **LIMITS)
    assert info.value.reason == "bad_timestamp"


def test_a_text_time_that_is_not_digits_gets_no_epoch_hint() -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(_wire(published_at="yesterday"), **LIMITS)
    assert "JSON number" not in info.value.detail


def _published(value: object, zone: str = "UTC") -> datetime:
    from monitor.config import SourceSettings
    from monitor.time_bounds import EventTimeBounds

    bounds = EventTimeBounds.from_settings(SourceSettings(naive_time_zone=zone), clock=lambda: 2e9)
    raw = json.dumps({"id": "1", "source": "news", "text": "hello", "published_at": value}).encode()
    return parse_message(raw, max_message_bytes=10_000, max_text_chars=1000, bounds=bounds).event_time


@pytest.mark.parametrize("value", ["2026-11-24", "2026-W48-2", "2026-11-24T14", "20261124", " 2026-11-24",
                                   " 2026-11-24T14"])
def test_a_published_at_without_a_time_of_day_is_a_bad_timestamp_not_midnight(value: str) -> None:
    """Found by review: a feed dated by day parsed as midnight, collapsed into one bucket a day or was judged late."""
    with pytest.raises(InvalidMessage) as err:
        _published(value)
    assert err.value.reason == "bad_timestamp"
    assert ("JSON number" if value.strip().isdigit() else "no time of day") in err.value.detail


@pytest.mark.parametrize("value", ["2026-11-24T14:03Z", "2026-11-24 14:03:00+00:00", "20261124T1403Z"])
def test_times_of_day_in_every_iso_spelling_still_parse(value: str) -> None:
    assert _published(value) == datetime(2026, 11, 24, 14, 3, tzinfo=UTC)


@pytest.mark.parametrize("value", ["2026-11-24T14:03:00z", "2026-11-24t14:03:00.0z"])
def test_a_lower_case_z_is_utc_as_rfc_3339_allows(value: str) -> None:
    """Found by review: refused as "not a valid ISO-8601 time"."""
    assert _published(value) == datetime(2026, 11, 24, 14, 3, tzinfo=UTC)


@pytest.mark.parametrize("value", ["2026-12-31T23:59:60Z", "2026-12-31T23:59:60.5Z", "2026-12-31T18:59:60-05:00",
                                   "20261231T235960Z"])
def test_a_leap_second_is_read_as_the_last_microsecond_before_it(value: str) -> None:
    """Found by review: ``23:59:60`` (RFC 3339 allows it) was refused as "not a valid ISO-8601 time"."""
    assert _published(value) == datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_published_at_says_it_is_empty(value: str) -> None:
    """Found by review: it said "it has no time of day"."""
    with pytest.raises(InvalidMessage, match="published_at is empty") as err:
        _published(value)
    assert err.value.reason == "bad_timestamp"


@pytest.mark.parametrize(("value", "unit", "divisor"), [
    (1_764_554_400_000_000, "microseconds", "1,000"), (1.7645544e15, "microseconds", "1,000"),
    (1_764_554_400_000_000_000, "nanoseconds", "1,000,000")])
def test_an_epoch_in_micro_or_nanoseconds_says_so_and_what_to_divide_by(value: float, unit: str, divisor: str) -> None:
    """Found by review: a microsecond epoch said "epoch integer of 51 bits out of range"."""
    with pytest.raises(InvalidMessage) as err:
        _published(value)
    assert err.value.reason == "bad_timestamp"
    assert f"looks like {unit}" in err.value.detail and f"divide it by {divisor}" in err.value.detail


def test_an_epoch_too_large_for_any_unit_is_out_of_range() -> None:
    with pytest.raises(InvalidMessage, match="epoch integer of 100 bits out of range"):
        _published(10**30)


def test_a_time_without_an_offset_is_read_in_source_naive_time_zone_and_logged_once() -> None:
    import consumers.schema as schema

    schema._naive_seen.clear()
    with capture_logs() as logs:
        assert _published("2026-11-24T09:03:00", "America/New_York") == datetime(2026, 11, 24, 14, 3, tzinfo=UTC)
        assert _published("2026-07-24T09:03:00", "America/New_York") == datetime(2026, 7, 24, 13, 3, tzinfo=UTC)
        assert _published("2026-11-24T09:03:00") == datetime(2026, 11, 24, 9, 3, tzinfo=UTC)
    [warning] = [e for e in logs if e["event"] == "published_at_without_offset"]
    assert "source.naive_time_zone" in warning["fix"]
    assert _published("2026-11-24T09:03:00+01:00", "America/New_York") == datetime(2026, 11, 24, 8, 3, tzinfo=UTC)


def test_an_unknown_naive_time_zone_is_a_config_error_naming_the_key() -> None:
    from pydantic import ValidationError

    from monitor.config import SourceSettings

    with pytest.raises(ValidationError, match="naive_time_zone"):
        SourceSettings(naive_time_zone="Mars/Olympus")
