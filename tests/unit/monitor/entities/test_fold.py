from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.entities.fold import fold

FULLWIDTH_TESLA = "\uff34\uff45\uff53\uff4c\uff41"


@pytest.mark.parametrize(("text", "expected"), [
    ("Tes\u200bla recalls", "Tesla recalls"),
    ("Tes\u00adla\u2060 recalls\ufeff", "Tesla recalls"),
    (f"{FULLWIDTH_TESLA} recalls", "Tesla recalls"),
    ("Este\u0301e Lauder", "Est\u00e9e Lauder"),
    ("AT&amp;T and P&amp;G", "AT&T and P&G"),
    ("Macy\u2019s and Visa\u02bcs", "Macy's and Visa's"),
    ("Apple\u2122 shares", "Apple  shares"),
])
def test_the_same_letters_written_differently_fold_to_one_spelling(text: str, expected: str) -> None:
    assert fold(text) == expected


@pytest.mark.parametrize("text", ["AT&T, S&P 500, J&J", "M&A &notanentity; & more", "R&D &c"])
def test_ampersands_that_are_not_closed_entities_are_kept(text: str) -> None:
    assert fold(text) == text


def test_plain_ascii_is_returned_as_is() -> None:
    text = "Apple shares fall after iPhone recall"
    assert fold(text) is text


def test_case_is_kept() -> None:
    assert fold("\uff21PPLE and \uff41pple") == "APPLE and apple"


@given(st.text(max_size=200))
def test_folded_text_holds_no_format_characters(text: str) -> None:
    assert not any(unicodedata.category(c) == "Cf" for c in fold(text))


@pytest.mark.parametrize("hyphen", ["\u2010", "\u2011", "\u2012", "\u2013", "\ufe63", "\uff0d"])
def test_unicode_hyphens_fold_to_the_ascii_hyphen(hyphen: str) -> None:
    assert fold(f"T{hyphen}Mobile and Coca{hyphen}Cola") == "T-Mobile and Coca-Cola"


def test_the_em_dash_and_the_minus_sign_are_kept() -> None:
    assert fold("Shares fall \u2014 again, \u22125%") == "Shares fall \u2014 again, \u22125%"
