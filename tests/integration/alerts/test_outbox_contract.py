"""Outbox contract, run on memory and Redis: idempotent enqueue, per-sink delivery, retries, claims, bounds."""

from __future__ import annotations

import asyncio

import pytest

from alerts.lifecycle import LifecyclePolicy, step
from alerts.model import AlertStatus, Notification
from alerts.outbox import Outbox, OutboxFullError
from tests.integration.alerts.conftest import SINKS
from tests.unit.alerts.builders import DAY0_S, TSLA, TSLA_EARNINGS, episode, grouped, signal

A, B = SINKS
LEASE_S = 60.0


def notification(i: int) -> Notification:
    now = DAY0_S + 300 * (i + 1)
    return step({}, [signal(f"ticker:T{i}", now, True)], now, LifecyclePolicy()).notifications[0]


async def test_enqueue_is_idempotent_per_notification_id(outbox: Outbox) -> None:
    n = notification(0)
    assert await outbox.enqueue(n, 10.0)
    assert not await outbox.enqueue(n, 11.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, LEASE_S)] == [n]
    assert await outbox.pending(A) == 1 and await outbox.pending(B) == 1


async def test_each_sink_gets_each_notification_once(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.mark_delivered(A, n.id, 12.0)
    await outbox.mark_delivered(A, n.id, 13.0)  # a duplicate ack changes nothing
    assert await outbox.claim(A, 20.0, 10, LEASE_S) == [] and await outbox.is_delivered(A, n.id)
    assert [e.notification.id for e in await outbox.claim(B, 20.0, 10, LEASE_S)] == [n.id]
    assert not await outbox.is_delivered(B, n.id)
    await outbox.mark_delivered(B, n.id, 14.0)
    assert await outbox.pending(B) == 0
    assert not await outbox.enqueue(n, 15.0)  # delivered ids stay deduplicated


async def test_failed_entry_waits_for_its_retry_time_and_counts_attempts(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.mark_failed(A, n.id, 30.0)
    assert await outbox.claim(A, 29.0, 10, LEASE_S) == []
    assert await outbox.next_due_s(A) == 30.0
    [entry] = await outbox.claim(A, 30.0, 10, LEASE_S)
    assert entry.attempts == 1 and entry.notification == n
    await outbox.abandon(A, n.id, 40.0)
    assert await outbox.pending(A) == 0 and not await outbox.is_delivered(A, n.id)
    assert await outbox.pending(B) == 1


async def test_a_later_notice_of_an_alert_is_held_while_an_older_one_is_queued_whatever_it_is_doing(
    outbox: Outbox,
) -> None:
    firing, resolved, _ = episode()
    await outbox.enqueue(firing, 10.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, LEASE_S)] == [firing]  # being sent, not failed
    await outbox.enqueue(resolved, 21.0)
    assert await outbox.claim(A, 22.0, 10, LEASE_S) == [], "held: its FIRING is still queued"
    await outbox.mark_failed(A, firing.id, 30.0)
    assert [e.notification for e in await outbox.claim(A, 30.0, 10, LEASE_S)] == [firing]
    await outbox.mark_delivered(A, firing.id, 31.0)
    assert await outbox.next_due_s(A) == 31.0, "due the moment the notice before it left"
    assert [e.notification for e in await outbox.claim(A, 31.0, 10, LEASE_S)] == [resolved]
    assert [e.notification for e in await outbox.claim(B, 31.0, 10, LEASE_S)] == [firing], "per sink"


async def test_a_held_notice_counts_no_attempt_until_a_send_of_it_fails(outbox: Outbox) -> None:
    """Held and leased entries carry an attempt count of 0 on Redis (so versions before the order index keep the
    order after a rollback): it must read as no attempt, in claims and in dead letters."""
    firing, resolved, _ = episode()
    await outbox.enqueue(firing, 10.0)
    await outbox.enqueue(resolved, 11.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, LEASE_S)] == [firing]  # the RESOLVED is held
    await outbox.mark_delivered(A, firing.id, 21.0)
    assert [(e.notification, e.attempts) for e in await outbox.claim(A, 21.0, 10, LEASE_S)] == [(resolved, 0)]
    await outbox.mark_failed(A, resolved.id, 30.0)
    assert [e.attempts for e in await outbox.claim(A, 30.0, 10, LEASE_S)] == [1]
    await outbox.abandon(A, resolved.id, 31.0)
    assert [d.attempts for d in await outbox.dead_letters(A)] == [1]


async def test_other_alerts_are_not_held_back_by_a_queued_notice(outbox: Outbox) -> None:
    firing, resolved, _ = episode()
    other, _, _ = episode("ticker:AAPL")
    for n in (firing, resolved, other):
        await outbox.enqueue(n, 10.0)
    claimed = [e.notification.id for e in await outbox.claim(A, 20.0, 10, LEASE_S)]
    assert sorted(claimed) == sorted([firing.id, other.id])


async def test_an_abandoned_notice_releases_the_next_one_of_its_alert(outbox: Outbox) -> None:
    firing, resolved, _ = episode()
    await outbox.enqueue(firing, 10.0)
    await outbox.enqueue(resolved, 11.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, LEASE_S)] == [firing]
    await outbox.abandon(A, firing.id, 25.0)
    assert [e.notification for e in await outbox.claim(A, 25.0, 10, LEASE_S)] == [resolved]


async def test_redriven_notices_go_out_in_the_order_they_were_made(outbox: Outbox) -> None:
    notices = episode()
    for n in notices:
        await outbox.enqueue(n, 10.0)
    for n in notices:
        await outbox.abandon(A, n.id, 20.0)
    assert await outbox.redrive(30.0, A) == 3  # all due at the same instant
    sent = []
    for t in range(30, 40):
        for entry in await outbox.claim(A, float(t), 10, LEASE_S):
            sent.append(entry.notification.id)
            await outbox.mark_delivered(A, entry.notification.id, float(t))
    assert sent == [n.id for n in notices]


async def test_a_notice_older_than_what_the_sink_already_showed_is_superseded_not_sent(outbox: Outbox) -> None:
    firing, resolved, refiring = episode()
    await outbox.enqueue(firing, 10.0)
    await outbox.enqueue(resolved, 11.0)
    await outbox.abandon(A, firing.id, 20.0)  # the sink was down past the retry bound ...
    [entry] = await outbox.claim(A, 21.0, 10, LEASE_S)  # ... and back for the RESOLVED
    await outbox.mark_delivered(A, entry.notification.id, 21.0)
    assert await outbox.redrive(30.0, A) == 1
    assert await outbox.claim(A, 30.0, 10, LEASE_S) == [], "a FIRING after its RESOLVED would show it firing for good"
    assert await outbox.pending(A) == 0 and not await outbox.is_delivered(A, firing.id)
    await outbox.enqueue(refiring, 40.0)
    assert [e.notification for e in await outbox.claim(A, 40.0, 10, LEASE_S)] == [refiring], "a new episode goes out"


def keys(n: Notification) -> list[str]:
    return [a.window_key for a in n.alerts]


async def test_a_redriven_group_goes_out_without_the_alerts_whose_later_notice_the_sink_already_showed(
    outbox: Outbox,
) -> None:
    (firing, pair_resolved), _ = grouped([(True, True), (True, False), (True, False), (True, False)], 2)
    assert keys(firing) == [TSLA, TSLA_EARNINGS] and keys(pair_resolved) == [TSLA_EARNINGS]
    await outbox.enqueue(firing, 10.0)
    await outbox.enqueue(pair_resolved, 11.0)
    await outbox.abandon(A, firing.id, 20.0)  # dead-lettered: the pair's RESOLVED goes out alone
    [entry] = await outbox.claim(A, 21.0, 10, LEASE_S)
    await outbox.mark_delivered(A, entry.notification.id, 21.0)
    assert await outbox.redrive(30.0, A) == 1
    [entry] = await outbox.claim(A, 30.0, 10, LEASE_S)
    assert entry.notification.id == firing.id and keys(entry.notification) == [TSLA], \
        "the pair's FIRING after its RESOLVED would show it firing for good"
    await outbox.mark_delivered(A, firing.id, 31.0)
    assert await outbox.pending(A) == 0 and await outbox.is_delivered(A, firing.id)
    assert [e.notification for e in await outbox.claim(A, 31.0, 10, LEASE_S)] == []
    assert [e.notification for e in await outbox.claim(B, 31.0, 10, LEASE_S)] == [firing], "per sink: B got none"


async def test_a_redriven_group_resolved_leaves_out_an_alert_that_fired_again_since(outbox: Outbox) -> None:
    (firing, resolved, refiring), _ = grouped([(True, True), (False, False), (True, False)], 1)
    assert keys(resolved) == [TSLA, TSLA_EARNINGS] and keys(refiring) == [TSLA]
    for n in (firing, resolved, refiring):
        await outbox.enqueue(n, 10.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, LEASE_S)] == [firing]
    await outbox.mark_delivered(A, firing.id, 20.0)
    await outbox.abandon(A, resolved.id, 21.0)
    [entry] = await outbox.claim(A, 22.0, 10, LEASE_S)
    assert entry.notification == refiring
    await outbox.mark_delivered(A, refiring.id, 22.0)
    assert await outbox.redrive(30.0, A) == 1
    [entry] = await outbox.claim(A, 30.0, 10, LEASE_S)
    assert entry.notification.id == resolved.id and keys(entry.notification) == [TSLA_EARNINGS], \
        "TSLA's old RESOLVED would end its new episode at the receiver"
    assert entry.notification.alerts == resolved.alerts[1:]


async def test_a_bucket_judged_again_into_a_larger_group_sends_only_the_alerts_not_yet_delivered(
    outbox: Outbox,
) -> None:
    now = DAY0_S + 300
    alone = step({}, [signal(TSLA, now, True)], now, LifecyclePolicy()).notifications[0]
    [regrouped], _ = grouped([(True, True)], 2)  # the same bucket, judged again with the pair key (a new id)
    assert regrouped.id != alone.id and keys(regrouped) == [TSLA, TSLA_EARNINGS]
    await outbox.enqueue(alone, 10.0)
    await outbox.enqueue(regrouped, 11.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, LEASE_S)] == [alone]
    await outbox.mark_delivered(A, alone.id, 20.0)
    [entry] = await outbox.claim(A, 21.0, 10, LEASE_S)
    assert keys(entry.notification) == [TSLA_EARNINGS], "TSLA's FIRING went out already"


async def test_a_notification_without_alerts_is_sent_never_held_or_dropped(outbox: Outbox) -> None:
    bare = Notification("bare", "all", AlertStatus.FIRING, DAY0_S, ())
    await outbox.enqueue(bare, 10.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, LEASE_S)] == [bare]
    await outbox.mark_delivered(A, bare.id, 21.0)
    assert await outbox.is_delivered(A, bare.id)


async def test_claim_is_oldest_first_and_limited(outbox: Outbox) -> None:
    ns = [notification(i) for i in range(4)]
    for i, n in enumerate(ns):
        await outbox.enqueue(n, 10.0 + i)
    assert [e.notification.id for e in await outbox.claim(A, 100.0, 2, LEASE_S)] == [ns[0].id, ns[1].id]
    assert [e.notification.id for e in await outbox.claim(A, 100.0, 2, LEASE_S)] == [ns[2].id, ns[3].id]


async def test_claimed_entries_are_not_handed_to_a_second_claimer_until_the_lease_expires(
    outbox: Outbox,
) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    assert [e.notification for e in await outbox.claim(A, 20.0, 10, 30.0)] == [n]
    assert await outbox.claim(A, 20.0, 10, 30.0) == []
    assert await outbox.claim(A, 49.9, 10, 30.0) == []
    assert [e.notification for e in await outbox.claim(B, 20.0, 10, 30.0)] == [n]  # other sinks unaffected
    assert [e.notification for e in await outbox.claim(A, 50.0, 10, 30.0)] == [n]


async def test_an_entry_claimed_by_a_deliverer_that_died_is_due_again_after_the_lease(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.claim(A, 20.0, 10, 30.0)  # ...and the claimer never reports back
    assert await outbox.pending(A) == 1
    assert await outbox.next_due_s(A) == 50.0
    [entry] = await outbox.claim(A, 50.0, 10, 30.0)
    assert entry.notification == n and entry.attempts == 0  # an unfinished claim is not a failed attempt


async def test_a_failed_attempt_ends_the_lease_at_its_retry_time(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.claim(A, 20.0, 10, 30.0)
    await outbox.mark_failed(A, n.id, 25.0)
    assert await outbox.next_due_s(A) == 25.0
    [entry] = await outbox.claim(A, 25.0, 10, 30.0)
    assert entry.attempts == 1


async def test_a_delivered_claim_is_not_due_again_after_the_lease(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.claim(A, 20.0, 10, 30.0)
    await outbox.mark_delivered(A, n.id, 21.0)
    assert await outbox.claim(A, 1000.0, 10, 30.0) == [] and await outbox.next_due_s(A) is None


async def test_concurrent_claimers_never_get_the_same_entry(outbox: Outbox) -> None:
    ns = [notification(i) for i in range(5)]
    for n in ns:
        await outbox.enqueue(n, 10.0)
    batches = await asyncio.gather(*(outbox.claim(A, 20.0, 2, LEASE_S) for _ in range(6)))
    claimed = [e.notification.id for batch in batches for e in batch]
    assert sorted(claimed) == sorted(n.id for n in ns)


async def test_enqueue_beyond_max_entries_fails_loudly(outbox: Outbox) -> None:
    for i in range(5):
        await outbox.enqueue(notification(i), 10.0)
    with pytest.raises(OutboxFullError):
        await outbox.enqueue(notification(5), 10.0)
    first = notification(0)
    await outbox.mark_delivered(A, first.id, 11.0)
    await outbox.mark_delivered(B, first.id, 11.0)
    assert await outbox.enqueue(notification(5), 12.0)  # room again once fully delivered


async def test_an_abandoned_notification_moves_to_the_dead_letter_outbox_of_its_sink_only(outbox: Outbox) -> None:
    n, other = notification(0), notification(1)
    await outbox.enqueue(n, 10.0)
    await outbox.enqueue(other, 10.0)
    await outbox.mark_failed(A, n.id, 20.0)
    await outbox.mark_failed(A, n.id, 30.0)
    await outbox.abandon(A, n.id, 40.0)
    [letter] = await outbox.dead_letters(A)
    assert (letter.sink, letter.notification, letter.attempts, letter.dead_at_s) == (A, n, 2, 40.0)
    assert await outbox.dead_letters(B) == [] and [d.notification.id for d in await outbox.dead_letters()] == [n.id]
    assert [e.notification.id for e in await outbox.claim(A, 100.0, 10, LEASE_S)] == [other.id]
    assert {e.notification.id for e in await outbox.claim(B, 100.0, 10, LEASE_S)} == {n.id, other.id}


async def test_a_dead_letter_counts_the_attempt_the_deliverer_gave_up_after(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.mark_failed(A, n.id, 20.0)
    await outbox.abandon(A, n.id, 30.0, attempts=2)  # the second failure ends it: recorded by the abandon
    [letter] = await outbox.dead_letters(A)
    assert letter.attempts == 2


async def test_redrive_queues_a_dead_letter_again_with_fresh_attempts_and_it_can_be_delivered(outbox: Outbox) -> None:
    n = notification(0)
    await outbox.enqueue(n, 10.0)
    await outbox.mark_delivered(B, n.id, 11.0)  # the other sink is done: the payload is only dead-lettered
    await outbox.mark_failed(A, n.id, 20.0)
    await outbox.abandon(A, n.id, 30.0)
    assert await outbox.pending(A) == 0
    assert await outbox.redrive(50.0, A, "no-such-id") == 0
    assert await outbox.redrive(50.0, A) == 1
    assert await outbox.dead_letters() == [] and await outbox.redrive(60.0) == 0
    [entry] = await outbox.claim(A, 50.0, 10, LEASE_S)
    assert entry.notification == n and entry.attempts == 0
    await outbox.mark_delivered(A, n.id, 51.0)
    assert await outbox.is_delivered(A, n.id) and await outbox.pending(A) == 0


async def test_redrive_by_id_moves_only_that_notification(outbox: Outbox) -> None:
    ns = [notification(i) for i in range(3)]
    for i, n in enumerate(ns):
        await outbox.enqueue(n, 10.0)
        await outbox.abandon(A, n.id, 20.0 + i)
    assert await outbox.redrive(30.0, A, ns[1].id) == 1
    assert [d.notification.id for d in await outbox.dead_letters(A)] == [ns[0].id, ns[2].id]
    assert [e.notification.id for e in await outbox.claim(A, 30.0, 10, LEASE_S)] == [ns[1].id]


async def test_the_dead_letter_outbox_is_bounded_and_keeps_the_newest(outbox: Outbox) -> None:
    for i in range(7):  # max_entries = 5
        n = notification(i)
        await outbox.enqueue(n, 10.0)
        await outbox.abandon(A, n.id, 20.0 + i)
        await outbox.mark_delivered(B, n.id, 21.0)
    assert [d.notification.id for d in await outbox.dead_letters(A)] == [notification(i).id for i in range(2, 7)]


async def test_oldest_enqueued_is_the_enqueue_time_of_the_oldest_undelivered_entry_of_that_sink(
    outbox: Outbox,
) -> None:
    assert await outbox.oldest_enqueued_s(A) is None
    first, second = notification(0), notification(1)
    await outbox.enqueue(first, 10.0)
    await outbox.enqueue(second, 25.0)
    await outbox.mark_failed(A, first.id, 500.0)  # a retry time does not make it younger
    assert await outbox.oldest_enqueued_s(A) == 10.0
    await outbox.mark_delivered(A, first.id, 30.0)
    assert await outbox.oldest_enqueued_s(A) == 25.0
    assert await outbox.oldest_enqueued_s(B) == 10.0  # the other sink still has both
    await outbox.mark_delivered(A, second.id, 31.0)
    assert await outbox.oldest_enqueued_s(A) is None
