"""End to end: window store -> AlertEngine -> outbox -> real sinks, on memory and Redis backends."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from alerts.engine import AlertEngine
from alerts.factory import build_alerting
from alerts.model import AlertStatus, Notification, Silence
from alerts.outbox import MemoryOutbox, RedisOutbox
from alerts.sinks import build_sink
from alerts.sinks.webhook import ID_HEADER, SIGNATURE_HEADER, verify_signature
from alerts.state import MemoryAlertStateStore, RedisAlertStateStore
from monitor.config import AlertSettings, Settings
from monitor.windows.memory import MemoryWindowStore
from tests.integration.alerts.receivers import Recorder, http_receiver
from tests.unit.alerts.builders import DAY0_S, feed, memory_engine, messages

B = 300
NORMAL, SPIKE = 0.1, 0.7


def alert_settings(**overrides: Any) -> AlertSettings:
    base: dict[str, Any] = {"seasonal_days": 0, "repeat_interval_s": 0, "delivery_backoff_initial_s": 0.05,
                            "delivery_poll_interval_s": 0.05, "webhook_max_attempts": 1,
                            "webhook_secret": "k", "sink_timeout_s": 2.0}
    return AlertSettings(**{**base, **overrides})


def window_store(bucket_s: int = B) -> MemoryWindowStore:
    return MemoryWindowStore(bucket_s=bucket_s, retention_s=8 * 86_400)


async def drive(engine: AlertEngine, store: MemoryWindowStore, start_s: int, pattern: list[float],
                bucket_s: int = B) -> list[Notification]:
    """Feed one bucket per share (TSLA earnings news plus steady AAPL macro news) and evaluate each."""
    out: list[Notification] = []
    for i, share in enumerate(pattern):
        t = start_s + i * bucket_s
        await feed(store, t, bucket_s, [share], seed=i)
        await store.apply(messages(t, 12, 108, topic="macro", tickers=("AAPL",)))
        out += await engine.evaluate(t + bucket_s)
    return out


def firing(ns: list[Notification]) -> list[Notification]:
    return [n for n in ns if n.status is AlertStatus.FIRING]


async def test_spike_fires_exactly_once_and_resolves_once_with_masked_evidence(tmp_path: Path) -> None:
    store = window_store()
    path = tmp_path / "alerts.jsonl"
    sink = build_sink(f"file://{path}", Settings())
    engine = memory_engine(store, alert_settings(), [sink])
    async with engine:
        ns = await drive(engine, store, DAY0_S, [NORMAL] * 30 + [SPIKE] * 4 + [NORMAL] * 6)
    assert [str(n.status) for n in ns] == ["firing", "resolved"]
    [fired] = firing(ns)
    keys = {a.window_key for a in fired.alerts}
    assert {"ticker:TSLA", "topic_ticker:earnings|TSLA"} <= keys and "ticker:AAPL" not in keys
    tsla = next(a for a in fired.alerts if a.window_key == "ticker:TSLA")
    assert tsla.signal.neg_share > 0.5 and tsla.signal.baseline_neg_share < 0.2 and tsla.evidence
    assert fired.event_time_s == DAY0_S + 31 * B
    delivered = [Notification.from_json(line) for line in path.read_bytes().splitlines()]
    assert [n.id for n in delivered] == [n.id for n in ns]  # each delivered exactly once


async def test_a_second_episode_after_the_state_was_pruned_is_delivered_under_a_new_id(tmp_path: Path) -> None:
    store = window_store()
    path = tmp_path / "alerts.jsonl"
    settings = alert_settings(cooldown_s=600, flap_window_s=600)  # resolved states are pruned after 10 min
    engine = memory_engine(store, settings, [build_sink(f"file://{path}", Settings())])
    episode = [NORMAL] * 30 + [SPIKE] * 2 + [NORMAL] * 30
    async with engine:
        ns = await drive(engine, store, DAY0_S, episode + episode)
        for _ in range(100):
            if len(path.read_bytes().splitlines()) == len(ns) if path.exists() else False:
                break
            await asyncio.sleep(0.05)
    assert [str(n.status) for n in ns] == ["firing", "resolved", "firing", "resolved"]
    assert len({n.id for n in ns}) == 4
    delivered = [Notification.from_json(line).id for line in path.read_bytes().splitlines()]
    assert delivered == [n.id for n in ns]


async def test_evaluate_twice_for_the_same_time_does_nothing_the_second_time() -> None:
    store = window_store()
    engine = memory_engine(store, alert_settings(), [])
    async with engine:
        await drive(engine, store, DAY0_S, [NORMAL] * 30 + [SPIKE])
        assert await engine.evaluate(DAY0_S + 31 * B) == []


async def test_daily_rhythm_in_a_multi_day_series_does_not_fire() -> None:
    hour, days = 3600, 6
    # every day the 13:00-16:00 (UTC) market-open session runs 50% negative; otherwise 10%
    pattern = [0.5 if 13 <= h % 24 < 16 else NORMAL for h in range(days * 24)]
    anomaly = 3 * 24 + 24 * 2 + 3  # day 5, 03:00: a real overnight spike
    pattern[anomaly] = SPIKE
    overrides = {"seasonal_halfwidth_s": hour, "baseline_buckets": 12}
    seasonal_fired: list[Notification] = []
    rolling_fired: list[Notification] = []
    for seasonal_days, fired in ((7, seasonal_fired), (0, rolling_fired)):
        store = window_store(hour)
        engine = memory_engine(store, alert_settings(seasonal_days=seasonal_days, **overrides), [])
        await feed(store, DAY0_S, hour, pattern[: 3 * 24])  # 3 days of history, not evaluated
        async with engine:
            fired += firing(await drive(engine, store, DAY0_S + 3 * 86_400, pattern[3 * 24 :], hour))
    assert rolling_fired, "without seasonality the daily session pages (the test series has a rhythm)"
    assert [(n.event_time_s - DAY0_S) // hour - 1 for n in seasonal_fired] == [anomaly]


async def test_silenced_keys_stay_quiet_until_the_silence_expires() -> None:
    store = window_store()
    state = MemoryAlertStateStore()
    engine = AlertEngine(store, alert_settings(), state, MemoryOutbox([]), [])
    until = DAY0_S + 33 * B
    for i, matcher in enumerate(["all", "topic:*", "ticker:TSLA"]):
        await state.add_silence(Silence(f"s{i}", matcher, DAY0_S, until), DAY0_S)
    async with engine:
        quiet = await drive(engine, store, DAY0_S, [NORMAL] * 30 + [SPIKE] * 2)
        later = await drive(engine, store, DAY0_S + 32 * B, [SPIKE] * 2)
    assert quiet == []
    assert [n.event_time_s for n in firing(later)] == [until]  # still firing when the silence ends


async def test_sink_outage_delays_but_does_not_drop() -> None:
    rec = Recorder(statuses=[500, 500, 200])
    store = window_store()
    async with http_receiver(rec) as base:
        settings = alert_settings()
        sink = build_sink(f"webhook+{base}/risk", Settings(alerts=settings))
        engine = memory_engine(store, settings, [sink])
        async with engine:
            [fired] = await drive(engine, store, DAY0_S, [NORMAL] * 30 + [SPIKE])
            for _ in range(100):
                if await engine.outbox.is_delivered(sink.name, fired.id):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # any duplicate would arrive now
    assert [r.status for r in rec.requests] == [500, 500, 200]
    assert {r.headers[ID_HEADER] for r in rec.requests} == {fired.id}
    assert all(verify_signature("k", r.body, r.headers[SIGNATURE_HEADER]) for r in rec.requests)
    assert await engine.outbox.pending(sink.name) == 0


async def test_restart_on_the_same_redis_does_not_refire_a_delivered_alert(redis_url: str,
                                                                           tmp_path: Path) -> None:
    store = window_store()
    path = tmp_path / "alerts.jsonl"
    prefix = f"test-{uuid.uuid4().hex}:alerts"

    def redis_engine(key_prefix: str) -> AlertEngine:
        sink = build_sink(f"file://{path}", Settings())
        return AlertEngine(store, alert_settings(), RedisAlertStateStore(redis_url, key_prefix),
                           RedisOutbox(redis_url, key_prefix, [sink.name]), [sink])

    async with redis_engine(prefix) as first:
        assert len(await drive(first, store, DAY0_S, [NORMAL] * 30 + [SPIKE])) == 1
    assert len(path.read_bytes().splitlines()) == 1
    async with redis_engine(prefix) as second:
        assert await second.evaluate(DAY0_S + 31 * B) == []  # same bucket again: already evaluated
        assert await drive(second, store, DAY0_S + 31 * B, [SPIKE] * 2) == []  # still firing: no refire
    assert len(path.read_bytes().splitlines()) == 1
    async with redis_engine(f"test-{uuid.uuid4().hex}:alerts") as fresh:  # control: state is what stops it
        assert len(await fresh.evaluate(DAY0_S + 33 * B)) == 1


async def test_build_alerting_picks_backends_from_the_store_url(redis_url: str) -> None:
    store = window_store()
    memory = build_alerting(Settings(), store)
    assert isinstance(memory.state, MemoryAlertStateStore) and isinstance(memory.outbox, MemoryOutbox)
    redis = build_alerting(Settings(windows={"store_url": redis_url, "key_prefix": "bt"}), store)
    assert isinstance(redis.state, RedisAlertStateStore) and isinstance(redis.outbox, RedisOutbox)
    assert redis.state.states_key == "{bt:alerts}:states"
    async with redis:
        assert await redis.evaluate(DAY0_S) == []
