"""Builders for classified messages shared by the window tests and the window benchmark."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monitor.types import ClassifiedMessage, Prediction, RawMessage, Sentiment, SourceKind
from monitor.windows.buckets import BucketStats, EvidenceItem, evidence_of, increments

T0 = 1_699_999_200
"""A recent epoch second aligned to every bucket size the tests use (60 s, 300 s, 3600 s)."""

DEFAULT_SCORES = {Sentiment.NEGATIVE: -0.75, Sentiment.NEUTRAL: 0.0, Sentiment.POSITIVE: 0.5}


def classified(
    message_id: str,
    *,
    at_s: int,
    sentiment: Sentiment = Sentiment.NEGATIVE,
    score: float | None = None,
    topic: str = "earnings",
    tickers: Sequence[str] = (),
    text: str | None = None,
    repeat_of: str | None = None,
) -> ClassifiedMessage:
    """A classified message at epoch second ``at_s``; ``score`` defaults to one of ``sentiment``'s sign."""
    message = RawMessage(
        id=message_id,
        source=SourceKind.NEWS,
        text=text if text is not None else f"headline {message_id}",
        event_time=datetime.fromtimestamp(at_s, tz=UTC),
        tickers=tuple(tickers),
        url=f"https://news.example/{message_id}",
    )
    prediction = Prediction(
        topic=topic,
        topic_confidence=0.9,
        sentiment=sentiment,
        sentiment_confidence=0.9,
        score=DEFAULT_SCORES[sentiment] if score is None else score,
    )
    return ClassifiedMessage(message=message, prediction=prediction, repeat_of=repeat_of)


def fold(items: Iterable[ClassifiedMessage], bucket_s: int) -> dict[tuple[str, int], BucketStats]:
    """Reference aggregation: every message counted once per id (the first delivery wins)."""
    seen: set[str] = set()
    out: dict[tuple[str, int], BucketStats] = {}
    for item in items:
        if item.message.id in seen:
            continue
        seen.add(item.message.id)
        for inc in increments(item, bucket_s):
            slot = (inc.key, inc.start_s)
            out[slot] = out[slot].merge(inc.as_stats()) if slot in out else inc.as_stats()
    return out


def reference_evidence(
    items: Iterable[ClassifiedMessage], bucket_s: int, top_n: int
) -> dict[tuple[str, int], list[EvidenceItem]]:
    """Reference evidence: per (key, bucket) the ``top_n`` smallest (score, id) among negative scores of
    stories (repeats of an earlier story are never evidence)."""
    seen: set[str] = set()
    out: dict[tuple[str, int], list[EvidenceItem]] = {}
    for item in items:
        if item.message.id in seen or item.prediction.score >= 0 or item.repeat_of is not None:
            continue
        seen.add(item.message.id)
        for inc in increments(item, bucket_s):
            out.setdefault((inc.key, inc.start_s), []).append(evidence_of(item))
    return {
        slot: sorted(evs, key=lambda e: (e.score, e.message_id))[:top_n]
        for slot, evs in out.items()
        if top_n > 0
    }
