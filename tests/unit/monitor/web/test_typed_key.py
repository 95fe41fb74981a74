"""What the console's key box makes of what a person types."""

from __future__ import annotations

import pytest

from monitor.web.console import typed_key


@pytest.mark.parametrize(("typed", "key"), [
    ("wfc", "ticker:WFC"),
    ("$wfc", "ticker:WFC"),
    ("ticker:wfc", "ticker:WFC"),
    ("ticker:brk-b", "ticker:BRK.B"),
    ("topic_ticker:earnings|wfc", "topic_ticker:earnings|WFC"),
    ("topic:earnings", "topic:earnings"),
    ("all", "all"),
    ("ticker:WFC", "ticker:WFC"),
])
def test_a_typed_key_goes_to_the_key_as_stored(typed: str, key: str) -> None:
    assert typed_key(typed) == key
