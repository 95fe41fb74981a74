"""What the engine exports for dashboards: firing alerts and the per-topic negative share."""

from __future__ import annotations

import pytest

from alerts.engine import AlertEngine
from alerts.outbox import MemoryOutbox
from alerts.state import MemoryAlertStateStore
from monitor import metrics
from monitor.time_bounds import EventTimeBounds
from tests.integration.alerts.test_engine import NORMAL, SPIKE, alert_settings, drive, window_store
from tests.unit.alerts.builders import DAY0_S, memory_engine


def value(name: str, **labels: str) -> float | None:
    return metrics.prometheus_client_value(name, **labels)


async def test_firing_gauge_and_topic_negative_share_follow_the_evaluated_buckets() -> None:
    store = window_store()
    engine = memory_engine(store, alert_settings(), [])
    async with engine:
        await drive(engine, store, DAY0_S, [NORMAL] * 30 + [SPIKE] * 2)
        assert (value("finsent_alerts_firing") or 0) >= 1
        assert value("finsent_topic_negative_share", topic="macro") == 0.1  # 12 of 120, steady
        assert (value("finsent_topic_negative_share", topic="earnings") or 0) > 0.5
        await drive(engine, store, DAY0_S + 32 * 300, [NORMAL] * 6)
        assert value("finsent_alerts_firing") == 0
        assert (value("finsent_topic_negative_share", topic="earnings") or 1) < 0.2


def test_topic_label_set_is_bounded_and_a_quiet_topic_disappears() -> None:
    metrics.observe_topic_negative_shares({f"t{i:03d}": 0.5 for i in range(metrics.MAX_TOPIC_LABELS + 20)})
    exported = metrics.exported_topics()
    assert len(exported) <= metrics.MAX_TOPIC_LABELS
    some = sorted(exported)[-1]
    metrics.observe_topic_negative_shares({some: None})
    assert value("finsent_topic_negative_share", topic=some) is None
    metrics.observe_topic_negative_shares(dict.fromkeys(metrics.exported_topics()))  # leave nothing behind
    assert metrics.exported_topics() == frozenset()


@pytest.mark.parametrize(("stored_s", "exported_s"), [(DAY0_S + 3_600, DAY0_S + 3_600), (None, 0.0),
                                                      (253_402_297_200, 0.0)], ids=["saved", "none", "repaired"])
async def test_the_detection_cursor_gauge_starts_at_the_saved_cursor_not_at_zero(
        stored_s: int | None, exported_s: float) -> None:
    """Found by review: the gauge stayed 0 after a restart until the first evaluation, and FinsentDetectionLag's
    ``> 0`` guard hid a daemon restarted into a stall. A cursor the engine clears at start (year 9999) is not
    exported."""
    metrics.EVALUATED_UNTIL.set(0)
    state = MemoryAlertStateStore()
    if stored_s is not None:
        await state.commit([], [], stored_s)
    store = window_store()
    bounds = EventTimeBounds(max_future_s=3600, clock=lambda: float(DAY0_S + 86_400))
    engine = AlertEngine(store, alert_settings(), state, MemoryOutbox([]), [], time_bounds=bounds)
    async with engine:
        assert value("finsent_detection_evaluated_until_seconds") == exported_s
    metrics.EVALUATED_UNTIL.set(0)
