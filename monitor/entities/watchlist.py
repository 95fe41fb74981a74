"""The watchlist: which tickers exist and the names and aliases that mean them in text.

Two formats, one meaning (see README "Watchlist"):

CSV, one company a row, ``|`` separating several names, ``#`` lines are comments::

    ticker,names,aliases,ambiguous,blockers,symbols
    AAPL,Apple Inc.|Apple,,,Big Apple|Apple pie,
    TGT,Target Corporation|Target Corp,,Target,,
    META,Meta Platforms,Facebook,Meta,,FB

TOML, one ``[[company]]`` table each::

    [[company]]
    ticker = "TGT"
    names = ["Target Corporation", "Target Corp"]
    aliases = []
    ambiguous = ["Target"]
    blockers = []
    symbols = []

``names`` and ``aliases`` link on their own; ``ambiguous`` names are common words or very short
(Target, Gap, Visa, Oracle) and link only with a second cue (see ``monitor.entities.linker``).
``blockers`` are phrases that contain one of the company's names but mean something else (``Amazon
rainforest``, ``Klaus Schwab``, ``Citi Field``): the longest match wins, and a blocker links nothing (the
linker adds market phrases of its own, such as ``price target`` and ``the Dow``). ``symbols`` are the
company's other symbols -- former tickers (FB for META) and other share classes (GOOG for GOOGL): the linker
counts a payload ticker or cashtag that is one of them under ``ticker``, so one story about Facebook is one
window key, not ``FB`` and ``META`` paging twice (the mapping ignores dates: list a former ticker only if
no other company in your data used it). ``aliases``, ``ambiguous``, ``blockers`` and ``symbols`` are
optional (files written before ``blockers`` or ``symbols`` existed load unchanged). Tickers and symbols are
normalised like payload tickers (``consumers.schema.normalise_ticker``: ``brk-b`` is ``BRK.B``).

A file that cannot be used raises one ``WatchlistError`` (a config error: ``monitor`` exits 2) naming the
file, the line and the fix: not UTF-8 (a UTF-8 byte-order mark is fine), a quote left open (it would
swallow the rows after it), a name of one character (it would link every such letter) or only a legal
suffix (``Inc.``, left by a comma inside an unquoted name), a control character, a TOML value of the
wrong type, an unknown column or TOML key (``ambigous``: the closest known name is suggested), no companies
at all (the default cashtag scope would then drop every cashtag), a ticker given twice, or a symbol claimed
by two rows (one row's symbol and another's ticker, or a symbol on two rows). Duplicates are refused, not
merged: two rows that disagree about a company (a stale copy, a class share typed twice) are a mistake to
fix, not a union to guess, and a symbol that meant two companies would count one message under whichever row
came first.

The bundled default (``default_watchlist.csv``, ~285 large US-listed companies, big banks and
US-listed European and Asian names) ships inside the package, so a wheel works outside the repo.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import re
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from consumers.schema import TICKER, normalise_ticker

BUNDLED = "default_watchlist.csv"
MAX_ENTRIES = 100_000
"""A watchlist is a universe of companies, not a dictionary: bound what one file may load."""
COLUMNS = ("ticker", "names", "aliases", "ambiguous", "blockers", "symbols")
NAME_COLUMNS = COLUMNS[1:5]
LEGAL_SUFFIXES = frozenset({"inc", "corp", "co", "ltd", "llc", "plc", "incorporated", "corporation", "company",
                            "limited", "holdings", "group"})
"""A name that is only one of these is the tail of a name cut at an unquoted comma (``Apple, Inc.``)."""
_TOML_TABLE = re.compile(r"\s*\[\[\s*company\s*\]\]")
_SINGULAR = {"names": "name", "aliases": "alias", "ambiguous": "ambiguous name", "blockers": "blocker"}


class WatchlistError(ValueError):
    """A watchlist file that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True, slots=True)
class Company:
    ticker: str
    names: tuple[str, ...]
    """Names and aliases that link on their own."""
    ambiguous: tuple[str, ...] = ()
    """Names that link only with a cue (ticker, company word nearby)."""
    blockers: tuple[str, ...] = ()
    """Phrases containing a name that do not mean the company (``Amazon rainforest``): they link nothing."""
    symbols: tuple[str, ...] = ()
    """Other symbols of the company (former tickers, other share classes): the linker counts them as ``ticker``."""


def _ticker(raw: Any, where: str, key: str = "ticker") -> str:
    """``raw`` normalised (``brk-b`` is ``BRK.B``); ``key`` (ticker or symbol) names it in errors."""
    if raw is None or raw == "":
        raise WatchlistError(f"{where}: the ticker is missing -- give a symbol such as AAPL or BRK.B")
    if not isinstance(raw, str):
        raise WatchlistError(f"{where}: {key} {raw!r} must be a string such as \"AAPL\" or \"BRK.B\"")
    ticker = normalise_ticker(raw)
    if not TICKER.fullmatch(ticker):
        raise WatchlistError(f"{where}: {key} {raw!r} must be a symbol such as AAPL or BRK.B (letters, digits "
                             "and . ^ = _ -, at most 16)")
    return ticker


def _check_name(name: str, key: str, where: str) -> None:
    """Refuse a name that would link the wrong text (one letter, a bare legal suffix) or cannot be typed."""
    if len(name) < 2:
        raise WatchlistError(f"{where}: {key} {name!r} is one character and would link every {name!r} in text -- "
                             "use a longer name (cashtags link without one)")
    if name.casefold().strip(".,") in LEGAL_SUFFIXES:
        raise WatchlistError(f"{where}: {key} {name!r} is only a legal suffix -- a comma inside an unquoted name? "
                             "quote it (\"Apple, Inc.\") or drop the comma")
    bad = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise WatchlistError(f"{where}: {key} {name!r} holds the control character {bad!r} -- remove it")


def _company(ticker: Any, fields: dict[str, tuple[str, ...]], where: str) -> Company:
    """One validated company from its ticker and lists (``names``, ``aliases``, ..., ``symbols``: see COLUMNS).
    Its own ticker or a repeat among its symbols is dropped: harmless, unlike a symbol on two rows."""
    symbol = _ticker(ticker, where)
    others = dict.fromkeys(_ticker(s, where, "symbol") for s in fields["symbols"])
    for key in NAME_COLUMNS:
        for value in fields[key]:
            _check_name(value, _SINGULAR[key], where)
    names, ambiguous = fields["names"] + fields["aliases"], fields["ambiguous"]
    if not names and not ambiguous:
        raise WatchlistError(f"{where}: give at least one name for {symbol!r}")
    spoken = [n.casefold() for n in (*names, *ambiguous)]
    for blocker in fields["blockers"]:
        if not any(n in blocker.casefold() for n in spoken):
            raise WatchlistError(f"{where}: blocker {blocker!r} contains none of the names of {symbol} and would "
                                 "block nothing -- a blocker is a phrase around a name (\"Amazon rainforest\")")
    return Company(symbol, names, ambiguous, fields["blockers"], tuple(s for s in others if s != symbol))


def _claimed(symbol: str, key: str, owner: str, seen: str) -> str:
    """Why this row's ``key`` (ticker or symbol) ``symbol`` is refused: the row at ``seen``, ``owner``'s, has it."""
    one_row = "a symbol means one company: keep it on one row only"
    if owner != symbol:
        return f"{key} {symbol} is already a symbol of {owner} on {seen} -- {one_row}"
    if key == "symbol":
        return f"symbol {symbol} is already the ticker on {seen} -- {one_row}"
    return f"ticker {symbol} is already on {seen} -- one row per company: put all its names on that row, separated by |"


def _unknown(keys: list[str], known: tuple[str, ...], kind: str, where: str) -> None:
    """Refuse a column or key the format does not have: a typo (``ambigous``, ``alias``) would otherwise load
    the file without that list, and every name in it would silently link nothing (or link without its cue)."""
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it?"
            raise WatchlistError(f"{where}: unknown {kind} {key!r} -- {hint} (known: {', '.join(known)})")
        if keys.count(key) > 1:
            raise WatchlistError(f"{where}: {kind} {key!r} given twice -- keep one")


def _unique(origin: str, companies: list[tuple[str, Company]]) -> list[Company]:
    """The companies (each with where it was given), refusing none at all (with the default cashtag scope every
    cashtag would be dropped), a ticker given twice or a symbol claimed by two rows: refused, not merged (see
    the module docstring)."""
    if not companies:
        raise WatchlistError(f"{origin}: lists no companies -- add one per row (CSV) or [[company]] table (TOML), "
                             "or leave source.watchlist_path empty for the bundled watchlist")
    first: dict[str, tuple[str, str]] = {}  # symbol -> (where, the ticker of the row that has it)
    for where, company in companies:
        for symbol in (company.ticker, *company.symbols):
            if symbol in first:
                key = "ticker" if symbol == company.ticker else "symbol"
                raise WatchlistError(f"{origin} {where}: {_claimed(symbol, key, first[symbol][1], first[symbol][0])}")
            first[symbol] = (where, company.ticker)
    return [company for _, company in companies]


def _split(cell: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (cell or "").split("|") if p.strip())


def _csv_rows(text: str, origin: str) -> Iterator[tuple[int, list[str]]]:
    """Rows with the real line each is on; comment and blank lines are skipped but still counted. A row
    that runs over several lines (a quote left open) is refused: it would swallow the rows after it."""
    numbers: list[int] = []

    def data_lines() -> Iterator[str]:
        for number, line in enumerate(text.splitlines(keepends=True), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                numbers.append(number)
                yield line

    reader = csv.reader(data_lines())
    while True:
        mark = len(numbers)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise WatchlistError(f"{origin} line {numbers[-1]}: not valid CSV ({exc})") from exc
        line = numbers[mark]
        if len(numbers) - mark > 1 or any("\n" in cell or "\r" in cell for cell in row):
            raise WatchlistError(f"{origin} line {line}: a quoted cell runs past the end of this line (a quote left "
                                 "open?) and swallows the lines after it -- close it on this line or remove the "
                                 "stray \"")
        yield line, row


def parse_csv(text: str, origin: str) -> list[Company]:
    """Rows of ``ticker,names,aliases,ambiguous,blockers,symbols`` (see the module docstring); columns are
    found by their header name, so files with fewer (written before ``blockers`` or ``symbols``) still load."""
    rows = _csv_rows(text.removeprefix("\ufeff"), origin)
    at, first = next(rows, (0, []))
    header = [cell.strip() for cell in first]
    if "ticker" not in header or "names" not in header:
        raise WatchlistError(f"{origin}: the header must be 'ticker,names,aliases,ambiguous,blockers,symbols' (all "
                             "but ticker and names optional)")
    _unknown([name for name in header if name], COLUMNS, "column", f"{origin} line {at}")
    out: list[tuple[str, Company]] = []
    for line, row in rows:
        where = f"{origin} line {line}"
        if any(cell.strip() for cell in row[len(header) :]):
            raise WatchlistError(f"{where}: more cells than the header names -- a comma inside a name? quote the "
                                 "name (\"Apple, Inc.\") or separate names with |")
        cells = dict(zip(header, row, strict=False))
        fields = {key: _split(cells.get(key)) for key in COLUMNS[1:]}
        out.append((f"line {line}", _company(cells.get("ticker", "").strip(), fields, where)))
    return _unique(origin, out)


def _str_list(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WatchlistError(f"{where}: {key} must be a list of strings, such as {key} = [\"Acme Corp\"]")
    return tuple(v.strip() for v in value if v.strip())


def parse_toml(text: str, origin: str) -> list[Company]:
    """``[[company]]`` tables (see the module docstring); errors name the line of the table's header."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WatchlistError(f"{origin}: not valid TOML ({exc})") from exc
    _unknown(list(data), ("company",), "key", origin)
    tables = data.get("company", [])
    if not isinstance(tables, list):
        raise WatchlistError(f"{origin}: companies go in [[company]] tables")
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if _TOML_TABLE.match(line)]
    out: list[tuple[str, Company]] = []
    for n, table in enumerate(tables, start=1):
        label = f"line {lines[n - 1]}" if len(lines) == len(tables) else f"[[company]] #{n}"
        where = f"{origin} {label}"
        if not isinstance(table, dict):
            raise WatchlistError(f"{where}: each company must be a [[company]] table, got {table!r}"[:300])
        _unknown(list(table), COLUMNS, "key", where)
        fields = {key: _str_list(table, key, where) for key in COLUMNS[1:]}
        out.append((label, _company(table.get("ticker"), fields, where)))
    return _unique(origin, out)


def _decode(data: bytes, origin: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped); anything else names the line of the first bad byte."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise WatchlistError(f"{origin}: the file is UTF-16 -- save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise WatchlistError(f"{origin} line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 -- save the file as "
                             "UTF-8") from exc


def load_watchlist(path: str | Path | None = None) -> list[Company]:
    """``path`` (``.csv`` or ``.toml``), or the bundled default when empty."""
    if not path:
        origin = f"bundled {BUNDLED}"
        companies = parse_csv(_decode(resources.files("monitor.entities").joinpath(BUNDLED).read_bytes(), origin),
                              origin)
    else:
        file = Path(path)
        origin = f"source.watchlist_path {file}"
        if file.suffix.lower() not in (".csv", ".toml"):
            raise WatchlistError(f"{origin}: use a .csv or .toml file")
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise WatchlistError(f"{origin}: cannot read it ({exc.strerror}) -- point it at a .csv or .toml "
                                 "watchlist, or leave it empty for the bundled one") from exc
        parse = parse_toml if file.suffix.lower() == ".toml" else parse_csv
        companies = parse(_decode(data, origin), origin)
    if len(companies) > MAX_ENTRIES:
        raise WatchlistError(f"watchlist has {len(companies)} companies, at most {MAX_ENTRIES} are supported")
    return companies
