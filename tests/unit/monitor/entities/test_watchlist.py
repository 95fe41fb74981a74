from __future__ import annotations

from pathlib import Path

import pytest

from consumers.schema import TICKER
from monitor.config import ConfigError, load_settings
from monitor.engine.enrich import build_enricher
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
    ("w.csv", "ticker,names\n,Acme\n", "line 2"),
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


def _error(tmp_path: Path, name: str, body: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(body, str):
        path.write_text(body, encoding="utf-8")
    else:
        path.write_bytes(body)
    with pytest.raises(WatchlistError) as info:
        load_watchlist(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message  # names the file, one line (the CLI prints it as is)
    return message


def test_errors_name_the_real_line_with_comments_and_blank_lines_counted(tmp_path: Path) -> None:
    body = "# my book\n\n# more\nticker,names\nAAPL,Apple\n\n# gap\nMSFT,\n"
    assert "line 8: give at least one name" in _error(tmp_path, "w.csv", body)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"\xef\xbb\xbfticker,names\nAAPL,Apple\n")
    assert load_watchlist(path) == [Company("AAPL", ("Apple",))]


@pytest.mark.parametrize(("body", "message"), [
    (b"ticker,names\nAAPL,Apple\nNSRGY,Nestl\xe9\n", "line 3: byte 0xe9 is not UTF-8 -- save the file as UTF-8"),
    ("ticker,names\nAAPL,Apple\n".encode("utf-16"), "UTF-16 -- save it as UTF-8"),
])
def test_a_file_that_is_not_utf8_is_refused_naming_the_line(tmp_path: Path, body: bytes, message: str) -> None:
    assert message in _error(tmp_path, "w.csv", body)


def test_a_watchlist_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"ticker,names\nNSRGY,Nestl\xe9\n")
    with pytest.raises(ConfigError, match="line 2"):
        build_enricher(load_settings(source={"watchlist_path": str(path)}))


@pytest.mark.parametrize("body", [
    'ticker,names\nAAPL,"Apple Inc.\nMSFT,Microsoft\nIBM,IBM\n',
    'ticker,names\nAAPL,"Apple\nInc."\nMSFT,Microsoft\n',
])
def test_a_quote_left_open_is_refused_instead_of_swallowing_rows(tmp_path: Path, body: str) -> None:
    assert "line 2: a quoted cell runs past the end of this line" in _error(tmp_path, "w.csv", body)


@pytest.mark.parametrize(("body", "message"), [
    ("ticker,names\nX,A\n", "line 2: name 'A' is one character"),
    ("ticker,names,aliases\nAAPL,Apple, Inc.\n", "line 2: alias 'Inc.' is only a legal suffix"),
    ("ticker,names\nAAPL,Apple,Inc,x\n", "line 2: more cells than the header names"),
    ("ticker,names\nAAPL,Apple\x00Inc\n", "control character"),
    ("ticker,names,blockers\nAAPL,Apple,Big Pear\n", "blocker 'Big Pear' contains none of the names"),
    ("ticker,names\nAAPL US,Apple\n", "must be a symbol"),
])
def test_a_name_or_ticker_that_would_link_the_wrong_text_is_refused(tmp_path: Path, body: str, message: str) -> None:
    assert message in _error(tmp_path, "w.csv", body)


@pytest.mark.parametrize(("body", "message"), [
    ('[[company]]\nticker = 5\nnames = ["Five"]\n', "line 1: ticker 5 must be a string"),
    ("company = [1]\n", "must be a [[company]] table"),
    ('[[company]]\nticker = "A"\nnames = ["Alpha"]\n\n[[company]]\nticker = "B"\nambiguous = [1]\n',
     "line 5: ambiguous must be a list of strings"),
    ('[[company]]\nticker = "A"\nnames = ["Alpha"]\n[[company]]\nticker = "B"\nnames = [""]\n',
     "line 4: give at least one name"),
])
def test_toml_values_of_the_wrong_type_are_refused_naming_the_table_line(
    tmp_path: Path, body: str, message: str
) -> None:
    assert message in _error(tmp_path, "w.toml", body)


@pytest.mark.parametrize(("body", "message"), [
    ("ticker,names\nAAPL,Apple Inc.\n# old\nAAPL,Apple Computer\n", "line 4: ticker AAPL is already on line 2"),
    ("ticker,names\nBRK.B,Berkshire Hathaway\nBRK-B,Berkshire\n", "line 3: ticker BRK.B is already on line 2"),
])
def test_a_ticker_given_twice_is_refused_naming_both_lines(tmp_path: Path, body: str, message: str) -> None:
    assert message in _error(tmp_path, "w.csv", body)


def test_tickers_are_normalised_and_blockers_are_read() -> None:
    text = "ticker,names,aliases,ambiguous,blockers\n$brk/b,Berkshire Hathaway,Berkshire,,Berkshire police\n"
    assert parse_csv(text, "x") == [Company("BRK.B", ("Berkshire Hathaway", "Berkshire"), (), ("Berkshire police",))]


def test_a_file_without_the_blockers_column_loads_as_before() -> None:
    assert parse_csv("ticker,names,aliases,ambiguous\nTGT,Target Corp,,Target\n", "x") == [
        Company("TGT", ("Target Corp",), ("Target",))
    ]


def test_every_bundled_ticker_is_a_normalised_symbol() -> None:
    assert all(TICKER.fullmatch(c.ticker) for c in load_watchlist())


def test_the_symbols_column_gives_a_companys_other_symbols_normalised() -> None:
    text = "ticker,names,aliases,ambiguous,blockers,symbols\nGOOGL,Alphabet,Google,,,goog|brk-a\n"
    assert parse_csv(text, "x") == [Company("GOOGL", ("Alphabet", "Google"), symbols=("GOOG", "BRK.A"))]


def test_toml_symbols_give_the_same_company(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[[company]]\nticker = "META"\nnames = ["Facebook"]\nsymbols = ["FB"]\n')
    assert load_watchlist(path) == [Company("META", ("Facebook",), symbols=("FB",))]


def test_a_file_with_the_old_five_column_header_loads_without_symbols() -> None:
    text = "ticker,names,aliases,ambiguous,blockers\nAMZN,Amazon,,,Amazon rainforest\n"
    assert parse_csv(text, "x") == [Company("AMZN", ("Amazon",), blockers=("Amazon rainforest",))]


def test_a_companys_own_ticker_or_a_repeat_among_its_symbols_is_dropped() -> None:
    text = "ticker,names,symbols\nMETA,Facebook,META|FB|fb\n"
    assert parse_csv(text, "x") == [Company("META", ("Facebook",), symbols=("FB",))]


@pytest.mark.parametrize(("body", "message"), [
    ("ticker,names,symbols\nMETA,Meta,FB\nFBX,Facebook,FB\n",
     "line 3: symbol FB is already a symbol of META on line 2 -- a symbol means one company"),
    ("ticker,names,symbols\nGOOGL,Alphabet,GOOG\nGOOG,Google\n",
     "line 3: ticker GOOG is already a symbol of GOOGL on line 2 -- a symbol means one company"),
    ("ticker,names,symbols\nGOOG,Google\nGOOGL,Alphabet,goog\n",
     "line 3: symbol GOOG is already the ticker on line 2 -- a symbol means one company"),
])
def test_a_symbol_claimed_by_two_rows_is_refused_naming_both_lines(tmp_path: Path, body: str, message: str) -> None:
    assert message in _error(tmp_path, "w.csv", body)


@pytest.mark.parametrize(("name", "body", "message"), [
    ("w.csv", "ticker,names,symbols\nMETA,Meta,FB US\n", "line 2: symbol 'FB US' must be a symbol"),
    ("w.toml", '[[company]]\nticker = "META"\nnames = ["Meta"]\nsymbols = [5]\n',
     "line 1: symbols must be a list of strings"),
    ("w.toml", '[[company]]\nticker = "A"\nnames = ["Alpha"]\nsymbols = ["X"]\n\n'
               '[[company]]\nticker = "B"\nnames = ["Beta"]\nsymbols = ["x"]\n',
     "line 6: symbol X is already a symbol of A on line 1"),
])
def test_a_bad_symbol_is_refused_like_a_bad_ticker(tmp_path: Path, name: str, body: str, message: str) -> None:
    assert message in _error(tmp_path, name, body)


def test_the_bundled_watchlist_gives_former_tickers_and_other_share_classes() -> None:
    symbols = {c.ticker: c.symbols for c in load_watchlist()}
    assert "FB" in symbols["META"] and "GOOG" in symbols["GOOGL"] and "BRK.A" in symbols["BRK.B"]


@pytest.mark.parametrize(("body", "message"), [
    ("ticker,names,ambigous\nTGT,Target Corp,Target\n",
     "line 1: unknown column 'ambigous' -- did you mean 'ambiguous'?"),
    ("ticker,names,alias\nAAPL,Apple,Apple Computer\n", "line 1: unknown column 'alias' -- did you mean 'aliases'?"),
    ("# my book\nticker,names,sector\nAAPL,Apple,Tech\n", "line 2: unknown column 'sector'"),
    ("ticker,names,names\nAAPL,Apple,Apple Inc.\n", "line 1: column 'names' given twice"),
])
def test_an_unknown_or_misspelled_column_is_refused_suggesting_the_known_name(
    tmp_path: Path, body: str, message: str
) -> None:
    assert message in _error(tmp_path, "w.csv", body)


@pytest.mark.parametrize(("body", "message"), [
    ('[[company]]\nticker = "TGT"\nnames = ["Target Corp"]\nambigous = ["Target"]\n',
     "line 1: unknown key 'ambigous' -- did you mean 'ambiguous'?"),
    ('[[companies]]\nticker = "TGT"\nnames = ["Target Corp"]\n', "unknown key 'companies' -- did you mean 'company'?"),
])
def test_an_unknown_or_misspelled_toml_key_is_refused_suggesting_the_known_name(
    tmp_path: Path, body: str, message: str
) -> None:
    assert message in _error(tmp_path, "w.toml", body)


@pytest.mark.parametrize(("name", "body"), [
    ("w.csv", "ticker,names,aliases,ambiguous,blockers,symbols\n"),
    ("w.csv", "# emptied\nticker,names\n# AAPL,Apple\n"),
    ("w.toml", "# no [[company]] tables yet\n"),
])
def test_a_watchlist_without_companies_is_refused(tmp_path: Path, name: str, body: str) -> None:
    assert "lists no companies" in _error(tmp_path, name, body)


def test_the_ticker_error_states_the_length_that_is_checked(tmp_path: Path) -> None:
    assert parse_csv("ticker,names\nABCDEFGHIJKLMNOP,Alpha\n", "x")[0].ticker == "ABCDEFGHIJKLMNOP"
    assert "at most 16" in _error(tmp_path, "w.csv", "ticker,names\nABCDEFGHIJKLMNOPQ,Alpha\n")
