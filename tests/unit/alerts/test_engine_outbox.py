"""A notification the outbox has no room for is lost: it must be counted (and so alertable), not only logged."""

from __future__ import annotations

from structlog.testing import capture_logs

from alerts.engine import AlertEngine
from alerts.outbox import MemoryOutbox
from alerts.state import MemoryAlertStateStore
from monitor import metrics
from monitor.config import AlertSettings
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, feed

B = 300


async def test_a_notification_the_full_outbox_refuses_is_counted_as_dropped_and_logged() -> None:
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, [0.1] * 30 + [0.7] * 4 + [0.1] * 6)
    before = metrics.ALERTS_DROPPED._value.get()
    engine = AlertEngine(store, AlertSettings(seasonal_days=0, repeat_interval_s=0), MemoryAlertStateStore(),
                         MemoryOutbox(["never://"], max_entries=1), [])
    with capture_logs() as logs:
        async with engine:
            queued = [n for t in range(DAY0_S + B, end + B, B) for n in await engine.evaluate(t)]
    dropped = [e for e in logs if e["event"] == "alert_dropped_outbox_full"]
    assert len(queued) >= 2 and dropped, "the surge must produce more notifications than the outbox holds"
    assert metrics.ALERTS_DROPPED._value.get() == before + len(dropped)
