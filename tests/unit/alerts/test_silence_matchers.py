"""A silence must be able to match a window key: ``TSLA``, ``ticker:tsla`` and ``ticker:`` were accepted and
muted nothing, which at 3 a.m. looks exactly like a silence that works (found by review)."""

from __future__ import annotations

import pytest

from alerts.silences import matcher_problem


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
