"""An alert cursor stored out of range (9999, by the pre-bounds bug) is repaired at start (issue 10)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from structlog.testing import capture_logs

from alerts.engine import AlertEngine
from alerts.lifecycle import AlertState, dedup_key
from alerts.model import AlertStatus, Notification
from alerts.outbox import MemoryOutbox
from alerts.state import AlertStateStore
from monitor.config import AlertSettings
from monitor.time_bounds import EventTimeBounds
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, RecordingSink, feed, messages

B = 300
YEAR_9999_S = 253_402_297_200  # 9999-12-31T23:00:00Z
NOW_S = DAY0_S + 2 * 86_400
BOUNDS = EventTimeBounds(max_future_s=3600, clock=lambda: float(NOW_S))


def _bogus_state() -> AlertState:
    """What one 9999 message left behind: a firing alert notified (and cooling down) in year 9999."""
    return AlertState(dedup_key=dedup_key("negative_sentiment", "ticker:TSLA"), rule="negative_sentiment",
                      window_key="ticker:TSLA", status=AlertStatus.RESOLVED, notified=True,
                      last_firing_notified_s=YEAR_9999_S, updated_at_s=YEAR_9999_S)


async def _surge(engine: AlertEngine, store: MemoryWindowStore) -> list[Notification]:
    out: list[Notification] = []
    for i, share in enumerate([0.1] * 30 + [0.7] * 4):
        t = DAY0_S + i * B
        await feed(store, t, B, [share], seed=i)
        await store.apply(messages(t, 12, 108, topic="macro", tickers=("AAPL",)))
        out += await engine.evaluate(t + B)
    return out


def _engine(store: MemoryWindowStore, state: AlertStateStore, bounds: EventTimeBounds | None) -> AlertEngine:
    settings = AlertSettings(seasonal_days=0, repeat_interval_s=0, delivery_poll_interval_s=0.05)
    sink = RecordingSink()
    return AlertEngine(store, settings, state, MemoryOutbox([sink.name]), [sink], time_bounds=bounds)


@pytest.mark.parametrize("bounds", [BOUNDS, None], ids=["repaired", "unbounded"])
async def test_a_cursor_in_year_9999_is_cleared_at_start_with_one_warning_and_alerting_works_again(
    state_store: AlertStateStore, bounds: EventTimeBounds | None
) -> None:
    bogus = _bogus_state()
    await state_store.commit([bogus], [], YEAR_9999_S + B)
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    engine = _engine(store, state_store, bounds)
    with capture_logs() as logs:
        async with engine:
            notes = await _surge(engine, store)
            cursor = await state_store.get_cursor()
    repairs = [e for e in logs if e["event"] == "alert_cursor_repaired"]
    firing = [n for n in notes if n.status is AlertStatus.FIRING]
    if bounds is None:  # what happened before the repair existed: the surge pages nobody
        assert repairs == [] and firing == []
        return
    assert len(repairs) == 1 and repairs[0]["cursor_s"] == YEAR_9999_S + B
    assert "source.max_future_s=3600" in repairs[0]["problem"] and repairs[0]["states_dropped"] == 1
    assert [n.alerts[0].window_key for n in firing] == ["ticker:TSLA"]
    assert cursor == DAY0_S + 34 * B


async def test_a_plausible_cursor_is_left_alone(state_store: AlertStateStore) -> None:
    fine = replace(_bogus_state(), last_firing_notified_s=DAY0_S, updated_at_s=DAY0_S)
    await state_store.commit([fine], [], DAY0_S + B)
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    with capture_logs() as logs:
        async with _engine(store, state_store, BOUNDS):
            cursor, states = await state_store.get_cursor(), await state_store.load_states()
    assert not [e for e in logs if e["event"] == "alert_cursor_repaired"]
    assert cursor == DAY0_S + B and list(states) == [fine.dedup_key]


async def test_reset_cursor_forgets_the_cursor_and_deletes_only_the_given_states(state_store: AlertStateStore) -> None:
    a, b = _bogus_state(), replace(_bogus_state(), dedup_key="other", window_key="ticker:X")
    await state_store.commit([a, b], [], YEAR_9999_S)
    await state_store.reset_cursor([a.dedup_key])
    assert await state_store.get_cursor() is None and list(await state_store.load_states()) == ["other"]
