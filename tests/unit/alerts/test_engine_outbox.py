"""A notification the outbox has no room for is lost: it must be counted (and so alertable), not only logged."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from alerts.engine import AlertEngine
from alerts.lifecycle import LifecyclePolicy, step
from alerts.model import AlertStatus, Notification
from alerts.outbox import MemoryOutbox, OutboxEntry
from alerts.state import MemoryAlertStateStore
from monitor import metrics
from monitor.config import AlertSettings
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, RecordingSink, feed, signal

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


async def test_a_firing_notice_the_full_outbox_refused_is_announced_again_and_never_resolves_alone() -> None:
    """Found by review: the refused FIRING was marked announced, never retried, and its RESOLVED went out
    alone once the outbox had room again."""
    store = MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400)
    end = await feed(store, DAY0_S, B, [0.1] * 30 + [0.7] * 4 + [0.1] * 6)
    outbox = MemoryOutbox(["slack://"], max_entries=1)
    engine = AlertEngine(store, AlertSettings(seasonal_days=0, repeat_interval_s=0), MemoryAlertStateStore(),
                         outbox, [])
    queued: list[Notification] = []
    async with engine:
        for t in range(DAY0_S + B, end + B, B):
            for n in await engine.evaluate(t):
                if n.id in {e.notification.id for e in await outbox.claim("slack://", 1e12, 100, 0.0)}:
                    queued.append(n)
                await outbox.mark_delivered("slack://", n.id, 0.0)  # the sink takes it (if it was queued)
            if t == DAY0_S + 30 * B:  # the sink goes down just before the surge: the outbox is full
                await outbox.enqueue(_blocker(queued), 0.0)
            if t == DAY0_S + 32 * B:  # and comes back a bucket later
                await outbox.mark_delivered("slack://", _blocker(queued).id, 0.0)
    fired = {a.window_key for n in queued if n.status is AlertStatus.FIRING for a in n.alerts}
    resolved = {a.window_key for n in queued if n.status is AlertStatus.RESOLVED for a in n.alerts}
    assert "ticker:TSLA" in fired and resolved, "the surge must fire and resolve"
    assert resolved <= fired, f"resolved without a firing notice: {resolved - fired}"


def _blocker(_: object) -> Notification:
    """Another alert's notification, waiting for the sink."""
    return step({}, [signal("ticker:BLOCK", DAY0_S, True)], DAY0_S + B, LifecyclePolicy()).notifications[0]


class DownOutbox(MemoryOutbox):
    """An outbox whose backend went down just before the stop."""

    async def claim(self, sink: str, now_s: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        raise RedisConnectionError("Connection refused")


async def test_a_stop_with_the_outbox_down_still_stops_the_sinks_and_the_state_store() -> None:
    """Found by review: the final flush re-raised the outage, so the sinks, the outbox and the state store were
    left open and the stop failed."""
    sink, state = RecordingSink(), MemoryAlertStateStore()
    engine = AlertEngine(MemoryWindowStore(bucket_s=B, retention_s=86_400), AlertSettings(), state,
                         DownOutbox([sink.name]), [sink])
    with capture_logs() as logs:
        await engine.start()
        await engine.stop()
    assert not sink.started and not state.started
    assert "alert_flush_failed" in [e["event"] for e in logs if e["log_level"] == "error"]


class FailingStopSink(RecordingSink):
    async def _stop(self) -> None:
        raise RedisConnectionError("broker gone")


async def test_a_sink_whose_stop_fails_does_not_keep_the_other_sinks_and_the_stores_open() -> None:
    failing, other, state = FailingStopSink("kafka://alerts"), RecordingSink(), MemoryAlertStateStore()
    engine = AlertEngine(MemoryWindowStore(bucket_s=B, retention_s=86_400), AlertSettings(), state,
                         MemoryOutbox([failing.name, other.name]), [failing, other])
    with capture_logs() as logs:
        await engine.start()
        await engine.stop()
    assert not other.started and not state.started
    assert "alert_sink_stop_failed" in [e["event"] for e in logs]
