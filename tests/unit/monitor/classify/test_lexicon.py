from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.classify import build_classifier
from monitor.classify.lexicon import LexiconClassifier
from monitor.config import ClassifierSettings
from monitor.types import Sentiment


@pytest.fixture(scope="module")
def lexicon() -> LexiconClassifier:
    return LexiconClassifier()


@pytest.mark.parametrize(
    "text",
    [
        "Shares plunge after fraud probe",
        "Acme downgraded to neutral at Foo",
        "Acme misses estimates",
        "Acme files for bankruptcy",
        "Acme cuts guidance, warns on weak demand",
    ],
)
def test_clear_negative_headlines_are_negative(lexicon: LexiconClassifier, text: str) -> None:
    prediction = lexicon.predict([text])[0]
    assert prediction.sentiment is Sentiment.NEGATIVE
    assert prediction.score < 0


@pytest.mark.parametrize(
    "text", ["Acme beats estimates, shares surge", "Acme upgraded to buy, record profit"]
)
def test_clear_positive_headlines_are_positive(lexicon: LexiconClassifier, text: str) -> None:
    prediction = lexicon.predict([text])[0]
    assert prediction.sentiment is Sentiment.POSITIVE
    assert prediction.score > 0


def test_negation_flips_the_polarity_of_the_next_words(lexicon: LexiconClassifier) -> None:
    assert lexicon.polarity("a strong quarter") > 0
    assert lexicon.polarity("not a strong quarter") < 0


def test_score_is_p_positive_minus_p_negative_and_probs_sum_to_one(lexicon: LexiconClassifier) -> None:
    for prediction in lexicon.predict(["Acme beats estimates", "Acme plunges", "Acme holds meeting"]):
        neg, neu, pos = prediction.sentiment_probs
        assert neg + neu + pos == pytest.approx(1.0)
        assert prediction.score == pytest.approx(pos - neg)
        assert prediction.sentiment_confidence == pytest.approx(max(prediction.sentiment_probs))


def test_empty_and_non_english_text_are_neutral_general_news(lexicon: LexiconClassifier) -> None:
    for prediction in lexicon.predict(["", "   ", "中国股市大涨", "Акции растут", "سهم"]):
        assert prediction.sentiment is Sentiment.NEUTRAL
        assert prediction.topic == "general_news"


def test_topic_comes_from_the_taxonomy_rules(lexicon: LexiconClassifier) -> None:
    assert lexicon.predict(["Judge opens fraud probe"])[0].topic == "legal_regulation"


def test_factory_builds_lexicon_without_importing_torch() -> None:
    code = (
        "import sys; from monitor.classify import build_classifier;"
        "from monitor.config import ClassifierSettings;"
        "c = build_classifier(ClassifierSettings(kind='lexicon')); c.predict(['x']);"
        "print(c.name, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["lexicon", "False"]


def test_factory_returns_the_lexicon_classifier_for_kind_lexicon() -> None:
    assert isinstance(build_classifier(ClassifierSettings(kind="lexicon")), LexiconClassifier)


_SHARED = LexiconClassifier()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gets_a_valid_prediction(text: str) -> None:
    prediction = _SHARED.predict_one(text)
    assert sum(prediction.sentiment_probs) == pytest.approx(1.0)
    assert -1.0 <= prediction.score <= 1.0
    assert prediction.topic in _SHARED.taxonomy.names
