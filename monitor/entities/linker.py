"""Tickers from message text: ``$CASHTAGS``, exchange-prefixed symbols and watchlist company names.

Pure and fast: every name and alias of the watchlist sits in one Aho-Corasick automaton
(pyahocorasick, C), so a message is scanned once whatever the size of the watchlist (thousands of
names cost about the same as ten; see benchmarks/bench_entities.py).

The rules, in order (README "Entity linking"):

- **Payload tickers** count and come first; with ``payload_scope="watchlist"`` only the watchlist's (the rest
  are dropped, so a spam wave of payload tickers cannot grow the window keys past the monitored universe).
- **Cashtags**: ``$`` + a letter + up to 5 more letters, optionally a class suffix (``$BRK.B``,
  ``$BF-B``), not preceded by a letter, digit or ``$`` and not followed by one: ``$AAPL``,
  ``$aapl``, ``($TSLA)`` link; ``$5``, ``$100M``, ``US$20`` and ``$AAPL2`` do not.
  With ``cashtag_scope="watchlist"`` (the default) a cashtag links only when its ticker is in the
  watchlist, the universe being monitored: a stream mentions thousands of small symbols, and every
  one would become a window key that can alert; ``"any"`` links every cashtag. A message with more
  than ``max_cashtags`` distinct cashtags is a ticker *list* (screener spam, "stocks to watch", ETF
  holdings), not news about each: none of its cashtags links.
- **Exchange-prefixed symbols**: ``NYSE:TGT``, ``NASDAQ: AAPL`` (upper case) link like cashtags; the
  exchange word itself is never a name (``AMEX: FOO`` does not link American Express).
- Symbols from every source are normalised like payload tickers (``consumers.schema.normalise_ticker``):
  ``$BRK-B``, ``$BRK/B`` and ``$brk.b`` are all ``BRK.B``.
- **Other symbols** of a watchlist company (its ``symbols``: former tickers, other share classes) count as
  its ticker, from every source: payload ``FB``, ``$FB`` and ``Facebook`` are all ``META``, ``$GOOG`` is
  ``GOOGL``, so one story is one window key, not two paging with the same numbers. They are in the
  watchlist scope of cashtags. A symbol the watchlist does not know stays as it is.
- **Names and aliases** link when they occur with word boundaries on both sides (no letter or digit
  next to them) and with the watchlist's spelling or in all capitals (``Apple``/``APPLE``, not
  ``apple``): lower-case common words stay words. Two more spellings that headlines and posts use link
  too: a name of several words with each word capitalised (``Bank Of America``) and a one-word camel-case
  name with only its first letter in capitals (``Paypal``, ``Blackrock``, ``Abbvie``). Such a spelling is
  a variant of its name (an ambiguous name's needs the same cue) and never takes a surface that a name or
  blocker has as written. Overlapping matches keep the longest (``JPMorgan Chase`` wins over ``Chase``).
- **Blockers** are phrases that contain a name but mean no company: ``MARKET_PHRASES`` below (``price
  target``, ``gap down``, ``the Dow``, ``Dow futures``...) and each company's ``blockers`` in the watchlist
  (``Amazon rainforest``, ``Citi Field``). They take part in the longest-match rule and link nothing, so
  ``Tesla Price Target`` links TSLA only. They match as written, in capitals, and capitalised.
- **Ambiguous names** (common words and very short names, flagged in the watchlist: Target, Gap,
  Visa, Oracle, Shell...) link only with a second cue: the same ticker already present (payload,
  cashtag), the symbol in parentheses or after an exchange (``Target (TGT)``), or a company word
  within three words after or two words before it in the same sentence (``Inc``, ``Corp``, ``shares``,
  ``stock``, ``CEO``, ``earnings``, ``revenue``, ``guidance``, ``analysts``...). Words about the market as
  a whole are no cue: ``stocks`` and ``investors`` ("Investors Chase AI Stocks", "Dow drops as stocks
  slide"). Every mention is judged, however many: the message's words are found once, and each mention's cue is
  then a few bisections (looking around each mention of a 10,000-character "GE GE GE ..." cost 60-80 ms).
- Matching runs on ``monitor.entities.fold`` of the text (zero-width characters, fullwidth letters, HTML
  entities, curly apostrophes, Unicode hyphens), and names and blockers are folded the same way: ``Tesla``
  with a zero-width space inside or in fullwidth letters, ``AT&amp;T``, ``Macy's`` with a curly apostrophe
  and ``T-Mobile`` with a non-breaking hyphen link. The message text itself is not changed.
- The result is deduplicated and capped at ``max_tickers`` (payload first, then text order).
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import ahocorasick

from consumers.schema import MAX_TICKERS, TICKER, normalise_ticker
from monitor.entities.fold import fold
from monitor.entities.watchlist import Company

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z]{0,5}(?:[./\-][A-Za-z]{1,2})?)(?![\w$])")
EXCHANGE_SYMBOL = re.compile(r"\b(?:NYSE|NASDAQ|Nasdaq|NYSEARCA|AMEX|NYSE American|OTC)\s?:\s?([A-Z][A-Z.\-]{0,9})\b")
PAREN_SYMBOL = re.compile(r"\(\s*([A-Z][A-Z.\-]{0,9})\s*\)")
_WORD = re.compile(r"[A-Za-z&]+")
_WORD_SPLIT = re.compile(f"({_WORD.pattern})")
"""``_WORD`` captured: ``split`` keeps the words between the gaps."""
_SENTENCE_END = re.compile(r"(?:(?<![A-Z])\.|[!?;])(?=\s|$)")
"""A full stop (not one after a capital: ``U.S.``), ``!``, ``?`` or ``;`` before a space: cues stop there."""
_STOP_CHARS = frozenset(".!?;")
CUE_WORDS = frozenset({
    "inc", "corp", "corporation", "co", "company", "plc", "ltd", "llc", "ag", "sa", "nv", "se", "group",
    "holdings", "share", "shares", "shareholders", "stock", "ceo", "cfo", "chief",
    "executive", "earnings", "revenue", "revenues", "sales", "profit", "profits", "quarter", "quarterly",
    "results", "guidance", "outlook", "forecast", "dividend", "ipo", "analyst", "analysts", "downgrade",
    "downgrades", "upgrade", "upgrades", "nyse", "nasdaq", "listed", "buyback", "layoffs", "retailer",
    "bank", "lender", "insurer", "automaker", "chipmaker",
})
"""Words that say "a company" next to an ambiguous name (lower case, matched as whole words); not
``stocks`` or ``investors``, which are about the market ("Investors Chase AI Stocks")."""
_GAP_MOVES = ("down", "up", "lower", "higher", "fill", "fills", "filled")
_DOW_MOVES = (
    "drops", "dropped", "falls", "fell", "slides", "slid", "sinks", "sank", "tumbles", "tumbled", "plunges",
    "plunged", "slumps", "slumped", "dips", "dipped", "sheds", "shed", "loses", "lost", "rises", "rose", "gains",
    "gained", "jumps", "jumped", "climbs", "climbed", "rallies", "rallied", "surges", "surged", "soars", "soared",
    "adds", "added", "closes", "closed", "ends", "ended", "opens", "opened", "hits", "down", "up", "futures",
    "industrials", "average", "index", "transports", "record",
)
MARKET_PHRASES: tuple[str, ...] = (
    "price target", "price targets", "target price", "inflation target", "profit target", "earnings target",
    "sales target", "revenue target",
    *(f"{gap} {move}" for gap in ("gap", "gaps", "gapped") for move in _GAP_MOVES), "gap-down", "gap-up",
    "the Dow", "Dow Jones", *(f"Dow {move}" for move in _DOW_MOVES),
    "chase the rally", "chase rally", "chase gains", "chase yield", "chase yields", "chase returns",
    "chase momentum", "chase the market",
)
"""Blockers every watchlist gets: market phrases around an ambiguous name that mean no company (Target,
Gap, Dow, Chase). "Dow drops" may now and then be Dow Inc.; the index is the common meaning."""
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
    """Cashtags of ``text`` in order of appearance, normalised (``$brk-b`` is ``BRK.B``), without the ``$``."""
    return [normalise_ticker(m) for m in CASHTAG.findall(text)]


def _symbol(raw: str) -> str:
    """``raw`` normalised when that gives a ticker, else as given (payload tickers are the caller's)."""
    cleaned = normalise_ticker(raw)
    return cleaned if TICKER.fullmatch(cleaned) else raw


def _capitalised(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def _headline(phrase: str) -> str:
    """Each word capitalised, the rest as written (``Bank Of America``; ``str.title`` would make ``JPMorgan``
    ``Jpmorgan`` and ``Macy's`` ``Macy'S``)."""
    return " ".join(map(_capitalised, phrase.split(" ")))


def _variants(phrase: str) -> set[str]:
    """A blocker as written, in capitals, capitalised, and in title case (headline style)."""
    return {phrase, phrase.upper(), _capitalised(phrase), _headline(phrase)}


def _name_variants(name: str) -> set[str]:
    """Spellings of a name other than as written or in capitals that still mean it: headline case for several
    words (``Bank Of America``) and, for one camel-case word, only the first letter in capitals (``Paypal``,
    ``Blackrock``: how posts write them). Not the name in lower case: ``apple`` is a fruit."""
    if " " in name:
        return {_headline(name)} - {name}
    if any(c.islower() for c in name) and any(c.isupper() for c in name[1:]):
        return {name[:1].upper() + name[1:].lower()}
    return set()


def _add(targets: dict[str, list[_Target]], surfaces: Iterable[str], target: _Target) -> None:
    """``target`` under each surface, once per ticker (the first flag wins: a name before an ambiguous one)."""
    for surface in surfaces:
        found = targets.setdefault(surface, [])
        if all(t.ticker != target.ticker for t in found):
            found.append(target)


def _is_boundary(text: str, index: int) -> bool:
    return index < 0 or index >= len(text) or not text[index].isalnum()


@dataclass(frozen=True, slots=True)
class _Words:
    """A text's words (``_WORD``) and sentence ends, found once per message so that judging a mention's cue is a
    few bisections, not a regex pass over its neighbourhood."""

    text: str
    starts: list[int]
    ends: list[int]
    cues: list[bool]
    """Whether each word, whole, is in ``CUE_WORDS``."""
    cue_starts: list[int]
    """Where each of those cue words starts (``_cue_near``'s first test)."""
    stops: list[int]
    """Where each ``_SENTENCE_END`` of the whole text is."""


def _words(text: str) -> _Words:
    """``text`` split once: gap, word, gap, word, ..., gap, so the running lengths are the words' edges."""
    pieces = _WORD_SPLIT.split(text)
    edges = list(itertools.accumulate(map(len, pieces)))
    starts = edges[0:-1:2]
    cues = list(map(CUE_WORDS.__contains__, map(str.lower, pieces[1::2])))
    return _Words(text, starts, edges[1::2], cues, list(itertools.compress(starts, cues)),
                  [m.start() for m in _SENTENCE_END.finditer(text)])


def _is_cue(words: _Words, index: int, low: int, high: int) -> bool:
    """Whether word ``index`` cut to ``text[low:high]`` is a cue word (a window cuts at most its edge words)."""
    start, end = words.starts[index], words.ends[index]
    if low <= start and end <= high:
        return words.cues[index]
    return words.text[max(start, low) : min(end, high)].lower() in CUE_WORDS


def _cue_after(words: _Words, end: int) -> bool:
    """A cue word among the first ``CUE_AFTER_WORDS`` words of ``text[end : end + _CUE_SPAN_CHARS]`` before its
    sentence ends, skipping a possessive ``'s`` ("Target's CEO")."""
    text = words.text
    if text[end : end + 1] in _STOP_CHARS and _SENTENCE_END.match(text[end : end + 2]):
        return False  # a stop right after the name ends its sentence even after a capital ("GE.")
    high = min(end + _CUE_SPAN_CHARS, len(text))
    at = bisect.bisect_left(words.stops, end)
    if at < len(words.stops) and words.stops[at] < high:
        high = words.stops[at]
    first = bisect.bisect_right(words.ends, end)  # the first word reaching past the name
    past = bisect.bisect_left(words.starts, high, first)  # the first starting past the window or the sentence
    if first < past and text.startswith("'", end) and text[words.starts[first] : min(words.ends[first], high)] in (
        "s", "S",
    ):
        first += 1
    return any(_is_cue(words, index, end, high) for index in range(first, min(past, first + CUE_AFTER_WORDS)))


def _cue_before(words: _Words, start: int) -> bool:
    """A cue word among the last ``CUE_BEFORE_WORDS`` words of ``text[start - _CUE_SPAN_CHARS : start]`` after its
    sentence's start."""
    if start == 0 or (words.text[start - 1] in _STOP_CHARS and _SENTENCE_END.match(words.text, start - 1, start)):
        return False  # a stop right before the name (the window's end counts as a space: "up.Target")
    low = max(0, start - _CUE_SPAN_CHARS)
    at = bisect.bisect_left(words.stops, start) - 1
    if at >= 0 and words.stops[at] >= low:
        low = words.stops[at] + 1
    last = bisect.bisect_left(words.starts, start)  # the words starting before the name
    return any(_is_cue(words, index, low, start)
               for index in range(last - 1, max(last - 1 - CUE_BEFORE_WORDS, -1), -1) if words.ends[index] > low)


def _has_cue_word(words: _Words, start: int, end: int) -> bool:
    """Whether a cue word is within ``CUE_AFTER_WORDS`` words after or ``CUE_BEFORE_WORDS`` before the span, in
    its sentence and within ``_CUE_SPAN_CHARS``: O(log n) on the words found once, where slicing and scanning the
    span's neighbourhood for each mention took seconds for a batch of hostile texts (found by review)."""
    return _cue_after(words, end) or _cue_before(words, start)


def _cue_near(words: _Words, start: int, end: int) -> bool:
    """Whether ``_has_cue_word`` can find a cue word: one starts within ``_CUE_SPAN_CHARS`` of the span and one is
    among the ``CUE_BEFORE_WORDS`` words before it or the ``CUE_AFTER_WORDS`` + 1 (a possessive) after it, or the
    window cuts one of those. A few bisections: a hostile "GE GE ... shares ..." judges its thousands of mentions
    at once (each looked for its cue words in the text around it, 2-3 s a source batch; found by review)."""
    at = bisect.bisect_left(words.cue_starts, start - _CUE_SPAN_CHARS)
    if at == len(words.cue_starts) or words.cue_starts[at] >= end + _CUE_SPAN_CHARS:
        return False
    starts, ends, cues = words.starts, words.ends, words.cues
    last = bisect.bisect_left(starts, start)  # the words starting before the span
    first = last + 1 if last < len(ends) and ends[last] == end else bisect.bisect_right(ends, end)  # past its end
    since, upto = max(last - CUE_BEFORE_WORDS, 0), min(first + CUE_AFTER_WORDS + 1, len(ends))
    return (True in cues[since:last] or True in cues[first:upto]
            or (since < last and (ends[last - 1] > start or starts[since] < start - _CUE_SPAN_CHARS))
            or (first < upto and (starts[first] < end or ends[upto - 1] > end + _CUE_SPAN_CHARS)))


_START_END = operator.itemgetter(0, 1)


def _longest_first(
    spans: list[tuple[int, int, tuple[_Target, ...]]],
) -> list[tuple[int, int, tuple[_Target, ...]]]:
    """Overlapping spans resolved to the longest (leftmost among equals), in text order. Kept spans never overlap,
    so in start order a new span need only be checked against its two neighbours: O(k log k), where comparing
    with every kept span was O(k^2)."""
    kept: list[tuple[int, int, tuple[_Target, ...]]] = []
    starts: list[int] = []
    for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
        at = bisect.bisect_right(starts, span[0])
        if (at and kept[at - 1][1] > span[0]) or (at < len(kept) and kept[at][0] < span[1]):
            continue
        starts.insert(at, span[0])
        kept.insert(at, span)
    return kept


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
        payload_scope: Literal["any", "watchlist"] = "any",
        blockers: Iterable[str] = MARKET_PHRASES,
    ) -> None:
        self.payload_scope = payload_scope
        self.link_names = link_names
        self.link_cashtags = link_cashtags
        self.max_cashtags = max_cashtags
        self.cashtag_scope = cashtag_scope
        self.max_tickers = max_tickers
        self._automaton = ahocorasick.Automaton()
        targets: dict[str, list[_Target]] = {}
        companies = list(companies)
        self.universe = frozenset(_symbol(c.ticker) for c in companies)
        self._ticker_of: dict[str, str] = {}
        """A company's other symbols to its ticker (a company's own ticker is never one: the first row wins)."""
        for company in companies:
            for other in map(_symbol, company.symbols):
                if other not in self.universe:
                    self._ticker_of.setdefault(other, _symbol(company.ticker))
        guessed: dict[str, list[_Target]] = {}
        for company in companies:
            ticker = _symbol(company.ticker)
            for names, ambiguous in ((company.names, False), (company.ambiguous, True)):
                for name in map(fold, names):
                    _add(targets, (name, name.upper()), _Target(ticker, ambiguous))
                    _add(guessed, _name_variants(name), _Target(ticker, ambiguous))
        phrases = (*blockers, *(b for c in companies for b in c.blockers))
        blockers_written = {v for p in phrases for v in _variants(fold(p))}
        blocked = blockers_written - targets.keys()  # a name beats its blocker
        # a guessed spelling yields to a name or blocker that has it as written
        targets.update((s, found) for s, found in guessed.items() if s not in targets and s not in blockers_written)
        self.surfaces = len(targets)
        for surface, found in targets.items():
            self._automaton.add_word(surface, (len(surface), tuple(found)))
        if targets:
            for surface in blocked:
                self._automaton.add_word(surface, (len(surface), ()))
            self._automaton.make_automaton()

    def company_ticker(self, symbol: str) -> str:
        """The watchlist ticker ``symbol`` is another symbol of (``FB`` is ``META``), else ``symbol``."""
        return self._ticker_of.get(symbol, symbol)

    def tickers(self, text: str, given: Iterable[str] = ()) -> tuple[str, ...]:
        """``given`` (payload tickers) plus every ticker the text names, deduplicated and capped."""
        out: dict[str, None] = dict.fromkeys(t for t in (self.company_ticker(_symbol(g)) for g in given)
                                             if self.payload_scope == "any" or t in self.universe)
        text = fold(text)
        exchange = list(EXCHANGE_SYMBOL.finditer(text))
        if self.link_cashtags:
            found = [*cashtags(text), *(normalise_ticker(m.group(1)) for m in exchange)]
            written = dict.fromkeys(s for s in found if TICKER.fullmatch(s))
            symbols = dict.fromkeys(self.company_ticker(s) for s in written)
            if len(written) <= self.max_cashtags:  # as written: a list of 5 symbols is a list, whoever they mean
                out.update(dict.fromkeys(s for s in symbols if self.cashtag_scope == "any" or s in self.universe))
        if self.link_names and self.surfaces:
            out.update(dict.fromkeys(self._names(text, out, {m.start() for m in exchange})))
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
        # only spans that overlap (a cluster) compete: a span overlapping no other is kept as it is, so a hostile
        # "GE GE GE ..." of 10,000 characters costs one pass, not a longest-first sort and an insert per span
        found.sort(key=_START_END)
        kept: list[tuple[int, int, tuple[_Target, ...]]] = []
        cluster = [found[0]]
        reach = found[0][1]
        for span in found[1:]:
            if span[0] >= reach:
                kept += cluster if len(cluster) == 1 else _longest_first(cluster)
                cluster = [span]
            else:
                cluster.append(span)
            if span[1] > reach:
                reach = span[1]
        kept += cluster if len(cluster) == 1 else _longest_first(cluster)
        return kept

    def _names(self, text: str, known: dict[str, None], exchanges: set[int]) -> list[str]:
        """Tickers of the name spans (blockers have none) not in ``known`` yet, skipping exchange words (``AMEX:
        FOO``). A ticker is judged until it links and the scan stops once ``max_tickers`` are found. The text's words
        are found once, when the first ambiguous span needs judging, and each span's cue is then a few bisections
        (``_cue_near``, ``_has_cue_word``): scanning each span's neighbourhood cost 60-80 ms a hostile 10,000-character
        "GE GE GE ..." and seconds a source batch of them, all on the event loop (found by review), and a cap on the
        looks dropped a wire story's "Ford shares fell" after 17 bare mentions of Ford (found by the regression
        review)."""
        room = self.max_tickers - len(known)
        linked: list[str] = []
        done = set(known)  # known or linked
        symbols: set[str] = set()
        words: _Words | None = None  # found with the symbols in parentheses, once a span needs them
        for start, end, targets in self._spans(text) if room > 0 else ():
            if start in exchanges:
                continue
            for target in targets:
                ticker = target.ticker
                if ticker in done:
                    continue
                if target.ambiguous:
                    if words is None:
                        symbols = {self.company_ticker(normalise_ticker(s)) for s in PAREN_SYMBOL.findall(text)}
                        words = _words(text)
                    if ticker not in symbols and not (_cue_near(words, start, end)
                                                      and _has_cue_word(words, start, end)):
                        continue
                linked.append(ticker)
                done.add(ticker)
                if len(linked) >= room:
                    return linked
        return linked
