"""Outbox delivery loop: capped exponential backoff and bounded attempts (memory outbox, fake clock)."""

from __future__ import annotations

from alerts.delivery import OutboxDelivery, RetryPolicy
from alerts.lifecycle import LifecyclePolicy, step
from alerts.model import Notification
from alerts.outbox import MemoryOutbox
from alerts.sinks.base import SinkError
from tests.unit.alerts.builders import DAY0_S, RecordingSink, signal


class FlakySink(RecordingSink):
    def __init__(self, failures: int) -> None:
        super().__init__("flaky://")
        self.failures = failures
        self.calls = 0

    async def send(self, notification: Notification) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise SinkError("down")
        await super().send(notification)


def notification() -> Notification:
    now = DAY0_S + 300
    return step({}, [signal("ticker:TSLA", now, True)], now, LifecyclePolicy()).notifications[0]


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial_s=1.0, backoff_max_s=10.0)
    assert [policy.delay_s(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.delay_s(10_000) == 10.0


async def test_failed_delivery_is_retried_after_backoff_and_delivered_once() -> None:
    now = [1000.0]
    sink = FlakySink(failures=2)
    outbox = MemoryOutbox([sink.name])
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(backoff_initial_s=5.0), clock=lambda: now[0])
    n = notification()
    await outbox.enqueue(n, now[0])
    await delivery.deliver_due(sink)
    assert await outbox.next_due_s(sink.name) == 1005.0
    assert await delivery.deliver_due(sink) == 0  # not due yet
    now[0] = 1005.0
    await delivery.deliver_due(sink)
    assert await outbox.next_due_s(sink.name) == 1015.0  # doubled
    now[0] = 1015.0
    await delivery.deliver_due(sink)
    now[0] = 2000.0
    await delivery.deliver_due(sink)
    assert sink.sent == [n] and sink.calls == 3


async def test_delivery_is_abandoned_after_max_attempts() -> None:
    now = [0.0]
    sink = FlakySink(failures=100)
    outbox = MemoryOutbox([sink.name])
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(max_attempts=3, backoff_initial_s=1.0),
                              clock=lambda: now[0])
    await outbox.enqueue(notification(), 0.0)
    for _ in range(5):
        await delivery.deliver_due(sink)
        now[0] += 100
    assert sink.calls == 3 and await outbox.pending(sink.name) == 0 and sink.sent == []
