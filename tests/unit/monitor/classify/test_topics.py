from __future__ import annotations

import pytest

from monitor.classify.topics import TaxonomyError, load_taxonomy, parse_taxonomy
from monitor.types import Sentiment


@pytest.fixture(scope="module")
def taxonomy():  # type: ignore[no-untyped-def]
    return load_taxonomy()


def test_shipped_taxonomy_has_unique_topics_and_other_as_fallback(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert len(set(taxonomy.names)) == len(taxonomy.names) >= 10
    assert taxonomy.default_topic == "other" and "other" in taxonomy.names


def test_sentiment_label_map_follows_the_dataset_card(taxonomy) -> None:  # type: ignore[no-untyped-def]
    assert taxonomy.sentiment_of(0) is Sentiment.NEGATIVE  # Bearish
    assert taxonomy.sentiment_of(1) is Sentiment.POSITIVE  # Bullish
    assert taxonomy.sentiment_of(2) is Sentiment.NEUTRAL
    with pytest.raises(TaxonomyError):
        taxonomy.sentiment_of(3)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("Acme beats Q3 estimates as revenue jumps", "earnings"),
        ("Acme downgraded to sell at Foo Securities", "analyst_ratings"),
        ("Acme agrees to acquire Widget in $2bn deal", "mergers_acquisitions"),
        ("Fed raises interest rates by 25 bps", "monetary_policy"),
        ("Inflation and GDP data point to recession", "macro_economy"),
        ("$BTC Bitcoin tumbles as crypto exchange halts withdrawals", "crypto"),
        ("Crude oil jumps as OPEC cuts output", "energy_commodities"),
        ("Shares plunge after fraud probe", "regulation_legal"),
        ("CEO resigns amid layoffs", "management_labor"),
        ("Dow and Nasdaq futures slide", "markets"),
        ("A nice day at the beach", "other"),
    ],
)
def test_weak_label_assigns_the_rule_topic(taxonomy, text: str, topic: str) -> None:  # type: ignore[no-untyped-def]
    assert taxonomy.label(text)[0] == topic


def test_topic_with_more_rule_matches_wins_over_earlier_topic() -> None:
    taxonomy = parse_taxonomy(
        {
            "topics": [
                {"name": "a", "keywords": ["alpha"]},
                {"name": "b", "keywords": ["beta", "gamma"]},
                {"name": "other"},
            ]
        }
    )
    assert taxonomy.label("alpha beta gamma") == ("b", 2)


def test_tie_goes_to_the_topic_listed_first() -> None:
    taxonomy = parse_taxonomy(
        {
            "topics": [
                {"name": "a", "keywords": ["alpha"]},
                {"name": "b", "keywords": ["beta"]},
                {"name": "other"},
            ]
        }
    )
    assert taxonomy.label("beta alpha") == ("a", 1)


def test_keywords_match_whole_words_only() -> None:
    taxonomy = parse_taxonomy({"topics": [{"name": "oil", "keywords": ["oil"]}, {"name": "other"}]})
    assert taxonomy.label("turmoil in soil")[0] == "other"
    assert taxonomy.label("Oil, again")[0] == "oil"


def test_weak_labels_are_indices_into_topic_names(taxonomy) -> None:  # type: ignore[no-untyped-def]
    ids = taxonomy.weak_labels(["Fed raises interest rates", "nothing here"])
    assert [taxonomy.names[i] for i in ids] == ["monetary_policy", "other"]


def test_invalid_pattern_is_reported_with_the_topic_name() -> None:
    with pytest.raises(TaxonomyError, match="broken"):
        parse_taxonomy({"topics": [{"name": "broken", "patterns": ["("]}, {"name": "other"}]})


def test_default_topic_must_be_a_listed_topic() -> None:
    with pytest.raises(TaxonomyError, match="default_topic"):
        parse_taxonomy({"default_topic": "misc", "topics": [{"name": "a"}]})
