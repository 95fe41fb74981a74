"""The watchlist: which tickers exist and the names and aliases that mean them in text.

Two formats, one meaning (see README "Watchlist"):

CSV, one company a row, ``|`` separating several names, ``#`` lines are comments::

    ticker,names,aliases,ambiguous,blockers
    AAPL,Apple Inc.|Apple,,,Big Apple|Apple pie
    TGT,Target Corporation|Target Corp,,Target,

TOML, one ``[[company]]`` table each::

    [[company]]
    ticker = "TGT"
    names = ["Target Corporation", "Target Corp"]
    aliases = []
    ambiguous = ["Target"]
    blockers = []

``names`` and ``aliases`` link on their own; ``ambiguous`` names are common words or very short
(Target, Gap, Visa, Oracle) and link only with a second cue (see ``monitor.entities.linker``).
``blockers`` are phrases that contain one of the company's names but mean something else (``Amazon
rainforest``, ``Klaus Schwab``, ``Citi Field``): the longest match wins, and a blocker links nothing (the
linker adds market phrases of its own, such as ``price target`` and ``the Dow``). ``aliases``, ``ambiguous``
and ``blockers`` are optional (files written before ``blockers`` existed load unchanged). Tickers are
normalised like payload tickers (``consumers.schema.normalise_ticker``: ``brk-b`` is ``BRK.B``).

A file that cannot be used raises one ``WatchlistError`` (a config error: ``monitor`` exits 2) naming the
file, the line and the fix: not UTF-8 (a UTF-8 byte-order mark is fine), a quote left open (it would
swallow the rows after it), a name of one character (it would link every such letter) or only a legal
suffix (``Inc.``, left by a comma inside an unquoted name), a control character, a TOML value of the
wrong type, or a ticker given twice. Duplicates are refused, not merged: two rows that disagree about a
company (a stale copy, a class share typed twice) are a mistake to fix, not a union to guess.

The bundled default (``default_watchlist.csv``, ~200 large US-listed companies, big banks and
US-listed European and Asian names) ships inside the package, so a wheel works outside the repo.
"""

from __future__ import annotations

import codecs
import csv
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
COLUMNS = ("ticker", "names", "aliases", "ambiguous", "blockers")
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


def _ticker(raw: Any, where: str) -> str:
    if raw is None or raw == "":
        raise WatchlistError(f"{where}: the ticker is missing -- give a symbol such as AAPL or BRK.B")
    if not isinstance(raw, str):
        raise WatchlistError(f"{where}: ticker {raw!r} must be a string such as \"AAPL\" or \"BRK.B\"")
    ticker = normalise_ticker(raw)
    if not TICKER.fullmatch(ticker):
        raise WatchlistError(f"{where}: ticker {raw!r} must be a symbol such as AAPL or BRK.B (letters, digits "
                             "and '.', at most 10)")
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
    """One validated company from its ticker and name lists (``names``, ``aliases``, ...: see COLUMNS)."""
    symbol = _ticker(ticker, where)
    for key, values in fields.items():
        for value in values:
            _check_name(value, _SINGULAR[key], where)
    names, ambiguous = fields["names"] + fields["aliases"], fields["ambiguous"]
    if not names and not ambiguous:
        raise WatchlistError(f"{where}: give at least one name for {symbol!r}")
    spoken = [n.casefold() for n in (*names, *ambiguous)]
    for blocker in fields["blockers"]:
        if not any(n in blocker.casefold() for n in spoken):
            raise WatchlistError(f"{where}: blocker {blocker!r} contains none of the names of {symbol} and would "
                                 "block nothing -- a blocker is a phrase around a name (\"Amazon rainforest\")")
    return Company(symbol, names, ambiguous, fields["blockers"])


def _unique(origin: str, companies: list[tuple[str, Company]]) -> list[Company]:
    """The companies (each with where it was given), refusing a ticker given twice: refused, not merged
    (see the module docstring)."""
    first: dict[str, str] = {}
    for where, company in companies:
        if company.ticker in first:
            raise WatchlistError(f"{origin} {where}: ticker {company.ticker} is already on {first[company.ticker]} "
                                 "-- one row per company: put all its names on that row, separated by |")
        first[company.ticker] = where
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
    """Rows of ``ticker,names,aliases,ambiguous,blockers`` (see the module docstring)."""
    rows = _csv_rows(text.removeprefix("\ufeff"), origin)
    header = [cell.strip() for cell in next(rows, (0, []))[1]]
    if "ticker" not in header or "names" not in header:
        raise WatchlistError(f"{origin}: the header must be 'ticker,names,aliases,ambiguous,blockers' (all but "
                             "ticker and names optional)")
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
