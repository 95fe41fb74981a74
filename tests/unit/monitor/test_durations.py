from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.durations import iso_utc, non_negative_float, parse_duration_s


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600),
                                               ("1h30m", 5400), ("2d", 172_800), ("1w", 604_800), ("1.5h", 5400),
                                               (" 10M ", 600)])
def test_human_durations_are_read_as_seconds(text: str, seconds: int) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "h", "1h-30m", "-5", "-1h", "1h 30m"])
def test_malformed_or_negative_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration_s(text)


@given(st.integers(0, 10_000), st.integers(0, 59), st.integers(0, 59))
def test_hours_minutes_seconds_add_up(h: int, m: int, s: int) -> None:
    assert parse_duration_s(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


def test_negative_speed_is_rejected_and_zero_allowed() -> None:
    assert non_negative_float("0") == 0.0
    for bad in ("-1", "nan", "fast"):
        with pytest.raises(argparse.ArgumentTypeError):
            non_negative_float(bad)


def test_cli_times_are_iso_utc() -> None:
    assert iso_utc(1_793_715_000) == "2026-11-03T14:10:00Z"
    assert iso_utc(None) == "-"


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "1e999"])
def test_a_duration_or_rate_that_is_not_finite_is_a_usage_error_not_a_crash(text: str) -> None:
    """Found by a docs walk: ``--late-s inf`` ended the command with an OverflowError; ``--speed inf`` ran."""
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration_s(text)
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative_float(text)
