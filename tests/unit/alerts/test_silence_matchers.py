"""A silence must be able to match a window key: ``TSLA``, ``ticker:tsla`` and ``ticker:`` were accepted and
muted nothing, which at 3 a.m. looks exactly like a silence that works (found by review)."""

from __future__ import annotations

import pytest

from alerts.silences import create_silence, matcher_character_problem, matcher_problem
from alerts.state import MemoryAlertStateStore


@pytest.mark.parametrize("matcher", ["all", "ticker:TSLA", "ticker:TS*", "ticker:*", "topic:*", "topic:earnings",
                                     "topic_ticker:earnings|TSLA", "topic_ticker:earnings|*", "ticker*"])
def test_matchers_that_can_match_a_key_are_accepted(matcher: str) -> None:
    assert matcher_problem(matcher) is None


@pytest.mark.parametrize(("matcher", "hint"), [
    ("TSLA", "did you mean ticker:TSLA?"), ("ticker:tsla", "did you mean ticker:TSLA?"),
    ("topic_ticker:earnings|tsla", "did you mean topic_ticker:earnings|TSLA?"), ("ticker:", "end it with '*'"),
    ("nonsense", "window keys are all, ticker:SYMBOL"),
    ("topic:earnings|TSLA", "did you mean topic_ticker:earnings|TSLA?"),
    ("ticker:TS LA", "tickers have no spaces -- did you mean ticker:TSLA?"),
    ("topic_ticker:M&A Investments|B A", "did you mean topic_ticker:M&A Investments|BA?"),
])
def test_matchers_that_can_match_no_key_are_refused_with_the_likely_one(matcher: str, hint: str) -> None:
    problem = matcher_problem(matcher)
    assert problem is not None and hint in problem


async def _refusal(matcher: str) -> str:
    store = MemoryAlertStateStore()
    with pytest.raises(ValueError, match="--matcher") as caught:
        await create_silence(store, matcher, 3600, 1_000_000)
    assert await store.list_silences() == []
    return str(caught.value)


@pytest.mark.parametrize(("matcher", "fix"), [
    ("t*", "(ticker:*, topic:*, topic_ticker:*)"), ("to*", "(topic:*, topic_ticker:*)"),
    ("topic*", "(topic:*, topic_ticker:*)"),
])
async def test_a_prefix_spanning_more_than_one_kind_of_key_is_refused_naming_the_kinds(matcher: str, fix: str) -> None:
    # "t*" was stored and muted every ticker, topic and pair alert: "*" alone was refused, its near twin was not
    message = await _refusal(matcher)
    assert f"--matcher {matcher!r} would mute more than one kind of key" in message and fix in message


@pytest.mark.parametrize("matcher", ["ticker:*", "topic:*", "ticker*", "topic_*", "topic_ticker:earnings|*", "all"])
async def test_a_prefix_inside_one_kind_is_still_accepted(matcher: str) -> None:
    silence = await create_silence(MemoryAlertStateStore(), matcher, 3600, 1_000_000)
    assert silence.matcher == matcher


@pytest.mark.parametrize(("matcher", "shown"), [
    ("topic:\n\r\u202e", "U+000A (a control character)"), ("ticker:TSLA\u202e", "U+202E (a format character)"),
    ("ticker:TS\u00a0LA", "U+00A0 (a space)"), ("topic:M&A\u2028Investments", "U+2028 (a line separator)"),
    ("topic:earn\u200bings", "U+200B (a format character)"), ("ticker:TS\tLA", "U+0009 (a control character)"),
    ("topic:M&A\u3000Investments", "U+3000 (a space)"), ("topic:M&A\nInvestments", "U+000A (a control character)"),
])
async def test_matchers_with_whitespace_control_or_format_characters_are_refused(matcher: str, shown: str) -> None:
    # they were stored, muted nothing and showed in listings as something else (U+202E reverses the text after it)
    message = await _refusal(matcher)
    assert f"--matcher {matcher!r} would mute nothing: it holds {shown}" in message
    assert "no control or format characters" in message


@pytest.mark.parametrize("matcher", ["topic:M&A Investments", "topic_ticker:M&A Investments|BA", "topic:M&A In*"])
async def test_a_topic_name_with_a_plain_space_can_be_silenced(matcher: str) -> None:
    # a taxonomy may name a topic "M&A Investments" (it loads, its key is topic:M&A Investments): every space was
    # refused, so such a topic could not be silenced at all, not even from the console's pre-filled form
    silence = await create_silence(MemoryAlertStateStore(), matcher, 3600, 1_000_000)
    assert silence.matcher == matcher


@pytest.mark.parametrize("matcher", [" topic:earnings", "topic:earnings ", "ticker:TSLA "])
def test_a_plain_space_at_either_end_of_a_matcher_is_refused(matcher: str) -> None:
    assert matcher_character_problem(matcher) == (
        "it holds U+0020 (a space at an end) -- window keys have no control or format characters and no spaces "
        "but a plain one inside a topic name: type the key again")


async def test_a_star_anywhere_but_the_end_is_refused() -> None:
    assert "'*' only works at the end" in await _refusal("ticker:*X")
