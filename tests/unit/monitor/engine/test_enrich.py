from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_settings
from monitor.engine.enrich import Enricher, build_enricher
from monitor.types import RawMessage, Sentiment, SourceKind, SourceRecord


def _rec(mid: str, text: str, tickers: tuple[str, ...] = ()) -> SourceRecord:
    msg = RawMessage(mid, SourceKind.NEWS, text, datetime(2026, 3, 2, tzinfo=UTC), tickers)
    return SourceRecord(msg, position=mid)


def test_default_settings_link_names_and_fold_copies() -> None:
    enricher = build_enricher(load_settings())
    assert enricher is not None

    records, repeats = enricher.process([
        _rec("a", "Boeing shares plunge after regulators ground the fleet"),
        _rec("b", "RT @x: Boeing shares plunge after regulators ground the fleet"),
        _rec("c", "$TSLA and Apple rally, $ZZZZ too"),
    ])

    assert [r.message.tickers for r in records] == [("BA",), ("BA",), ("TSLA", "AAPL")]
    assert [r.position for r in records] == ["a", "b", "c"]
    assert repeats == {"b": "a"}


def test_the_any_scope_links_cashtags_outside_the_watchlist() -> None:
    enricher = build_enricher(load_settings(source={"cashtag_scope": "any", "link_names": False}))
    assert enricher is not None
    assert enricher.link(_rec("a", "$ZZZZ and Apple").message).tickers == ("ZZZZ",)


def test_everything_off_builds_no_stage() -> None:
    settings = load_settings(source={"link_names": False, "link_cashtags": False}, windows={"novelty_window_s": 0})
    assert build_enricher(settings) is None


def test_an_unchanged_message_is_passed_through_as_is() -> None:
    rec = _rec("a", "nothing to link here at all", ("X",))
    [out], _ = Enricher(None, None).process([rec])
    assert out is rec


def test_a_custom_watchlist_replaces_the_bundled_one(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    path.write_text("ticker,names\nACME,Acme Widgets\n")
    enricher = build_enricher(load_settings(source={"watchlist_path": str(path)}))
    assert enricher is not None
    assert enricher.link(_rec("a", "Acme Widgets and Boeing").message).tickers == ("ACME",)


def test_a_bad_watchlist_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source\.watchlist_path"):
        build_enricher(load_settings(source={"watchlist_path": str(tmp_path / "missing.csv")}))


def test_a_copy_labelled_the_other_way_is_no_repeat_when_sentiments_are_given() -> None:
    enricher = build_enricher(load_settings())
    assert enricher is not None
    records = [_rec("a", "Boeing quarter in line with estimates as deliveries came in good"),
               _rec("b", "Boeing quarter in line with estimates as deliveries came in bad")]
    assert enricher.repeats(records, {"a": Sentiment.POSITIVE, "b": Sentiment.NEGATIVE}) == {}
    unlabelled = build_enricher(load_settings())  # a fresh index: decisions are remembered per message id
    assert unlabelled is not None
    assert unlabelled.repeats(records) == {"b": "a"}
