"""Tickers from message text: ``$CASHTAGS``, exchange-prefixed symbols and watchlist company names.

Pure and fast: every name and alias of the watchlist sits in one Aho-Corasick automaton
(pyahocorasick, C), so a message is scanned once whatever the size of the watchlist (thousands of
names cost about the same as ten; see benchmarks/bench_entities.py).

The rules, in order (README "Entity linking"):

- **Payload tickers** always count and come first.
- **Cashtags**: ``$`` + a letter + up to 5 more letters, optionally a class suffix (``$BRK.B``,
  ``$BF-B``), not preceded by a letter, digit or ``$`` and not followed by one: ``$AAPL``,
  ``$aapl``, ``($TSLA)`` link; ``$5``, ``$100M``, ``US$20`` and ``$AAPL2`` do not.
  With ``cashtag_scope="watchlist"`` (the default) a cashtag links only when its ticker is in the
  watchlist, the universe being monitored: a stream mentions thousands of small symbols, and every
  one would become a window key that can alert; ``"any"`` links every cashtag. A message with more
  than ``max_cashtags`` distinct cashtags is a ticker *list* (screener spam, "stocks to watch", ETF
  holdings), not news about each: none of its cashtags links.
- **Exchange-prefixed symbols**: ``NYSE:TGT``, ``NASDAQ: AAPL`` (upper case) link like cashtags.
- **Names and aliases** link when they occur with word boundaries on both sides (no letter or digit
  next to them) and with the watchlist's spelling or in all capitals (``Apple``/``APPLE``, not
  ``apple``): lower-case common words stay words. Overlapping matches keep the longest
  (``JPMorgan Chase`` wins over ``Chase``).
- **Ambiguous names** (common words and very short names, flagged in the watchlist: Target, Gap,
  Visa, Oracle, Shell...) link only with a second cue: the same ticker already present (payload,
  cashtag), the symbol in parentheses or after an exchange (``Target (TGT)``), or a company word
  within three words after or two words before it (``Inc``, ``Corp``, ``shares``, ``stock``,
  ``CEO``, ``earnings``, ``revenue``, ``guidance``, ``analysts``...).
- The result is deduplicated and capped at ``max_tickers`` (payload first, then text order).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import ahocorasick

from consumers.schema import MAX_TICKERS
from monitor.entities.watchlist import Company

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z]{0,5}(?:[.\-][A-Za-z]{1,2})?)(?![\w$])")
EXCHANGE_SYMBOL = re.compile(r"\b(?:NYSE|NASDAQ|Nasdaq|NYSEARCA|AMEX|NYSE American|OTC)\s?:\s?([A-Z][A-Z.\-]{0,9})\b")
PAREN_SYMBOL = re.compile(r"\(\s*([A-Z][A-Z.\-]{0,9})\s*\)")
_WORD = re.compile(r"[A-Za-z&]+")
CUE_WORDS = frozenset({
    "inc", "corp", "corporation", "co", "company", "plc", "ltd", "llc", "ag", "sa", "nv", "se", "group",
    "holdings", "share", "shares", "shareholders", "stock", "stocks", "investors", "ceo", "cfo", "chief",
    "executive", "earnings", "revenue", "revenues", "sales", "profit", "profits", "quarter", "quarterly",
    "results", "guidance", "outlook", "forecast", "dividend", "ipo", "analyst", "analysts", "downgrade",
    "downgrades", "upgrade", "upgrades", "nyse", "nasdaq", "listed", "buyback", "layoffs", "retailer",
    "bank", "lender", "insurer", "automaker", "chipmaker",
})
"""Words that say "a company" next to an ambiguous name (lower case, matched as whole words)."""
MAX_CASHTAGS = 4
"""More distinct cashtags than this in one message make it a ticker list (see the module docstring)."""
CUE_AFTER_WORDS = 3
CUE_BEFORE_WORDS = 2
_CUE_SPAN_CHARS = 60


@dataclass(frozen=True, slots=True)
class _Target:
    ticker: str
    ambiguous: bool


def cashtags(text: str) -> list[str]:
    """Cashtags of ``text`` in order of appearance, upper case, without the ``$``."""
    return [m.upper() for m in CASHTAG.findall(text)]


def _is_boundary(text: str, index: int) -> bool:
    return index < 0 or index >= len(text) or not text[index].isalnum()


def _has_cue_word(text: str, start: int, end: int) -> bool:
    after = _WORD.findall(text[end : end + _CUE_SPAN_CHARS])[:CUE_AFTER_WORDS]
    before = _WORD.findall(text[max(0, start - _CUE_SPAN_CHARS) : start])[-CUE_BEFORE_WORDS:]
    if after and after[0].lower() == "s" and text[end : end + 1] in "'\u2019":  # possessive: Target's CEO
        after = _WORD.findall(text[end : end + _CUE_SPAN_CHARS])[1 : CUE_AFTER_WORDS + 1]
    return any(w.lower() in CUE_WORDS for w in (*after, *before))


class EntityLinker:
    """Links tickers from text with the rules in the module docstring. Immutable after construction."""

    def __init__(
        self,
        companies: Iterable[Company],
        *,
        link_names: bool = True,
        link_cashtags: bool = True,
        max_tickers: int = MAX_TICKERS,
        max_cashtags: int = MAX_CASHTAGS,
        cashtag_scope: Literal["watchlist", "any"] = "watchlist",
    ) -> None:
        self.link_names = link_names
        self.link_cashtags = link_cashtags
        self.max_cashtags = max_cashtags
        self.cashtag_scope = cashtag_scope
        self.max_tickers = max_tickers
        self._automaton = ahocorasick.Automaton()
        targets: dict[str, list[_Target]] = {}
        companies = list(companies)
        self.universe = frozenset(c.ticker for c in companies)
        for company in companies:
            for names, ambiguous in ((company.names, False), (company.ambiguous, True)):
                for name in names:
                    for surface in {name, name.upper()}:
                        found = targets.setdefault(surface, [])
                        if all(t.ticker != company.ticker for t in found):
                            found.append(_Target(company.ticker, ambiguous))
        self.surfaces = len(targets)
        for surface, found in targets.items():
            self._automaton.add_word(surface, (len(surface), tuple(found)))
        if targets:
            self._automaton.make_automaton()

    def tickers(self, text: str, given: Iterable[str] = ()) -> tuple[str, ...]:
        """``given`` (payload tickers) plus every ticker the text names, deduplicated and capped."""
        out: dict[str, None] = dict.fromkeys(given)
        if self.link_cashtags:
            symbols = dict.fromkeys([*cashtags(text), *EXCHANGE_SYMBOL.findall(text)])
            if len(symbols) <= self.max_cashtags:
                out.update(dict.fromkeys(s for s in symbols if self.cashtag_scope == "any" or s in self.universe))
        if self.link_names and self.surfaces:
            out.update(dict.fromkeys(self._names(text, out)))
        return tuple(list(out)[: self.max_tickers])

    def _spans(self, text: str) -> list[tuple[int, int, tuple[_Target, ...]]]:
        """Whole-word matches, overlaps resolved to the longest (leftmost among equals), in text order."""
        found: list[tuple[int, int, tuple[_Target, ...]]] = []
        for last, (length, targets) in self._automaton.iter(text):
            start, end = last - length + 1, last + 1
            if _is_boundary(text, start - 1) and _is_boundary(text, end):
                found.append((start, end, targets))
        if len(found) <= 1:
            return found
        found.sort(key=lambda s: (s[0] - s[1], s[0]))
        # kept spans never overlap, so in start order a new span need only be checked against its two
        # neighbours: O(k log k), where comparing with every kept span was O(k^2) (a hostile "GE GE GE ..."
        # of 10,000 characters took 0.7 s)
        kept: list[tuple[int, int, tuple[_Target, ...]]] = []
        starts: list[int] = []
        for span in found:
            at = bisect.bisect_right(starts, span[0])
            if (at and kept[at - 1][1] > span[0]) or (at < len(kept) and kept[at][0] < span[1]):
                continue
            starts.insert(at, span[0])
            kept.insert(at, span)
        return kept

    def _names(self, text: str, known: dict[str, None]) -> list[str]:
        linked: list[str] = []
        symbols: set[str] | None = None
        for start, end, targets in self._spans(text):
            for target in targets:
                if not target.ambiguous or target.ticker in known:
                    linked.append(target.ticker)
                    continue
                if symbols is None:
                    symbols = set(PAREN_SYMBOL.findall(text))
                if target.ticker in symbols or _has_cue_word(text, start, end):
                    linked.append(target.ticker)
        return linked
