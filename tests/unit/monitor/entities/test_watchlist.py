from __future__ import annotations

from pathlib import Path

import pytest

from monitor.entities.watchlist import Company, WatchlistError, load_watchlist, parse_csv


def test_the_bundled_watchlist_loads_from_the_package() -> None:
    companies = load_watchlist()
    tickers = {c.ticker for c in companies}
    assert len(companies) >= 150 and len(tickers) == len(companies)
    assert {"AAPL", "MSFT", "JPM", "BA", "NVDA", "WFC", "HSBC"} <= tickers
    target = next(c for c in companies if c.ticker == "TGT")
    assert "Target" in target.ambiguous and "Target" not in target.names


def test_csv_rows_split_names_aliases_and_ambiguous_names(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("# my book\nticker,names,aliases,ambiguous\n$acme,Acme Corp|Acme Inc,ACME Co,Acme\n")
    assert load_watchlist(path) == [Company("ACME", ("Acme Corp", "Acme Inc", "ACME Co"), ("Acme",))]


def test_toml_tables_give_the_same_companies(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[[company]]\nticker = "ACME"\nnames = ["Acme Corp"]\naliases = ["Acme Inc"]\n'
                    'ambiguous = ["Acme"]\n')
    assert load_watchlist(path) == [Company("ACME", ("Acme Corp", "Acme Inc"), ("Acme",))]


@pytest.mark.parametrize(("name", "body", "message"), [
    ("w.csv", "symbol,title\nX,Y\n", "header"),
    ("w.csv", "ticker,names\n,Acme\n", "row 2"),
    ("w.csv", "ticker,names\nACME,\n", "at least one name"),
    ("w.toml", "[[company]]\nticker = 'A'\nnames = 3\n", "list of strings"),
    ("w.toml", "not toml [", "not valid TOML"),
    ("w.txt", "x", ".csv or .toml"),
])
def test_a_bad_watchlist_names_the_file_and_what_to_fix(tmp_path: Path, name: str, body: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(WatchlistError, match=message):
        load_watchlist(path)


def test_a_missing_watchlist_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match=r"source\.watchlist_path"):
        load_watchlist(tmp_path / "absent.csv")


def test_blank_and_comment_lines_are_skipped() -> None:
    assert parse_csv("\n# c\nticker,names\n\nA,Alpha\n", "x") == [Company("A", ("Alpha",))]
