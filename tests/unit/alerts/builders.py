"""Test data builders for the alerts tests: bucket series, messages and engines over memory backends."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from alerts.detectors import Signal
from alerts.engine import AlertEngine
from alerts.lifecycle import AlertState, LifecyclePolicy, step
from alerts.model import Notification
from alerts.outbox import MemoryOutbox
from alerts.sinks.base import Sink
from alerts.state import MemoryAlertStateStore
from monitor.config import AlertSettings
from monitor.lifecycle import Service
from monitor.types import ClassifiedMessage, Prediction, RawMessage, Sentiment, SourceKind
from monitor.windows.buckets import BucketStats
from monitor.windows.memory import MemoryWindowStore

DAY0_S = 1_700_006_400  # 2023-11-15 00:00:00 UTC, a day boundary


def bucket(key: str, start_s: int, negative: int, neutral: int, positive: int = 0) -> BucketStats:
    score = -0.8 * negative + 0.6 * positive
    return BucketStats(key, start_s, negative, neutral, positive, score_sum=score)


def shares(key: str, start_s: int, bucket_s: int, neg_shares: Iterable[float], volume: int = 40,
           seed: int = 7) -> list[BucketStats]:
    """One bucket per share, consecutive, with +-1 message of deterministic noise."""
    rnd = random.Random(seed)
    out = []
    for i, share in enumerate(neg_shares):
        neg = max(0, round(share * volume) + rnd.choice((-1, 0, 1)))
        out.append(bucket(key, start_s + i * bucket_s, neg, volume - neg))
    return out


def signal(key: str, end_s: int, active: bool, neg_share: float = 0.7) -> Signal:
    return Signal(
        key=key, bucket_start_s=end_s - 300, bucket_end_s=end_s, volume=50, neg_share=neg_share,
        mean_score=-0.5, baseline_kind="rolling", baseline_samples=24, baseline_neg_share=0.1,
        baseline_median_neg_share=0.1, baseline_sigma=0.03, baseline_mad_sigma=0.03,
        baseline_mean_score=0.1, z_ewma=9.0 if active else 0.0, z_robust=9.0 if active else 0.0,
        cusum=0.0, score_drop=0.6 if active else 0.0, triggered=("spike",) if active else (),
    )


_ids = itertools.count(1)


def episode(key: str = "ticker:TSLA", bucket_s: int = 300) -> list[Notification]:
    """One alert's notices: FIRING at bucket 1, RESOLVED at bucket 4, FIRING again at bucket 6."""
    states: dict[str, AlertState] = {}
    out: list[Notification] = []
    for i, active in enumerate([True, False, False, False, True, True], 1):
        now_s = DAY0_S + i * bucket_s
        result = step(states, [signal(key, now_s, active)], now_s, LifecyclePolicy(repeat_interval_s=0, cooldown_s=0))
        states.update(result.states)
        out += result.notifications
    return out


TSLA, TSLA_EARNINGS = "ticker:TSLA", "topic_ticker:earnings|TSLA"
"""Two alerts the engine groups into one notification (same group key)."""


def grouped(plan: Iterable[tuple[bool, bool]], resolve_after_buckets: int
            ) -> tuple[list[Notification], dict[str, AlertState]]:
    """The notices of ``TSLA`` and ``TSLA_EARNINGS``, one bucket per ``(TSLA active, TSLA_EARNINGS active)`` of
    ``plan``, and their final states."""
    policy = LifecyclePolicy(repeat_interval_s=0, cooldown_s=0, resolve_after_buckets=resolve_after_buckets)
    states: dict[str, AlertState] = {}
    out: list[Notification] = []
    for i, (tsla, pair) in enumerate(plan, 1):
        now_s = DAY0_S + i * 300
        result = step(states, [signal(TSLA, now_s, tsla), signal(TSLA_EARNINGS, now_s, pair)], now_s, policy)
        states.update(result.states)
        out += result.notifications
    return out, states


def messages(
    start_s: int, negative: int, neutral: int, topic: str = "earnings", tickers: tuple[str, ...] = ("TSLA",),
    text: str = "Shares slump after guidance cut", url: str | None = None,
) -> list[ClassifiedMessage]:
    """Messages within the first minute after ``start_s`` (so inside the bucket starting there)."""
    out = []
    for label, count, score in ((Sentiment.NEGATIVE, negative, -0.9), (Sentiment.NEUTRAL, neutral, 0.0)):
        for _ in range(count):
            _counter = next(_ids)
            raw = RawMessage(
                id=f"m{_counter}", source=SourceKind.NEWS, text=f"{text} #{_counter}",
                event_time=datetime.fromtimestamp(start_s + _counter % 60, tz=UTC), tickers=tickers, url=url,
            )
            pred = Prediction(topic=topic, topic_confidence=0.9, sentiment=label, sentiment_confidence=0.9,
                              score=score - (_counter % 10) / 100)
            out.append(ClassifiedMessage(raw, pred))
    return out


async def feed(store: MemoryWindowStore, start_s: int, bucket_s: int, neg_shares: Iterable[float],
               volume: int = 40, seed: int = 7, **kwargs: Any) -> int:
    """Apply one bucket of messages per share; returns the end of the last bucket."""
    rnd = random.Random(seed)
    t = start_s
    for share in neg_shares:
        neg = max(0, round(share * volume) + rnd.choice((-1, 0, 1)))
        await store.apply(messages(t, neg, volume - neg, **kwargs))
        t += bucket_s
    return t


def memory_engine(store: MemoryWindowStore, settings: AlertSettings, sinks: list[Sink]) -> AlertEngine:
    return AlertEngine(store, settings, MemoryAlertStateStore(), MemoryOutbox([s.name for s in sinks]), sinks)


class RecordingSink(Service):
    """A sink double that records what it is sent (for tests that are not about I/O)."""

    def __init__(self, name: str = "recording://") -> None:
        self.name = name
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)
