"""Detection after a pause or a restart: every bucket from the durable cursor is evaluated, in bounded
passes, none skipped and none twice."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from alerts.engine import AlertEngine
from alerts.lifecycle import AlertState
from alerts.model import Notification, Silence
from alerts.outbox import MemoryOutbox
from alerts.state import ANY_CURSOR, MemoryAlertStateStore
from monitor.config import AlertSettings
from monitor.windows.buckets import align_s
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, feed, memory_engine

B = 300
PATTERN = [0.1] * 30 + [0.7] * 4 + [0.1] * 6


def settings(**overrides: Any) -> AlertSettings:
    return AlertSettings(**{"seasonal_days": 0, "repeat_interval_s": 0, **overrides})


def summary(ns: list[Notification]) -> list[tuple[str, str, int]]:
    return [(n.id, str(n.status), n.event_time_s) for n in ns]


class CountingState(MemoryAlertStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.passes: list[tuple[int | None, int]] = []

    async def commit(self, states: Any, deleted: Any, cursor_s: int, after_s: int | None = ANY_CURSOR) -> None:
        self.passes.append((self._cursor, cursor_s))
        await super().commit(states, deleted, cursor_s, after_s)


async def test_a_backlog_far_past_max_catchup_buckets_is_caught_up_in_bounded_passes_not_skipped() -> None:
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, PATTERN)
    reference = memory_engine(store, settings(), [])
    async with reference:
        expected = [n for t in range(DAY0_S + B, end + B, B) for n in await reference.evaluate(t)]
    assert any(str(n.status) == "firing" for n in expected)

    state = CountingState()
    paused = AlertEngine(store, settings(max_catchup_buckets=3), state, reference.outbox, [])
    async with paused:
        got = await paused.evaluate(DAY0_S + B)  # the first evaluation ever: one bucket
        got += await paused.evaluate(end)  # then a pause of 39 buckets, 13 times max_catchup_buckets
        assert await paused.evaluate(end) == []  # nothing is evaluated twice
    assert summary(got) == summary(expected)
    cursors = [c for _, c in state.passes]
    assert cursors == [*range(DAY0_S + B, end, 3 * B), end]
    assert all(prev is None or cur - prev <= 3 * B for prev, cur in state.passes)


class StallingState(MemoryAlertStateStore):
    """A commit that waits for ``stall`` (a leader stalled past its lease), on a store shared with another."""

    def __init__(self, shared: MemoryAlertStateStore) -> None:
        super().__init__()
        self.shared = shared
        self.stall: asyncio.Event | None = None

    async def load_states(self) -> dict[str, AlertState]:
        return await self.shared.load_states()

    async def get_cursor(self) -> int | None:
        return await self.shared.get_cursor()

    async def list_silences(self) -> list[Silence]:
        return await self.shared.list_silences()

    async def commit(self, states: Any, deleted: Any, cursor_s: int, after_s: int | None = ANY_CURSOR) -> None:
        if self.stall is not None:
            await self.stall.wait()
        await self.shared.commit(states, deleted, cursor_s, after_s)


async def test_a_stalled_leaders_late_commit_does_not_move_the_cursor_back() -> None:
    """Found by review: it did, and the new leader judged those buckets again, sending a RESOLVED for an
    alert that was still spiking."""
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, PATTERN)
    shared = MemoryAlertStateStore()
    await shared.commit([], [], DAY0_S + 25 * B)
    old_state, new_state = StallingState(shared), StallingState(shared)
    old = AlertEngine(store, settings(), old_state, MemoryOutbox([]), [])
    new = AlertEngine(store, settings(), new_state, MemoryOutbox([]), [])
    old_state.stall = asyncio.Event()
    stalled = asyncio.create_task(old.evaluate(DAY0_S + 26 * B))
    await asyncio.sleep(0.05)
    await new.evaluate(end)
    with capture_logs() as logs:
        old_state.stall.set()
        assert await stalled == []
    assert await shared.get_cursor() == align_s(end, B)
    assert [e["event"] for e in logs if e["event"] == "alert_pass_superseded"] == ["alert_pass_superseded"]


class StallingWindows:
    """The shared window store, with reads of a pass's active keys waiting for ``stall`` (a leader frozen mid-pass)."""

    def __init__(self, store: MemoryWindowStore) -> None:
        self.store = store
        self.stall: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def active_keys(self, since_s: int, until_s: int | None = None) -> list[str]:
        if self.stall is not None:
            await self.stall.wait()
        return await self.store.active_keys(since_s, until_s)


class RecordingOutbox(MemoryOutbox):
    def __init__(self) -> None:
        super().__init__([])
        self.queued: list[str] = []

    async def enqueue(self, notification: Notification, now_s: float) -> bool:
        self.queued.append(notification.id)
        return await super().enqueue(notification, now_s)


async def test_a_leader_that_stalled_mid_pass_queues_none_of_its_notices_once_another_moved_the_cursor() -> None:
    """Found by review (3 daemons, the leader frozen 5 s mid-pass): the stale pass queued its notices before its
    commit found the cursor moved, so a RESOLVED at the wrong time went out and the new leader's was a duplicate."""
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, PATTERN)
    shared = MemoryAlertStateStore()
    await shared.commit([], [], DAY0_S + 25 * B)
    windows = StallingWindows(store)
    stale_outbox = RecordingOutbox()
    old = AlertEngine(windows, settings(), StallingState(shared), stale_outbox, [])  # type: ignore[arg-type]
    new = AlertEngine(store, settings(), StallingState(shared), MemoryOutbox([]), [])
    windows.stall = asyncio.Event()
    stalled = asyncio.create_task(old.evaluate(end))
    await asyncio.sleep(0.05)
    assert any(str(n.status) == "firing" for n in await new.evaluate(end)), "the surge is in the stalled pass"
    with capture_logs() as logs:
        windows.stall.set()
        assert await stalled == []
    assert stale_outbox.queued == []
    assert [e["event"] for e in logs if e["event"] == "alert_pass_superseded"] == ["alert_pass_superseded"]


async def surge_engine() -> tuple[AlertEngine, MemoryAlertStateStore, int]:
    """An engine over the surge PATTERN in memory, its state store, and the end of the pattern."""
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, PATTERN)
    state = MemoryAlertStateStore()
    return AlertEngine(store, settings(), state, MemoryOutbox([]), []), state, end


async def test_a_detection_cursor_gone_after_it_was_seen_is_reported_once_as_lost_alert_state() -> None:
    """Found by review: the alert store's keys hash to their own slot (often another Redis Cluster shard), so its
    loss was invisible to the windows' marker: detection silently restarted at the newest bucket."""
    engine, state, end = await surge_engine()
    async with engine:
        with capture_logs() as logs:
            await engine.evaluate(DAY0_S + B)
            await engine.evaluate(DAY0_S + 2 * B)
            state._cursor = None  # the alert store's shard restarted without persistence: all of it gone
            state._states.clear()
            await engine.evaluate(DAY0_S + 3 * B)
            await engine.evaluate(end)
    lost = [e for e in logs if e["event"] == "alert_store_lost_data"]
    assert [e["log_level"] for e in lost] == ["error"] and "silences" in lost[0]["impact"]


async def test_a_cursor_cleared_by_another_instances_repair_is_not_reported_as_lost_data() -> None:
    """Found by the regression review: a rolling deploy's start repairs an implausible cursor (it clears it and
    keeps the alert states); the leader then logged alert_store_lost_data for a store that lost nothing."""
    engine, state, end = await surge_engine()
    async with engine:
        with capture_logs() as logs:
            for t in range(DAY0_S + B, end + B, B):
                await engine.evaluate(t)
            assert await state.load_states(), "the surge left alert states"
            state._cursor = None  # cleared, states kept
            await engine.evaluate(end + B)
    assert not [e for e in logs if e["event"] == "alert_store_lost_data"]


async def test_catching_up_on_old_data_tracks_its_episodes_without_paging_and_says_so() -> None:
    """Found by review: a new consumer group on a topic holding a month of history paged every incident in it."""
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, PATTERN)
    engine = AlertEngine(store, settings(max_catchup_buckets=100), MemoryAlertStateStore(), MemoryOutbox([]), [],
                         clock=lambda: end + 86_400)
    engine.page_max_age_s = 6 * 3600
    with capture_logs() as logs:
        async with engine:
            assert await engine.evaluate(DAY0_S + B) + await engine.evaluate(end) == []
            states = await engine.state.load_states()
    assert any(s.started_at_s is not None for s in states.values()), "the episode is tracked"
    [warning] = [e for e in logs if e["event"] == "alerts_not_paged_historical"]
    assert warning["alerts"] >= 1 and warning["max_page_age_s"] == 6 * 3600


async def test_with_max_page_age_s_data_newer_than_it_pages_as_before() -> None:
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, PATTERN)
    engine = AlertEngine(store, settings(max_catchup_buckets=100), MemoryAlertStateStore(), MemoryOutbox([]), [],
                         clock=lambda: end + 60)
    engine.page_max_age_s = 6 * 3600
    async with engine:
        got = await engine.evaluate(DAY0_S + B) + await engine.evaluate(end)
    assert any(str(n.status) == "firing" for n in got)
