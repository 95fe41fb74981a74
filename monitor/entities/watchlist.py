"""The watchlist: which tickers exist and the names and aliases that mean them in text.

Two formats, one meaning (see README "Watchlist"):

CSV, one company a row, ``|`` separating several names::

    ticker,names,aliases,ambiguous
    AAPL,Apple Inc.|Apple,,
    TGT,Target Corporation|Target Corp,,Target

TOML, one ``[[company]]`` table each::

    [[company]]
    ticker = "TGT"
    names = ["Target Corporation", "Target Corp"]
    aliases = []
    ambiguous = ["Target"]

``names`` and ``aliases`` link on their own; ``ambiguous`` names are common words or very short
(Target, Gap, Visa, Oracle) and link only with a second cue (see ``monitor.entities.linker``).
The bundled default (``default_watchlist.csv``, ~200 large US-listed companies, big banks and
US-listed European and Asian names) ships inside the package, so a wheel works outside the repo.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

BUNDLED = "default_watchlist.csv"
MAX_ENTRIES = 100_000
"""A watchlist is a universe of companies, not a dictionary: bound what one file may load."""


class WatchlistError(ValueError):
    """A watchlist file that cannot be used; the message names the file, the row and the fix."""


@dataclass(frozen=True, slots=True)
class Company:
    ticker: str
    names: tuple[str, ...]
    """Names and aliases that link on their own."""
    ambiguous: tuple[str, ...] = ()
    """Names that link only with a cue (ticker, company word nearby)."""


def _split(cell: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (cell or "").split("|") if p.strip())


def _ticker(raw: Any, where: str) -> str:
    ticker = str(raw or "").strip().lstrip("$").upper()
    if not ticker or len(ticker) > 12 or any(c.isspace() for c in ticker):
        raise WatchlistError(f"{where}: ticker {raw!r} must be a symbol such as AAPL or BRK.B")
    return ticker


def parse_csv(text: str, origin: str) -> list[Company]:
    """Rows of ``ticker,names,aliases,ambiguous``; lines starting with ``#`` are comments."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    if reader.fieldnames is None or "ticker" not in reader.fieldnames or "names" not in reader.fieldnames:
        raise WatchlistError(f"{origin}: the header must be 'ticker,names,aliases,ambiguous' (aliases and "
                             "ambiguous optional)")
    out: list[Company] = []
    for n, row in enumerate(reader, start=2):
        where = f"{origin} row {n}"
        names = _split(row.get("names")) + _split(row.get("aliases"))
        ambiguous = _split(row.get("ambiguous"))
        if not names and not ambiguous:
            raise WatchlistError(f"{where}: give at least one name for {row.get('ticker')!r}")
        out.append(Company(_ticker(row.get("ticker"), where), names, ambiguous))
    return out


def _str_list(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WatchlistError(f"{where}: {key} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def parse_toml(text: str, origin: str) -> list[Company]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WatchlistError(f"{origin}: not valid TOML ({exc})") from exc
    tables = data.get("company", [])
    if not isinstance(tables, list):
        raise WatchlistError(f"{origin}: companies go in [[company]] tables")
    out: list[Company] = []
    for n, table in enumerate(tables, start=1):
        where = f"{origin} [[company]] #{n}"
        names = _str_list(table, "names", where) + _str_list(table, "aliases", where)
        ambiguous = _str_list(table, "ambiguous", where)
        if not names and not ambiguous:
            raise WatchlistError(f"{where}: give at least one name for {table.get('ticker')!r}")
        out.append(Company(_ticker(table.get("ticker"), where), names, ambiguous))
    return out


def load_watchlist(path: str | Path | None = None) -> list[Company]:
    """``path`` (``.csv`` or ``.toml``), or the bundled default when empty."""
    if not path:
        text = resources.files("monitor.entities").joinpath(BUNDLED).read_text(encoding="utf-8")
        companies = parse_csv(text, f"bundled {BUNDLED}")
    else:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise WatchlistError(f"source.watchlist_path {file}: cannot read it ({exc.strerror}) -- point it "
                                 "at a .csv or .toml watchlist, or leave it empty for the bundled one") from exc
        if file.suffix.lower() == ".toml":
            companies = parse_toml(text, str(file))
        elif file.suffix.lower() == ".csv":
            companies = parse_csv(text, str(file))
        else:
            raise WatchlistError(f"source.watchlist_path {file}: use a .csv or .toml file")
    if len(companies) > MAX_ENTRIES:
        raise WatchlistError(f"watchlist has {len(companies)} companies, at most {MAX_ENTRIES} are supported")
    return companies
