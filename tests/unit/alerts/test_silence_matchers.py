"""A silence must be able to match a window key: ``TSLA``, ``ticker:tsla`` and ``ticker:`` were accepted and
muted nothing, which at 3 a.m. looks exactly like a silence that works (found by review)."""

from __future__ import annotations

import pytest

from alerts.silences import create_silence, matcher_problem
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
    ("topic:\n\r\u202e", "U+000A (a control character)"), ("ticker:TS LA", "U+0020 (a space)"),
    ("ticker:TSLA\u202e", "U+202E (a format character)"), ("ticker:TS\u00a0LA", "U+00A0 (a space)"),
    ("topic:earn\u200bings", "U+200B (a format character)"), ("ticker:TS\tLA", "U+0009 (a control character)"),
])
async def test_matchers_with_whitespace_control_or_format_characters_are_refused(matcher: str, shown: str) -> None:
    # they were stored, muted nothing and showed in listings as something else (U+202E reverses the text after it)
    message = await _refusal(matcher)
    assert f"--matcher {matcher!r} would mute nothing: it holds {shown}" in message
    assert "no spaces, control or format characters" in message


async def test_a_star_anywhere_but_the_end_is_refused() -> None:
    assert "'*' only works at the end" in await _refusal("ticker:*X")
