"""What the console's key box makes of what a person types."""

from __future__ import annotations

import pytest

from monitor.web.console import typed_key, typed_keys


@pytest.mark.parametrize(("typed", "key"), [
    ("wfc", "ticker:WFC"),
    ("$wfc", "ticker:WFC"),
    ("ticker:wfc", "ticker:WFC"),
    ("ticker:brk-b", "ticker:BRK.B"),
    ("topic_ticker:earnings|wfc", "topic_ticker:earnings|WFC"),
    ("topic:earnings", "topic:earnings"),
    ("all", "all"),
    ("ticker:WFC", "ticker:WFC"),
    # found by review: the kind prefix was matched in one case only, and topics were not lower-cased
    ("TOPIC:earnings", "topic:earnings"),
    ("Topic:Earnings", "topic:earnings"),
    ("Ticker:wfc", "ticker:WFC"),
    ("ALL", "all"),
    ("topic_ticker:General_News|wfc", "topic_ticker:general_news|WFC"),
])
def test_a_typed_key_goes_to_the_key_as_stored(typed: str, key: str) -> None:
    assert typed_key(typed) == key


def test_a_bare_word_may_be_a_topic_before_it_is_a_ticker() -> None:
    """The console goes to the first of these with data: ``earnings`` went to ``ticker:EARNINGS`` though
    ``topic:earnings`` had data (found by review)."""
    assert typed_keys("earnings") == ["topic:earnings", "ticker:EARNINGS"]
    assert typed_keys("$wfc") == ["ticker:WFC"]
