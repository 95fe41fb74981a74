"""The bundled artifact (monitor/classify/default_model) composed with the packaged MiniLM base."""

from __future__ import annotations

import pytest

from monitor.classify.topics import load_taxonomy
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


def test_bundled_default_labels_topics_with_the_20_canonical_names(default: TransformerClassifier) -> None:
    assert default.topic_labels == list(load_taxonomy().names)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("Acme downgraded to underperform at Foo Securities", "analyst_update"),
        ("Fed's Powell signals more rate hikes to fight inflation", "central_banks"),
        ("Acme declares quarterly dividend of $0.25 per share", "dividend"),
        ("Oil prices jump as OPEC+ agrees output cuts", "energy_oil"),
        ("Acme to acquire Widget Corp in $2 billion deal", "mergers_acquisitions"),
        ("Acme CEO steps down; CFO named interim chief executive", "personnel_change"),
    ],
)
def test_bundled_default_topic_head_knows_clear_headlines(
    default: TransformerClassifier, text: str, topic: str
) -> None:
    assert default.predict([text])[0].topic == topic


def test_bundled_default_never_crashes_on_other_scripts_and_odd_input(default: TransformerClassifier) -> None:
    texts = [
        "中国股市大涨 投资者情绪乐观",
        "日経平均株価が急落",
        "Акции Сбербанка упали на 5%",
        "أسهم أرامكو ترتفع",
        "शेयर बाजार में गिरावट",
        "📉📉📉 $TSLA 🚀",
        "S&amp;P 500 &lt;record&gt; high",
        "",
        "x" * 20_000,
    ]
    predictions = default.predict(texts)
    names = set(load_taxonomy().names)
    assert len(predictions) == len(texts)
    for p in predictions:
        assert p.topic in names and sum(p.sentiment_probs) == pytest.approx(1.0, abs=1e-5)
