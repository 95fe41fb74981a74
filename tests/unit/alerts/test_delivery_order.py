"""An alert's notifications reach each sink in the order they were made: a RESOLVED never overtakes its
FIRING that waits for a retry (found by review: a sink that failed the FIRING once got RESOLVED, then
FIRING, so webhook, Slack and email receivers showed the alert firing for good)."""

from __future__ import annotations

from alerts.delivery import OutboxDelivery, RetryPolicy
from alerts.model import Notification
from alerts.outbox import MemoryOutbox
from alerts.sinks.base import SinkError
from tests.unit.alerts.builders import RecordingSink, episode


class FailFirst(RecordingSink):
    """Fails the first send of each notification in ``fail``."""

    def __init__(self, fail: set[str]) -> None:
        super().__init__("flaky://")
        self.fail = set(fail)

    async def send(self, notification: Notification) -> None:
        if notification.id in self.fail:
            self.fail.discard(notification.id)
            raise SinkError("HTTP 503")
        await super().send(notification)


class Desk:
    """A sink that fails ``firing``'s first send, its outbox and a deliverer, on a fake clock."""

    def __init__(self, firing: Notification) -> None:
        self.now = [1_000.0]
        self.sink = FailFirst({firing.id})
        self.outbox = MemoryOutbox([self.sink.name])
        self.delivery = self.deliverer()

    def deliverer(self) -> OutboxDelivery:
        """A new one (a restart): it knows only what the outbox holds."""
        return OutboxDelivery(self.outbox, [self.sink], RetryPolicy(backoff_initial_s=60.0, send_timeout_s=5.0),
                              clock=lambda: self.now[0])

    async def enqueue(self, *ns: Notification) -> None:
        for n in ns:
            await self.outbox.enqueue(n, self.now[0])

    async def deliver_until(self, until_s: float) -> None:
        while self.now[0] < until_s:
            await self.delivery.deliver_due(self.sink)
            self.now[0] += 5.0


async def test_a_resolved_waits_for_its_firing_that_failed_once() -> None:
    firing, resolved, _ = episode()
    desk = Desk(firing)
    await desk.enqueue(firing)
    await desk.delivery.deliver_due(desk.sink)  # fails: retry in 60 s
    await desk.enqueue(resolved)  # due at once
    await desk.deliver_until(1_200.0)
    assert [n.status.value for n in desk.sink.sent] == ["firing", "resolved"]


async def test_the_order_holds_across_a_restart_of_the_deliverer() -> None:
    firing, resolved, refiring = episode()
    desk = Desk(firing)
    await desk.enqueue(firing)
    await desk.delivery.deliver_due(desk.sink)
    await desk.enqueue(resolved, refiring)
    desk.delivery = desk.deliverer()
    await desk.deliver_until(1_200.0)
    assert [n.id for n in desk.sink.sent] == [firing.id, resolved.id, refiring.id]


async def test_other_alerts_are_not_held_back_by_a_failing_one() -> None:
    firing, _, _ = episode()
    other, _, _ = episode("ticker:AAPL")
    desk = Desk(firing)
    await desk.enqueue(firing)
    await desk.delivery.deliver_due(desk.sink)
    await desk.enqueue(other)
    await desk.delivery.deliver_due(desk.sink)
    assert [n.id for n in desk.sink.sent] == [other.id]


async def test_a_flush_sends_other_alerts_behind_a_batch_of_held_notices() -> None:
    """Found by the regression review: a pass of only held entries sent nothing, and the flush stopped there."""
    firing, resolved, refiring = episode("ticker:AAA")
    other, _, _ = episode("ticker:ZZZ")
    sink = RecordingSink("rec://")
    outbox = MemoryOutbox([sink.name])
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(batch_size=2), clock=lambda: 1_000.0)
    await outbox.enqueue(firing, 900.0)
    await outbox.mark_failed(sink.name, firing.id, 5_000.0)  # waits for its retry: the two after it are held
    for at_s, n in enumerate((resolved, refiring, other), 901):  # the first batch of two: both held
        await outbox.enqueue(n, float(at_s))
    await delivery.flush(5.0)
    assert [n.id for n in sink.sent] == [other.id]
