"""The engine with multiscale detection: one read of each pass, same alerts however the buckets are
grouped into evaluations (live one by one, replay in chunks), and baselines rebuilt after a restart."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from alerts.detectors import Signal
from alerts.engine import REBUILD_READ_BUCKETS, AlertEngine
from alerts.model import AlertStatus, Notification
from alerts.multiscale import STEP_CHUNK_KEYS, MultiScaleConfig, MultiScaleDetector
from alerts.outbox import MemoryOutbox
from alerts.state import MemoryAlertStateStore
from monitor.config import AlertSettings
from monitor.windows.buckets import BucketStats
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, messages

B = 300
DAY = 86_400


def settings(**kw: object) -> AlertSettings:
    return AlertSettings(detection="multiscale", sinks=[], repeat_interval_s=0, **kw)  # type: ignore[arg-type]


async def sparse_history(store: MemoryWindowStore, days: int, story_at_bucket: int | None = None) -> int:
    """A busy macro key (4 msgs / 5 min) and TSLA with a message every 2 hours; optionally a story."""
    n = days * DAY // B
    for i in range(n):
        t = DAY0_S + i * B
        await store.apply(messages(t, int(i % 5 == 0), 3, topic="macro", tickers=("AAPL",)))
        if i % 24 == 0:
            await store.apply(messages(t, int(i % 120 == 0), 1))
        if story_at_bucket is not None and story_at_bucket <= i < story_at_bucket + 3:
            await store.apply(messages(t, 3, 0))
    return DAY0_S + n * B


def engine(store: MemoryWindowStore, s: AlertSettings) -> AlertEngine:
    return AlertEngine(store, s, MemoryAlertStateStore(), MemoryOutbox([]), [])


async def evaluate_every(eng: AlertEngine, start_s: int, end_s: int, step_buckets: int) -> list[Notification]:
    out: list[Notification] = []
    t = start_s
    while t < end_s:
        t = min(t + step_buckets * B, end_s)
        out += await eng.evaluate(t)
    return out


async def test_live_one_bucket_at_a_time_and_replay_in_chunks_fire_the_same_alerts() -> None:
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await sparse_history(store, 5, story_at_bucket=4 * DAY // B + 150)
    runs = []
    for step in (1, 12):
        eng = engine(store, settings(max_catchup_buckets=10_000))
        await eng.evaluate(DAY0_S + B)
        runs.append(await evaluate_every(eng, DAY0_S + B, end, step))
    live, replay = runs
    assert [n.id for n in live] == [n.id for n in replay]
    fired = [n for n in live if n.status is AlertStatus.FIRING]
    assert fired and any(a.window_key == "ticker:TSLA" for a in fired[0].alerts)
    top = next(a for a in fired[0].alerts if a.window_key == "ticker:TSLA").signal.top
    assert top is not None and top.detector == "burst" and top.negatives >= 6


async def test_a_restarted_engine_rebuilds_its_baselines_from_the_store() -> None:
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await sparse_history(store, 5, story_at_bucket=4 * DAY // B + 150)
    continuous = engine(store, settings(max_catchup_buckets=10_000))
    await continuous.evaluate(DAY0_S + B)
    notes = await evaluate_every(continuous, DAY0_S + B, end, 12)
    state = MemoryAlertStateStore()
    first = AlertEngine(store, settings(max_catchup_buckets=10_000), state, MemoryOutbox([]), [])
    await first.evaluate(DAY0_S + B)
    half = DAY0_S + 4 * DAY
    before = await evaluate_every(first, DAY0_S + B, half, 12)
    restarted = AlertEngine(store, settings(max_catchup_buckets=10_000), state, MemoryOutbox([]), [])
    after = await evaluate_every(restarted, half, end, 12)
    assert [n.id for n in before + after] == [n.id for n in notes]
    assert restarted.multiscale is not None and restarted.multiscale.until_s == end


async def test_after_a_restart_the_tail_of_a_story_that_already_paged_does_not_page_again() -> None:
    """The rebuild stepped the history without evaluating it, so an episode that ended there no longer
    marked its windows spent: a trickle of negatives after the story paged again after every restart
    (found by review: 3 of 4 trickles differed before)."""
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    story = 3 * DAY // B + 100
    end = await sparse_history(store, 5, story_at_bucket=story)
    trickle = story + 90
    for i in range(8):  # one negative an hour
        await store.apply(messages(DAY0_S + (trickle + 12 * i) * B, 1, 0))
    cut = DAY0_S + (trickle - 5) * B
    runs = []
    for restart in (False, True):
        state = MemoryAlertStateStore()
        eng = AlertEngine(store, settings(max_catchup_buckets=10_000), state, MemoryOutbox([]), [])
        await eng.evaluate(DAY0_S + B)
        await evaluate_every(eng, DAY0_S + B, cut, 1)
        if restart:
            eng = AlertEngine(store, settings(max_catchup_buckets=10_000), state, MemoryOutbox([]), [])
        runs.append([n.id for n in await evaluate_every(eng, cut, end, 1)])
    continuous, restarted = runs
    assert continuous == [], "the trickle is the tail of a story that paged, not a new one"
    assert restarted == continuous


class SpanRecordingStore(MemoryWindowStore):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.spans_s: list[int] = []

    async def buckets_many(self, keys: Sequence[str], start_s: int, end_s: int) -> dict[str, list[BucketStats]]:
        self.spans_s.append(end_s - start_s)
        return await super().buckets_many(keys, start_s, end_s)


async def test_a_rebuild_reads_the_history_a_day_at_a_time_and_lets_other_tasks_run() -> None:
    """Days of history are seconds of CPU: in one piece they stalled Kafka heartbeats and /healthz."""
    store = SpanRecordingStore(B, retention_s=30 * DAY)
    end = await sparse_history(store, 4)
    ticks = 0
    rebuilding = True

    async def ticker() -> None:
        nonlocal ticks
        while rebuilding:
            ticks += 1
            await asyncio.sleep(0)

    restarted = engine(store, settings(max_catchup_buckets=1))
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks = 0
    await restarted.evaluate(end)
    rebuilding = False
    await task
    assert restarted.multiscale is not None and restarted.multiscale.until_s > DAY0_S + 3 * DAY
    assert max(store.spans_s) <= REBUILD_READ_BUCKETS * B and len(store.spans_s) >= 4
    assert ticks >= 4 * DAY // B - 1, "after every bucket"


async def test_keys_left_out_of_evaluation_by_the_cap_are_still_observed() -> None:
    """Found by review: the live pass read only the evaluated keys' buckets, so a key the cap left out got the
    stream's exposure without its own negatives (a rate too low, false bursts later) and live state differed
    from a rebuild, which reads every key."""
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    for i in range(24):
        t = DAY0_S + i * B
        for name in ("AAA", "BBB", "CCC", "ZZZ"):
            await store.apply(messages(t, 1, 1, tickers=(name,)))
    eng = engine(store, settings(max_keys_per_evaluation=3, max_catchup_buckets=10_000))
    await eng.evaluate(DAY0_S + B)
    await eng.evaluate(DAY0_S + 24 * B)
    assert eng.multiscale is not None
    zzz = eng.multiscale.keys.get("ticker:ZZZ")
    assert zzz is not None and zzz.last_seen_s > 0


async def test_a_bucket_of_spam_tickers_starts_states_only_while_there_is_room_and_evicts_no_real_key() -> None:
    """Found by review: every active key was observed, so one bucket naming 10,560 new tickers made as many states
    (192k keys: a 5 s event-loop stall), and eviction by last sighting then dropped the real keys and ``all``."""
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await sparse_history(store, 2)
    await store.apply(messages(end, 0, 1, topic="macro", tickers=tuple(f"J{n:03d}" for n in range(32))))
    await store.apply(messages(end, 0, 1, topic="macro", tickers=tuple(f"K{n:03d}" for n in range(32))))
    eng = engine(store, settings(max_catchup_buckets=10_000, max_tracked_keys=40))
    await eng.evaluate(DAY0_S + B)
    await eng.evaluate(end + B)
    assert eng.multiscale is not None
    assert {"all", "ticker:AAPL", "ticker:TSLA"} <= set(eng.multiscale.keys)
    assert len(eng.multiscale.keys) <= 40


async def test_a_second_episode_shows_its_own_stories_not_those_of_the_episode_that_already_paged() -> None:
    """Found by review: the evidence range was ``end - scale``, but the window a new episode is tested on starts where
    the previous one ended, so 4 of 5 headlines of a new page were the previous episode's."""
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await sparse_history(store, 5)
    first, second = DAY0_S + (4 * DAY // B + 20) * B, DAY0_S + (4 * DAY // B + 100) * B
    for i in range(3):  # a sudden story, then a slow one that fires at 24 h, a window reaching back past the first
        await store.apply(messages(first + i * B, 3, 0, text="First story: plant fire"))
    for i in range(12):
        await store.apply(messages(second + i * 12 * B, 1, 0, text="Second story: recall widens"))
    eng = engine(store, settings(max_catchup_buckets=10_000))
    await eng.evaluate(DAY0_S + B)
    notes = await evaluate_every(eng, DAY0_S + B, end, 12)
    firing = [n for n in notes if n.status is AlertStatus.FIRING
              and any(a.window_key == "ticker:TSLA" for a in n.alerts)]
    assert len(firing) == 2, [n.title for n in notes]
    [item] = [a for a in firing[1].alerts if a.window_key == "ticker:TSLA"]
    assert item.signal.top is not None and item.signal.top.scale_s == DAY
    texts = [ev.text for ev in item.evidence]
    assert any(t.startswith("Second story") for t in texts) and not any(t.startswith("First story") for t in texts)


async def two_rhythm_history(store: MemoryWindowStore, days: int) -> int:
    """US-hours tickers (busy 13-21 UTC) and Tokyo-hours ones (busy 0-7 UTC), a message now and then at other hours,
    every 5th negative; a three-negative story on a Tokyo ticker each day from day 2, at the end of its session."""
    n = days * DAY // B
    for i in range(n):
        t = DAY0_S + i * B
        hour = (t // 3600) % 24
        for name, busy in (("US0", 13 <= hour < 21), ("US1", 13 <= hour < 21), ("TK0", hour < 7), ("TK1", hour < 7)):
            if (busy and i % 3 == 0) or i % 29 == 0:
                await store.apply(messages(t, int(i % 15 == 0), 1, topic="macro", tickers=(name,)))
        if i >= 2 * DAY // B and i % (DAY // B) in (80, 81, 82):  # 06:40 UTC
            await store.apply(messages(t, 3, 0, topic="earnings", tickers=("TK0",)))
    return DAY0_S + n * B


def observed_engine(store: MemoryWindowStore, state: MemoryAlertStateStore, seen: dict[tuple[str, int], float]
                    ) -> AlertEngine:
    """An engine recording each signal's expected negatives per hour in ``seen``, by (key, bucket start)."""
    eng = AlertEngine(store, settings(max_catchup_buckets=10_000), state, MemoryOutbox([]), [])
    eng.signal_observer = lambda s: seen.__setitem__((s.key, s.bucket_start_s), s.expected_negatives_per_h)
    return eng


async def test_a_restart_gives_the_same_signals_as_a_continuous_run_with_keys_on_their_own_rhythm() -> None:
    """Found by review: a key's rhythm weights were recomputed every 12 of its catch-ups, so the buckets they changed
    at depended on how often the key was evaluated (live: at every bucket while its alert is pending or firing; the
    rebuild after a restart: at buckets with its data), and with ``hour_profile`` on (production) a restarted engine
    paged differently."""
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await two_rhythm_history(store, 5)
    cut = DAY0_S + 4 * DAY + 7 * 3600
    runs: list[dict[tuple[str, int], float]] = []
    ids: list[list[str]] = []
    for restart in (False, True):
        state = MemoryAlertStateStore()
        seen: dict[tuple[str, int], float] = {}
        eng = observed_engine(store, state, seen)
        await eng.evaluate(DAY0_S + B)
        notes = await evaluate_every(eng, DAY0_S + B, cut, 1)
        if restart:
            eng = observed_engine(store, state, seen)
        notes += await evaluate_every(eng, cut, end, 1)
        runs.append({k: v for k, v in seen.items() if k[1] >= cut})
        ids.append([n.id for n in notes])
    continuous, restarted = runs
    assert settings().hour_profile
    assert ids[0], "the stories page"
    both = continuous.keys() & restarted.keys()
    assert len(both) > 100
    assert {k: restarted[k] for k in both} == pytest.approx({k: continuous[k] for k in both}, rel=1e-9)
    assert ids[1] == ids[0]


async def spam_history(store: MemoryWindowStore, tickers: int) -> int:
    """Two days of ``sparse_history``, then one bucket of negative spam naming ``tickers`` one-off tickers (and as many
    topic x ticker keys), then an hour of ordinary flow. Returns its end."""
    spam = await sparse_history(store, 2)
    for n in range(0, tickers, 32):
        await store.apply(messages(spam, 1, 0, topic="macro", tickers=tuple(f"J{m:05d}" for m in range(n, n + 32))))
    for i in range(1, 13):
        await store.apply(messages(spam + i * B, 0, 3, topic="macro", tickers=("AAPL",)))
    return spam + 13 * B


async def test_a_rebuild_observes_and_evaluates_a_spam_bucket_as_the_live_pass_did() -> None:
    """Found by review: the rebuild observed and evaluated every key of a bucket, past ``max_tracked_keys`` and
    ``max_keys_per_evaluation``, so after a spam bucket a restarted engine tracked other keys than the live one."""
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await spam_history(store, 64)
    s = settings(max_catchup_buckets=10_000, max_tracked_keys=60, max_keys_per_evaluation=20)
    live = engine(store, s)
    await live.evaluate(DAY0_S + B)
    await evaluate_every(live, DAY0_S + B, end, 1)
    restarted = engine(store, s)
    await restarted._rebuild(MultiScaleDetector(MultiScaleConfig.from_settings(s, B)), end)
    assert live.multiscale is not None and restarted.multiscale is not None
    assert sorted(restarted.multiscale.keys) == sorted(live.multiscale.keys)
    assert {k: st.sightings for k, st in restarted.multiscale.keys.items()} == pytest.approx(
        {k: st.sightings for k, st in live.multiscale.keys.items()})


async def test_a_rebuild_lets_other_tasks_run_within_a_bucket_of_thousands_of_keys(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: one bucket of 96k spam keys was one step of the rebuild, a 12 s event-loop stall."""
    store = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await spam_history(store, 1600)
    stepped = 0
    observe, signal = MultiScaleDetector._observe, MultiScaleDetector._signal

    def counted_observe(self: MultiScaleDetector, key: str, stats: BucketStats) -> None:
        nonlocal stepped
        stepped += 1
        observe(self, key, stats)

    def counted_signal(self: MultiScaleDetector, key: str, start_s: int) -> Signal:
        nonlocal stepped
        stepped += 1
        return signal(self, key, start_s)

    monkeypatch.setattr(MultiScaleDetector, "_observe", counted_observe)
    monkeypatch.setattr(MultiScaleDetector, "_signal", counted_signal)
    seen = [0]  # keys stepped each time another task got to run
    rebuilding = True

    async def ticker() -> None:
        while rebuilding:
            seen.append(stepped)
            await asyncio.sleep(0)

    restarted = engine(store, settings())
    task = asyncio.create_task(ticker())
    await restarted._rebuild(MultiScaleDetector(MultiScaleConfig.from_settings(settings(), B)), end)
    rebuilding = False
    await task
    seen.append(stepped)
    assert stepped > 6 * STEP_CHUNK_KEYS, "the spam bucket's keys are observed and evaluated"
    assert max(b - a for a, b in itertools.pairwise(seen)) <= STEP_CHUNK_KEYS
