"""Test doubles for unit tests only (integration tests use the real components)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime

from consumers.deadletter import Headers
from monitor.lifecycle import Service
from monitor.types import Prediction, RawMessage, Sentiment, SourceKind, SourceRecord


class RecordingClassifier:
    """Labels by keyword (``bad`` → negative, ``good`` → positive) and records every call's size."""

    name = "recording"

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.calls: list[int] = []
        self.fail_with = fail_with
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.gate.wait(5)
        self.calls.append(len(texts))
        if self.fail_with is not None:
            raise self.fail_with
        if any("poison" in t for t in texts):
            raise ValueError("tokenizer exploded")
        return [self._one(t) for t in texts]

    @staticmethod
    def _one(text: str) -> Prediction:
        if "bad" in text:
            return Prediction("markets", 0.9, Sentiment.NEGATIVE, 0.9, -0.8, (0.9, 0.05, 0.05))
        if "good" in text:
            return Prediction("markets", 0.9, Sentiment.POSITIVE, 0.9, 0.8, (0.05, 0.05, 0.9))
        return Prediction("general_news", 0.5, Sentiment.NEUTRAL, 0.8, 0.0, (0.1, 0.8, 0.1))


def msg(mid: str, text: str, epoch_s: int, tickers: tuple[str, ...] = ()) -> RawMessage:
    return RawMessage(mid, SourceKind.NEWS, text, datetime.fromtimestamp(epoch_s, tz=UTC), tickers)


class ListSource(Service):
    """Source over fixed batches; records commits (positions are list indices)."""

    def __init__(self, batches: Sequence[Sequence[RawMessage]]) -> None:
        self._batches = [list(b) for b in batches]
        self.committed: list[list[int]] = []

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        pos = 0
        for batch in self._batches:
            records = []
            for m in batch:
                records.append(SourceRecord(m, pos))
                pos += 1
            yield records

    async def commit(self, records: Sequence[SourceRecord]) -> None:
        self.committed.append([int(r.position) for r in records])


class CollectingDeadLetter(Service):
    def __init__(self) -> None:
        self.items: list[tuple[bytes, str, str, Mapping[str, object]]] = []

    async def send(self, raw: bytes, reason: str, detail: str, origin: Mapping[str, object], *,
                   key: bytes | None = None, headers: Headers = ()) -> None:
        self.items.append((raw, reason, detail, origin))
