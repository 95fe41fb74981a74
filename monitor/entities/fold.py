"""Text as it is matched, not as it is stored: one spelling for the same letters.

Copies of one story and mentions of one company arrive with the same words written differently: format
characters (Unicode category Cf: zero-width space, soft hyphen, BOM, direction marks) inside words,
compatibility forms (fullwidth letters, ligatures, composed and decomposed accents), HTML entities left
by a scraper (``AT&amp;T``), curly apostrophes (U+2019 in ``Macy's``), Unicode hyphens (the non-breaking
hyphen U+2011 that word processors put in ``T-Mobile``, an en dash U+2013 in ``Coca-Cola``). The entity
linker and the novelty shingler match on ``fold(text)``; the message text itself is stored, classified and
shown unchanged (nothing maps an offset in the folded text back to it). Case is kept (the linker is case
sensitive); the trade mark signs U+2122 and U+2120 become a space (NFKC would glue "TM" to the name before
them).
"""

from __future__ import annotations

import html
import re
import sys
import unicodedata
from collections.abc import Callable
from functools import cache
from html.entities import html5

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
"""Only entities closed by ``;``: ``AT&T``, ``S&P`` and ``P&G`` stay as written."""
_MARKS = re.compile(r"[\u2122\u2120]")
_APOSTROPHES = re.compile(r"[\u2018\u2019\u201b\u02bc\u2032]")
_HYPHENS = re.compile(r"[\u2010\u2011\u2012\u2013\ufe63\uff0d]")
"""Hyphens and the figure and en dashes, as ``-``; not the em dash (a pause between words) nor the minus sign."""


def _unescape(match: re.Match[str]) -> str:
    """A known entity decoded; an unknown one (``&notacompany;``) kept whole, where ``html.unescape`` would
    decode its ``&not`` prefix."""
    entity = match.group()
    if entity[1] == "#":
        return html.unescape(entity)
    return html5.get(entity[1:], entity)


def unicode_class(member: Callable[[str], bool], *, negate: bool = False) -> re.Pattern[str]:
    """One character of this Python's Unicode database for which ``member`` holds (or, ``negate``d, does not),
    as one regex class of ranges: searched at C speed, where checking each non-ASCII character in Python cost
    140 ms a megabyte (and a class of single characters, scanned one by one, 70 ms). Walks every code point
    (~80-100 ms): build it once, on first use."""
    ranges: list[list[int]] = []
    for code in range(sys.maxunicode + 1):
        if member(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    body = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(("[^" if negate else "[") + body + "]")


@cache
def _format_characters() -> re.Pattern[str]:
    """Every Cf character: ``fold`` removes them."""
    return unicode_class(lambda char: unicodedata.category(char) == "Cf")


def fold(text: str) -> str:
    """``text`` with entities decoded, compatibility forms folded (NFKC), apostrophes and hyphens straightened
    and format characters removed. Plain ASCII without ``&`` (most messages) is returned as is."""
    if "&" in text:
        text = _ENTITY.sub(_unescape, text)
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", _MARKS.sub(" ", text))
    return _format_characters().sub("", _HYPHENS.sub("-", _APOSTROPHES.sub("'", text)))
