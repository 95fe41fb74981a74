"""Outbox contract, run on memory and Redis: idempotent enqueue, per-sink delivery, retries, bounds."""

from __future__ import annotations

import pytest

from alerts.lifecycle import LifecyclePolicy, step
from alerts.model import Notification
from alerts.outbox import Outbox, OutboxFullError
from tests.integration.alerts.conftest import SINKS
from tests.unit.alerts.builders import DAY0_S, signal

A, B = SINKS


def notification(i: int) -> Notification:
    now = DAY0_S + 300 * (i + 1)
    return step({}, [signal(f"ticker:T{i}", now, True)], now, LifecyclePolicy()).notifications[0]


async def test_enqueue_is_idempotent_per_notification_id(outbox: Outbox) -> None:
    n = notification(0)
    assert await outbox.enqueue(n, 10.0)
    assert not await outbox.enqueue(n, 11.0)
    assert [e.notification for e in await outbox.due(A, 20.0, 10)] == [n]
    assert await outbox.pending(A) == 1 and await outbox.pending(B) == 1


async def test_each_sink_gets_each_notification_once(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.mark_delivered(A, n.id, 12.0)
    await outbox.mark_delivered(A, n.id, 13.0)  # a duplicate ack changes nothing
    assert await outbox.due(A, 20.0, 10) == [] and await outbox.is_delivered(A, n.id)
    assert [e.notification.id for e in await outbox.due(B, 20.0, 10)] == [n.id]
    assert not await outbox.is_delivered(B, n.id)
    await outbox.mark_delivered(B, n.id, 14.0)
    assert await outbox.pending(B) == 0
    assert not await outbox.enqueue(n, 15.0)  # delivered ids stay deduplicated


async def test_failed_entry_waits_for_its_retry_time_and_counts_attempts(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.mark_failed(A, n.id, 30.0)
    assert await outbox.due(A, 29.0, 10) == []
    assert await outbox.next_due_s(A) == 30.0
    [entry] = await outbox.due(A, 30.0, 10)
    assert entry.attempts == 1 and entry.notification == n
    await outbox.abandon(A, n.id)
    assert await outbox.pending(A) == 0 and not await outbox.is_delivered(A, n.id)
    assert await outbox.pending(B) == 1


async def test_due_is_oldest_first_and_limited(outbox: Outbox) -> None:
    ns = [notification(i) for i in range(4)]
    for i, n in enumerate(ns):
        await outbox.enqueue(n, 10.0 + i)
    assert [e.notification.id for e in await outbox.due(A, 100.0, 2)] == [ns[0].id, ns[1].id]


async def test_enqueue_beyond_max_entries_fails_loudly(outbox: Outbox) -> None:
    for i in range(5):
        await outbox.enqueue(notification(i), 10.0)
    with pytest.raises(OutboxFullError):
        await outbox.enqueue(notification(5), 10.0)
    first = notification(0)
    await outbox.mark_delivered(A, first.id, 11.0)
    await outbox.mark_delivered(B, first.id, 11.0)
    assert await outbox.enqueue(notification(5), 12.0)  # room again once fully delivered
