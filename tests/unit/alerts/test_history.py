"""The per-key history the engine keeps between passes (alerts/history.py), and the engine using it:
same signals as re-reading the store every pass, while a pass that follows the previous one reads
only its own buckets."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from alerts.detectors import Signal
from alerts.history import SeriesCache
from monitor.config import AlertSettings
from monitor.windows.buckets import BucketStats
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, bucket, memory_engine, messages

B = 300


def test_a_cache_is_used_only_for_the_pass_that_follows_and_within_what_it_holds() -> None:
    cache = SeriesCache()
    assert not cache.covers(0, 0)

    cache.reset(100, 1000, {"a": [bucket("a", 100, 1, 0)], "b": []})

    assert cache.covers(100, 1000) and cache.covers(400, 1000)
    assert not cache.covers(99, 1000)  # needs history it never read
    assert not cache.covers(100, 1300)  # a skipped stretch
    assert len(cache) == 1


def test_extend_adds_buckets_and_trim_forgets_those_before_the_history() -> None:
    cache = SeriesCache()
    cache.reset(0, 600, {"a": [bucket("a", 0, 1, 0), bucket("a", 300, 2, 0)]})

    cache.extend(900, {"a": [bucket("a", 600, 3, 0)], "b": [bucket("b", 600, 1, 1)], "c": []})
    cache.trim(300)

    assert [b.start_s for b in cache.history("a")] == [300, 600]
    assert [b.start_s for b in cache.history("b")] == [600]
    assert cache.history("c") == []
    assert cache.covers(300, 900) and not cache.covers(0, 900)
    cache.trim(900)
    assert len(cache) == 0


class RecordingStore(MemoryWindowStore):
    """Notes every bulk read's range and key count."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reads: list[tuple[int, int, int]] = []

    async def buckets_many(self, keys: Sequence[str], start_s: int, end_s: int) -> dict[str, list[BucketStats]]:
        self.reads.append((start_s, end_s, len(keys)))
        return await super().buckets_many(keys, start_s, end_s)


async def stream(store: MemoryWindowStore, buckets: int) -> int:
    """A busy key with a burst, a sparse key seen every 7th bucket, and a key that appears once."""
    rnd = random.Random(3)
    for n in range(buckets):
        t = DAY0_S + n * B
        burst = 40 <= n < 44
        await store.apply(messages(t, 28 if burst else rnd.randint(0, 4), 12 + rnd.randint(0, 6)))
        if n % 7 == 3:
            await store.apply(messages(t, rnd.randint(0, 2), 3, topic="macro", tickers=("SPARSE",)))
        if n == 45:
            await store.apply(messages(t, 9, 1, topic="legal", tickers=("ONCE",)))
    return DAY0_S + buckets * B


def settings(**overrides: Any) -> AlertSettings:
    return AlertSettings(**{"seasonal_days": 0, "repeat_interval_s": 0, "baseline_buckets": 12,
                            "min_volume": 5, "max_catchup_buckets": 3, **overrides})


async def signals_of(store: MemoryWindowStore, config: AlertSettings, end: int, *, keep_history: bool
                     ) -> list[Signal]:
    engine = memory_engine(store, config, [])
    if not keep_history:  # the reference: every pass re-reads the whole history from the store
        engine._history.covers = lambda since_s, first_s: False  # type: ignore[method-assign]
    seen: list[Signal] = []
    engine.signal_observer = seen.append
    async with engine:
        await engine.begin_at(DAY0_S)
        for t in range(DAY0_S + B, end + B, 2 * B):  # passes of 2 buckets, and of 3 at the end
            await engine.evaluate(t)
        await engine.evaluate(end + 4 * B)
    return seen


async def test_kept_history_gives_the_same_signals_as_re_reading_the_store_every_pass() -> None:
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await stream(store, 60)

    kept = await signals_of(store, settings(), end, keep_history=True)
    reread = await signals_of(store, settings(), end, keep_history=False)

    assert kept == reread
    assert {s.key for s in kept} >= {"ticker:TSLA", "ticker:SPARSE", "ticker:ONCE"}
    assert any(s.triggered for s in kept)


async def test_kept_history_stays_complete_when_the_key_cap_leaves_keys_out() -> None:
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await stream(store, 60)
    capped = settings(max_keys_per_evaluation=3)

    assert await signals_of(store, capped, end, keep_history=True) == await signals_of(
        store, capped, end, keep_history=False
    )


async def test_a_pass_that_follows_the_previous_one_reads_only_its_own_buckets() -> None:
    store = RecordingStore(bucket_s=B, retention_s=8 * 86_400)
    end = await stream(store, 30)
    engine = memory_engine(store, settings(), [])
    async with engine:
        await engine.begin_at(end - 6 * B)
        await engine.evaluate(end - 3 * B)
        history_s = engine.detector_config.history_s
        await engine.evaluate(end)

    assert [(start, stop) for start, stop, _ in store.reads] == [
        (end - 6 * B - history_s, end - 3 * B),  # the first pass reads the history
        (end - 3 * B, end),  # the next, its own three buckets
    ]


def test_the_key_cap_keeps_the_market_wide_and_topic_keys_ahead_of_a_flood_of_tickers() -> None:
    """Name order alone kept junk payload tickers (``ticker:AAAA...``) ahead of every topic key."""
    engine = memory_engine(MemoryWindowStore(bucket_s=B, retention_s=86_400), settings(max_keys_per_evaluation=3), [])
    active = ["ticker:AAAA", "ticker:AAAB", "topic:earnings", "all", "topic_ticker:earnings|AAAA"]
    assert asyncio.run(engine._keys(active, {}, 0, B))[0] == ["all", "topic:earnings", "ticker:AAAA"]


async def test_the_key_cap_keeps_a_key_with_negatives_ahead_of_junk_tickers_that_sort_before_it() -> None:
    """Found by review: under the cap, tickers were kept by name, so a wave of ``AJ...`` junk tickers pushed a real
    ZION surge out of evaluation (65 minutes late, or never)."""
    store = MemoryWindowStore(bucket_s=B, retention_s=86_400)
    await store.apply(messages(DAY0_S, 0, 1, topic="", tickers=tuple(f"AJ{n:02d}" for n in range(20))))
    await store.apply(messages(DAY0_S, 3, 0, topic="", tickers=("ZION",)))
    engine = memory_engine(store, settings(max_keys_per_evaluation=3), [])
    active = await store.active_keys(DAY0_S, DAY0_S + B)
    assert "ticker:ZION" in (await engine._keys(active, {}, DAY0_S, DAY0_S + B))[0]


async def test_a_capped_multiscale_pass_reads_each_keys_buckets_once() -> None:
    """The cap reads the pass's buckets to rank the keys; the multiscale observation reuses them (it read the
    same keys' buckets again)."""
    store = RecordingStore(bucket_s=B, retention_s=86_400)
    await store.apply(messages(DAY0_S, 0, 1, topic="", tickers=tuple(f"AJ{n:02d}" for n in range(20))))
    await store.apply(messages(DAY0_S, 3, 0, topic="", tickers=("ZION",)))
    engine = memory_engine(store, settings(detection="multiscale", max_keys_per_evaluation=3), [])
    async with engine:
        await engine.begin_at(DAY0_S)
        store.reads.clear()
        await engine.evaluate(DAY0_S + B)
    keys_read = sum(n for start, _, n in store.reads if start == DAY0_S)
    assert keys_read <= len(await store.active_keys(DAY0_S, DAY0_S + B)) + 1  # each key's pass once, and all
