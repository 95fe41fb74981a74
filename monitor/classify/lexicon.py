"""``LexiconClassifier``: a fast, dependency-free keyword baseline (tests and degraded mode).

Topic comes from the taxonomy rules (``configs/taxonomy.toml``); sentiment from a small finance
lexicon with negation handling. It is deliberately simple and predictable: it catches clear headlines
("shares plunge after fraud probe", "misses estimates", "downgraded") but knows nothing of context, so
expect roughly half the transformer's macro-F1 on real data (see benchmarks/RESULTS.md). It never
imports torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from monitor.classify.topics import Taxonomy, load_taxonomy, tokenize
from monitor.types import Prediction, Sentiment


def _words(blob: str) -> frozenset[str]:
    return frozenset(blob.split())


POSITIVE_WORDS = _words(
    """beat beats topped tops exceed exceeds exceeded surpass surpasses surge surges surged soar soars soared
    jump jumps jumped rally rallies rallied rise rises rose climb climbs climbed gain gains gained rebound
    rebounds upgrade upgrades upgraded outperform overweight buy bullish strong stronger record profit
    profitable growth grow grows boost boosts boosted raise raises raised hike hikes lifts lifted higher high
    win wins won approval approved approves expand expands expansion recover recovers recovery optimistic
    upbeat positive success successful breakthrough tailwind tailwinds accelerate accelerates upside
    dividend buyback outperforms outperformed rallying surging soaring jumping booming boom"""
)
NEGATIVE_WORDS = _words(
    """miss misses missed plunge plunges plunged plummet plummets plummeted tumble tumbles tumbled sink sinks
    sank slump slumps slumped fall falls fell drop drops dropped decline declines declined slide slides slid
    crash crashes crashed sell-off selloff downgrade downgrades downgraded underperform underweight sell
    bearish weak weaker weakness loss losses lose loses lost fraud probe investigation lawsuit sued sues
    bankruptcy bankrupt default defaults layoffs layoff cut cuts cutting slash slashes slashed warn warns
    warning recall recalls halt halts halted suspend suspends suspended fine fined penalty scandal
    resigns concern concerns risk risks fears fear worry worries lower lowers lowered low disappoint
    disappoints disappointing disappointed negative headwind headwinds downside short shortfall delay
    delays delayed struggle struggles struggling slowdown recession inflation deficit crisis collapse
    collapses collapsed plunging tumbling sinking falling dropping"""
)
NEGATIONS = _words("not no never without nor cannot can't don't doesn't didn't isn't wasn't won't fails")
NEGATION_SCOPE_TOKENS = 3
"""A negator flips the polarity of the next few tokens ("not a strong quarter", "fails to beat")."""
_TARGETS = "(to|pt|price target|guidance|outlook|forecast)"
_PHRASES: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(rf"\b(cuts?|lowers?|slashe?s?|reduces?) {_TARGETS}"), -1.0),
    (re.compile(rf"\b(raises?|lifts?|boosts?) {_TARGETS}"), 1.0),
    (re.compile(r"\bchapter 11\b"), -1.5),
    (re.compile(r"\bprofit warning\b"), -1.5),
    (re.compile(r"(^|\s)-\d+(\.\d+)?%"), -1.0),
    (re.compile(r"(^|\s)\+\d+(\.\d+)?%"), 1.0),
)
_WORD_WEIGHT = 1.5
_NEUTRAL_LOGIT = 1.0
_TOPIC_SHARPNESS = 1.0


class LexiconClassifier:
    """Keyword baseline implementing the ``Classifier`` protocol; pure Python, thread-safe."""

    name = "lexicon"

    def __init__(self, taxonomy: Taxonomy | None = None) -> None:
        self.taxonomy = taxonomy or load_taxonomy()

    def polarity(self, text: str) -> float:
        """Signed evidence: positive-word hits minus negative-word hits (negation-aware, phrases weighted)."""
        lowered = text.lower()
        total = 0.0
        flip_left = 0
        for tok in tokenize(lowered):
            if tok in NEGATIONS or tok.endswith("n't"):
                flip_left = NEGATION_SCOPE_TOKENS
                continue
            sign = 1.0 if tok in POSITIVE_WORDS else -1.0 if tok in NEGATIVE_WORDS else 0.0
            total += -sign if flip_left > 0 else sign
            flip_left = max(0, flip_left - 1)
        for pattern, weight in _PHRASES:
            total += weight * sum(1 for _ in pattern.finditer(lowered))
        return total

    def _sentiment_probs(self, polarity: float) -> tuple[float, float, float]:
        logits = (
            _WORD_WEIGHT * max(0.0, -polarity),
            _NEUTRAL_LOGIT,
            _WORD_WEIGHT * max(0.0, polarity),
        )
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        neg, neu, pos = (e / total for e in exps)
        return neg, neu, pos

    def predict_one(self, text: str) -> Prediction:
        topic, hits = self.taxonomy.label(text)
        probs = self._sentiment_probs(self.polarity(text))
        best = max(range(3), key=lambda i: probs[i])
        sentiment = (Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE)[best]
        return Prediction(
            topic=topic,
            topic_confidence=1.0 - math.exp(-_TOPIC_SHARPNESS * hits) if hits else 0.5,
            sentiment=sentiment,
            sentiment_confidence=probs[best],
            score=probs[2] - probs[0],
            sentiment_probs=probs,
        )

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [self.predict_one(t) for t in texts]
