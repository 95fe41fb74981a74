"""The bundled artifact (monitor/classify/default_model) composed with the packaged MiniLM base."""

from __future__ import annotations

import pytest

from monitor.classify.transformer import TransformerClassifier
from monitor.config import ClassifierSettings
from monitor.types import Sentiment


@pytest.fixture(scope="module")
def default() -> TransformerClassifier:
    return TransformerClassifier(ClassifierSettings())


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("Acme shares plunge after fraud probe", Sentiment.NEGATIVE),
        ("Acme downgraded to underperform at Foo Securities", Sentiment.NEGATIVE),
        ("Acme misses estimates, cuts full-year guidance", Sentiment.NEGATIVE),
        ("Acme beats estimates and raises guidance, stock jumps 8%", Sentiment.POSITIVE),
        ("Acme upgraded to buy at Foo Securities", Sentiment.POSITIVE),
        ("Acme to webcast fourth quarter earnings conference call", Sentiment.NEUTRAL),
    ],
)
def test_bundled_default_labels_obvious_headlines(
    default: TransformerClassifier, text: str, sentiment: Sentiment
) -> None:
    assert default.predict([text])[0].sentiment is sentiment


def test_bundled_default_uses_the_taxonomy_topics(default: TransformerClassifier) -> None:
    assert (
        default.predict(["Acme downgraded to underperform at Foo Securities"])[0].topic == "analyst_ratings"
    )
