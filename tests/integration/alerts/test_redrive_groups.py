"""Redriving a dead-lettered grouped notification (``ticker:TSLA`` with ``topic_ticker:earnings|TSLA``) on every
outbox backend: the receiver ends with the detector's view. It was sent whole when only some of its alerts were
outdated, so a redriven FIRING reopened the pair its RESOLVED had closed, and a redriven RESOLVED closed TSLA's
new episode (found by review)."""

from __future__ import annotations

from alerts.delivery import OutboxDelivery, RetryPolicy
from alerts.lifecycle import AlertState
from alerts.model import Notification
from alerts.outbox import Outbox
from alerts.sinks.base import SinkError
from tests.integration.alerts.conftest import SINKS
from tests.unit.alerts.builders import RecordingSink, grouped


class Receiver(RecordingSink):
    """Refuses the notifications in ``refuse`` until ``back`` is called."""

    def __init__(self, refuse: set[str]) -> None:
        super().__init__(SINKS[0])
        self.refuse = refuse

    def back(self) -> None:
        self.refuse = set()

    async def send(self, notification: Notification) -> None:
        if notification.id in self.refuse:
            raise SinkError("HTTP 503")
        await super().send(notification)

    def view(self) -> dict[str, str]:
        """The latest state shown per alert."""
        return {a.window_key: a.status.value for n in self.sent for a in n.alerts}


async def deliver(outbox: Outbox, receiver: Receiver, notices: list[Notification]) -> None:
    """Enqueue ``notices``, deliver until the refused ones are dead letters, then (the receiver back) redrive."""
    now = [1_000.0]
    policy = RetryPolicy(max_attempts=2, backoff_initial_s=1.0, backoff_max_s=1.0, send_timeout_s=5.0)
    delivery = OutboxDelivery(outbox, [receiver], policy, clock=lambda: now[0])
    for n in notices:
        await outbox.enqueue(n, now[0])
    for _ in range(8):
        await delivery.deliver_due(receiver)
        now[0] += 2.0
    assert len(await outbox.dead_letters(receiver.name)) == 1
    receiver.back()
    assert await outbox.redrive(now[0], receiver.name) == 1
    for _ in range(4):
        await delivery.deliver_due(receiver)
        now[0] += 2.0
    assert await outbox.pending(receiver.name) == 0


def detector_view(states: dict[str, AlertState]) -> dict[str, str]:
    return {s.window_key: s.status.value for s in states.values()}


async def test_a_redriven_group_firing_does_not_reopen_the_alert_the_receiver_saw_resolve(outbox: Outbox) -> None:
    (firing, pair_resolved), states = grouped([(True, True), (True, False), (True, False), (True, False)], 2)
    receiver = Receiver({firing.id})
    await deliver(outbox, receiver, [firing, pair_resolved])
    assert receiver.view() == detector_view(states) == {"ticker:TSLA": "firing",
                                                        "topic_ticker:earnings|TSLA": "resolved"}
    assert [n.id for n in receiver.sent] == [pair_resolved.id, firing.id]


async def test_a_redriven_group_resolved_does_not_end_the_new_episode_of_one_of_its_alerts(outbox: Outbox) -> None:
    (firing, resolved, refiring), states = grouped([(True, True), (False, False), (True, False)], 1)
    receiver = Receiver({resolved.id})
    await deliver(outbox, receiver, [firing, resolved, refiring])
    assert receiver.view() == detector_view(states) == {"ticker:TSLA": "firing",
                                                        "topic_ticker:earnings|TSLA": "resolved"}
    assert [n.id for n in receiver.sent] == [firing.id, refiring.id, resolved.id]
