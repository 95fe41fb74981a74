"""Outbox delivery loop: backoff, bounded attempts and claim leases (memory outbox, fake clock)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from alerts.delivery import RETRY_AFTER_MAX_S, OutboxDelivery, RetryPolicy
from alerts.lifecycle import LifecyclePolicy, step
from alerts.model import Notification
from alerts.outbox import MemoryOutbox, OutboxEntry
from alerts.sinks.base import SinkError
from monitor import metrics
from monitor.retry import DEPENDENCIES
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


class SlowSink(RecordingSink):
    """Each send takes ``send_s``: real time (so loops interleave) and/or fake-clock time."""

    def __init__(self, name: str, send_s: float = 0.0, clock: list[float] | None = None,
                 clock_step_s: float = 0.0) -> None:
        super().__init__(name)
        self.send_s = send_s
        self.clock = clock
        self.clock_step_s = clock_step_s

    async def send(self, notification: Notification) -> None:
        await asyncio.sleep(self.send_s)
        if self.clock is not None:
            self.clock[0] += self.clock_step_s
        await super().send(notification)


class DownOutbox(MemoryOutbox):
    """An outbox whose backend refuses every claim while ``error`` is set."""

    def __init__(self, sink_names: list[str], error: Exception) -> None:
        super().__init__(sink_names)
        self.error: Exception | None = error
        self.claims = 0

    async def claim(self, sink: str, now_s: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        self.claims += 1
        if self.error is not None:
            raise self.error
        return await super().claim(sink, now_s, limit, lease_s)


def notification(i: int = 0) -> Notification:
    now = DAY0_S + 300
    return step({}, [signal(f"ticker:T{i}", now, True)], now, LifecyclePolicy()).notifications[0]


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


async def test_past_max_attempts_a_notification_moves_to_the_dead_letter_outbox_and_is_counted() -> None:
    now = [0.0]
    sink = FlakySink(failures=100)
    outbox = MemoryOutbox([sink.name])
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(max_attempts=3, backoff_initial_s=1.0),
                              clock=lambda: now[0])
    n = notification()
    await outbox.enqueue(n, 0.0)
    before = metrics.ALERT_DEAD_LETTERS.labels(sink.name)._value.get()
    for _ in range(5):
        await delivery.deliver_due(sink)
        now[0] += 100
    assert sink.calls == 3 and await outbox.pending(sink.name) == 0 and sink.sent == []
    [letter] = await outbox.dead_letters(sink.name)
    # every attempt, the last included (it said 2, while alert_dead_lettered logged 3: found by review)
    assert letter.notification == n and letter.attempts == 3 and letter.dead_at_s == 200.0
    assert metrics.ALERT_DEAD_LETTERS.labels(sink.name)._value.get() - before == 1


async def test_a_send_cut_at_its_time_limit_logs_what_happened_not_an_empty_error() -> None:
    sink = SlowSink("hanging", send_s=10.0)
    outbox = MemoryOutbox([sink.name])
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(max_attempts=2, send_timeout_s=0.05))
    await outbox.enqueue(notification(), 0.0)
    with capture_logs() as logs:
        await delivery.deliver_due(sink)
    [failed] = [e for e in logs if e["event"] == "alert_delivery_failed"]
    assert failed["error"] == "TimeoutError: the sink did not finish within 0.05 s"


def test_every_sinks_counter_series_exist_at_zero_once_delivery_is_built() -> None:
    """Found by review: the ``abandoned`` series first appeared at 1, and ``increase()`` counts nothing for a
    series born at 1, so FinsentDeliveryAbandoned missed the first abandoned notification of every sink."""
    plain, reposting = RecordingSink("zero-plain://"), RefreshRecorder(interval_s=60.0, name="zero-am://")
    series = [("finsent_alert_deliveries_total", {"sink": s.name, "outcome": o})
              for s in (plain, reposting) for o in ("delivered", "failed", "abandoned")]
    series += [("finsent_alert_dead_letters_total", {"sink": plain.name}),
               ("finsent_alert_dead_letters_total", {"sink": reposting.name}),
               ("finsent_alert_refresh_failures_total", {"sink": reposting.name})]
    assert [metrics.prometheus_client_value(name, **labels) for name, labels in series] == [None] * len(series)
    OutboxDelivery(MemoryOutbox([plain.name, reposting.name]), [plain, reposting], RetryPolicy())
    assert [metrics.prometheus_client_value(name, **labels) for name, labels in series] == [0.0] * len(series)
    # re-posts go to Alertmanager-like sinks only: no refresh series for the others
    assert metrics.prometheus_client_value("finsent_alert_refresh_failures_total", sink=plain.name) is None


def test_claim_lease_defaults_to_twice_the_send_timeout_and_must_outlast_a_send() -> None:
    assert RetryPolicy(send_timeout_s=5.0).claim_lease_s == 10.0
    assert RetryPolicy(send_timeout_s=5.0, claim_lease_s=7.0).claim_lease_s == 7.0
    with pytest.raises(ValueError, match="claim_lease_s"):
        RetryPolicy(send_timeout_s=5.0, claim_lease_s=5.0)


class SharedSlowSink(SlowSink):
    """One of several deliverers' handles on the same sink: ``done`` is set once ``expected`` went out."""

    def __init__(self, shared: list[Notification], expected: int, done: asyncio.Event) -> None:
        super().__init__("slow://", send_s=0.002)
        self.shared, self.expected, self.done = shared, expected, done

    async def send(self, notification: Notification) -> None:
        await super().send(notification)
        self.shared.append(notification)
        if len(self.shared) >= self.expected:
            self.done.set()


async def test_two_deliverers_on_one_outbox_send_each_notification_exactly_once() -> None:
    now = [1000.0]  # frozen: no lease expires, so any second send would be a duplicate
    ns = [notification(i) for i in range(20)]
    shared: list[Notification] = []
    done = asyncio.Event()
    sinks = [SharedSlowSink(shared, len(ns), done) for _ in range(2)]
    outbox = MemoryOutbox(["slow://"])
    for n in ns:
        await outbox.enqueue(n, now[0])
    policy = RetryPolicy(batch_size=3, poll_interval_s=0.01)
    deliverers = [OutboxDelivery(outbox, [sink], policy, clock=lambda: now[0]) for sink in sinks]
    for d in deliverers:
        await d.start()
    try:
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        for d in deliverers:
            await d.stop()
    assert Counter(n.id for n in shared) == Counter(n.id for n in ns)
    assert await outbox.pending("slow://") == 0
    assert all(sink.sent for sink in sinks)  # both loops really delivered, concurrently


async def test_a_slow_batch_stops_starting_sends_that_could_outlive_its_lease() -> None:
    now = [0.0]
    sink = SlowSink("slow://", clock=now, clock_step_s=6.0)
    outbox = MemoryOutbox([sink.name])
    policy = RetryPolicy(batch_size=5, send_timeout_s=10.0, claim_lease_s=30.0)  # sends start by +10 s
    delivery = OutboxDelivery(outbox, [sink], policy, clock=lambda: now[0])
    ns = sorted((notification(i) for i in range(4)), key=lambda n: n.id)  # equal due times: id order
    for n in ns:
        await outbox.enqueue(n, 0.0)
    assert await delivery.deliver_due(sink) == 2  # at +0 s and +6 s; +12 s is too late
    assert await outbox.next_due_s(sink.name) == 30.0  # the rest stays claimed until the lease ends
    assert await delivery.deliver_due(sink) == 0
    now[0] = 30.0
    assert await delivery.deliver_due(sink) == 2
    assert sink.sent == ns and await outbox.pending(sink.name) == 0


class SignallingSink(RecordingSink):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.delivered = asyncio.Event()

    async def send(self, notification: Notification) -> None:
        await super().send(notification)
        self.delivered.set()


async def test_an_outbox_backend_outage_is_polled_with_backoff_logged_once_and_delivery_resumes_after_it() -> None:
    sink = SignallingSink("rec://")
    outbox = DownOutbox([sink.name], RedisConnectionError("Connection refused"))
    n = notification()
    await MemoryOutbox.enqueue(outbox, n, 0.0)
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(poll_interval_s=0.01, outage_max_wait_s=0.2))
    try:
        with capture_logs() as logs:
            await delivery.start()
            await asyncio.sleep(0.6)  # a poll every 10 ms would be ~60 claims; doubling waits: ~6
            assert 3 <= outbox.claims <= 10
            assert any(r.startswith("outbox unreachable: ConnectionError") for r in DEPENDENCIES.reasons())
            outbox.error = None
            await asyncio.wait_for(sink.delivered.wait(), 2)
        events = [e["event"] for e in logs]
        assert events.count("alert_outbox_unavailable") == 1
        assert events.index("alert_outbox_unavailable") < events.index("alert_outbox_recovered")
        assert sink.sent == [n]
        assert not any(r.startswith("outbox") for r in DEPENDENCIES.reasons())
    finally:
        await delivery.stop()
        DEPENDENCIES.clear()


async def test_a_bug_in_the_delivery_loop_keeps_its_traceback_and_does_not_mark_the_outbox_unreachable() -> None:
    sink = RecordingSink("rec://")
    outbox = DownOutbox([sink.name], KeyError("a bug"))
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(poll_interval_s=0.01))
    try:
        with capture_logs() as logs:
            await delivery.start()
            await asyncio.sleep(0.1)
        failed = [e for e in logs if e["event"] == "alert_delivery_loop_failed"]
        assert len(failed) == 1 and isinstance(failed[0]["exc_info"], KeyError)
        assert not any(r.startswith("outbox") for r in DEPENDENCIES.reasons())
        assert outbox.claims >= 2  # the loop is still alive
    finally:
        await delivery.stop()
        DEPENDENCIES.clear()


async def test_a_flush_sends_to_every_sink_at_once_so_a_hanging_sink_does_not_starve_the_others() -> None:
    outbox = MemoryOutbox(["hanging://", "fine://"])
    await outbox.enqueue(_note(), 0.0)
    hanging, fine = SlowSink("hanging://", send_s=60.0), RecordingSink("fine://")
    delivery = OutboxDelivery(outbox, [hanging, fine], RetryPolicy(), clock=lambda: 0.0)
    async with asyncio.timeout(5):
        await delivery.flush(0.5)
    assert len(fine.sent) == 1 and hanging.sent == []


async def test_a_stop_does_not_wait_for_a_hanging_send_past_stop_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alerts.delivery.STOP_WAIT_S", 0.3)
    outbox = MemoryOutbox(["hanging://"])
    await outbox.enqueue(_note(), 0.0)
    delivery = OutboxDelivery(outbox, [SlowSink("hanging://", send_s=60.0)], RetryPolicy(send_timeout_s=35.0),
                              clock=lambda: 0.0)
    await delivery.start()
    await asyncio.sleep(0.2)  # the loop is inside the send
    async with asyncio.timeout(5):
        await delivery.stop()
    assert await outbox.pending("hanging://") == 1  # not delivered: due again after its lease


def _note() -> Notification:
    return step({}, [signal("ticker:T1", DAY0_S + 300, True)], DAY0_S + 300, LifecyclePolicy()).notifications[0]


class AskingSink(RecordingSink):
    def __init__(self, error: SinkError) -> None:
        super().__init__("asking://")
        self.error = error

    async def send(self, notification: Notification) -> None:
        raise self.error


@pytest.mark.parametrize(("asked_s", "expected_s"), [(120.0, 120.0), (86_400.0, RETRY_AFTER_MAX_S)])
async def test_a_receivers_retry_after_sets_the_next_attempt_bounded(asked_s: float, expected_s: float) -> None:
    outbox = MemoryOutbox(["asking://"])
    await outbox.enqueue(_note(), 0.0)
    delivery = OutboxDelivery(outbox, [AskingSink(SinkError("429", retry_after_s=asked_s))],
                              RetryPolicy(backoff_initial_s=1.0), clock=lambda: 1_000.0)
    await delivery.deliver_due(delivery.sinks[0])
    assert await outbox.next_due_s("asking://") == 1_000.0 + expected_s


async def test_a_refused_request_is_an_error_at_the_first_attempt_and_still_retried() -> None:
    outbox = MemoryOutbox(["asking://"])
    await outbox.enqueue(_note(), 0.0)
    delivery = OutboxDelivery(outbox, [AskingSink(SinkError("404", refused=True))], RetryPolicy(),
                              clock=lambda: 1_000.0)
    with capture_logs() as logs:
        await delivery.deliver_due(delivery.sinks[0])
    [event] = [e for e in logs if e["event"].startswith("alert_delivery")]
    assert (event["event"], event["log_level"]) == ("alert_delivery_refused", "error")
    assert await outbox.pending("asking://") == 1


class RefreshRecorder(RecordingSink):
    """An Alertmanager-like sink: records every re-post; fails while ``down`` is set."""

    def __init__(self, interval_s: float, name: str = "am://") -> None:
        super().__init__(name)
        self.refresh_interval_s = interval_s
        self.reposts: list[list[str]] = []
        self.down = False

    async def refresh(self, firing: object) -> None:
        if self.down:
            raise SinkError("alertmanager down")
        self.reposts.append([s.dedup_key for s in firing])  # type: ignore[attr-defined]


async def test_firing_alerts_are_re_posted_from_memory_while_the_state_store_is_down() -> None:
    """Found by review: with the outbox (Redis) down the refresh stopped, so Alertmanager timed out every
    firing alert after ends_after_s, sent RESOLVED, and paged again when Redis came back."""
    from alerts.lifecycle import AlertState

    outbox = DownOutbox(["am://"], RedisConnectionError("redis down"))
    outbox.error = None
    sink = RefreshRecorder(interval_s=0.05)
    states = [AlertState(dedup_key="burst:ticker:BA", rule="burst", window_key="ticker:BA")]
    store_down = False

    async def firing() -> list[AlertState]:
        if store_down:
            raise RedisConnectionError("redis down")
        return states

    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(poll_interval_s=0.01, outage_max_wait_s=0.02))
    delivery.firing = firing
    async with delivery:
        await asyncio.sleep(0.08)
        assert sink.reposts  # read from the store
        store_down, outbox.error = True, RedisConnectionError("redis down")
        before = len(sink.reposts)
        with capture_logs() as logs:
            await asyncio.sleep(0.3)
    assert len(sink.reposts) - before >= 3
    assert sink.reposts[-1] == ["burst:ticker:BA"]
    assert any(e["event"] == "alert_refresh_from_memory" for e in logs)


async def test_a_failed_re_post_is_tried_again_before_a_whole_interval_passes() -> None:
    now = [1000.0]
    sink = RefreshRecorder(interval_s=60.0)
    delivery = OutboxDelivery(MemoryOutbox(["am://"]), [sink], RetryPolicy(), clock=lambda: now[0])

    async def firing() -> list[object]:
        return []

    delivery.firing = firing  # type: ignore[assignment]
    failures = metrics.ALERT_REFRESH_FAILURES.labels(sink.name)._value.get()
    sink.down = True
    assert await delivery.refresh_if_due(sink) == 1010.0
    now[0] = 1010.0
    sink.down = False
    assert await delivery.refresh_if_due(sink) == 1070.0
    assert sink.reposts == [[]]
    # counted (rule FinsentAlertRefreshFailing), not only logged: found by review
    assert metrics.ALERT_REFRESH_FAILURES.labels(sink.name)._value.get() - failures == 1


async def test_a_failed_read_of_the_firing_set_is_retried_and_logged_but_not_counted_as_a_refresh_failure() -> None:
    """Found by a regression review: past the remembered set's hour, every failed Redis read counted as a
    failed re-post, so the counter grew every 10 s with nothing firing and FinsentAlertRefreshFailing warned
    about resolved alerts that do not exist."""
    now = [1000.0]
    sink = RefreshRecorder(interval_s=60.0)
    delivery = OutboxDelivery(MemoryOutbox(["am://"]), [sink], RetryPolicy(), clock=lambda: now[0])

    async def store_down() -> list[object]:
        raise RedisConnectionError("redis down")

    delivery.firing = store_down  # type: ignore[assignment]
    failures = metrics.ALERT_REFRESH_FAILURES.labels(sink.name)._value.get()
    with capture_logs() as logs:
        for _ in range(5):
            assert await delivery.refresh_if_due(sink) == now[0] + 10.0  # tried again 10 s later
            now[0] += 10.0
    assert metrics.ALERT_REFRESH_FAILURES.labels(sink.name)._value.get() == failures
    assert sink.reposts == []
    read_failures = [e for e in logs if e["event"] == "alert_refresh_failed"]
    assert len(read_failures) == 5 and read_failures[0]["stage"] == "read_firing"
    assert "redis down" in read_failures[0]["error"]


async def test_an_alert_resolved_before_the_store_went_down_is_not_re_posted_from_memory() -> None:
    """Found by a regression review: the remembered firing set is up to a refresh interval old, so an alert
    that resolved just before a Redis outage was re-posted as firing for the whole outage."""
    from alerts.lifecycle import AlertState, LifecyclePolicy, dedup_key, step

    key = dedup_key("negative_sentiment", "ticker:T0")
    now = [1000.0]
    sink = RefreshRecorder(interval_s=60.0)
    delivery = OutboxDelivery(MemoryOutbox(["am://"]), [sink], RetryPolicy(), clock=lambda: now[0])
    firing = [AlertState(dedup_key=key, rule="negative_sentiment", window_key="ticker:T0")]
    store_up = True

    async def read() -> list[AlertState]:
        if not store_up:
            raise RedisConnectionError("redis down")
        return firing

    delivery.firing = read
    await delivery.refresh_if_due(sink)
    fired = step({}, [signal("ticker:T0", DAY0_S, True)], DAY0_S + 300, LifecyclePolicy())
    resolved = step(dict(fired.states), [signal("ticker:T0", DAY0_S + 600, False)], DAY0_S + 900,
                    LifecyclePolicy(resolve_after_buckets=1)).notifications
    assert resolved and resolved[0].alerts[0].dedup_key == firing[0].dedup_key
    await delivery.outbox.enqueue(resolved[0], now[0])
    await delivery.deliver_due(sink)
    store_up, now[0] = False, now[0] + 60
    await delivery.refresh_if_due(sink)
    assert sink.reposts == [[key], []]


async def test_firing_alerts_keep_being_re_posted_while_a_backlog_fills_whole_batches() -> None:
    """Found by review: a backlog that filled every batch skipped the re-posts until it drained, so Alertmanager
    ended every firing alert after ends_after_s (a false RESOLVED) and paged again when re-posts resumed."""
    now = [1000.0]

    class SlowAlertmanager(RefreshRecorder):
        async def send(self, notification: Notification) -> None:
            now[0] += 0.3  # each POST takes 0.3 s of the fake clock
            await asyncio.sleep(0)

    sink = SlowAlertmanager(interval_s=60.0)
    outbox = MemoryOutbox([sink.name])
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(), clock=lambda: now[0])

    async def firing() -> list[object]:
        return []

    delivery.firing = firing  # type: ignore[assignment]
    for i in range(1000):  # 300 s of sends in full batches of 50
        n = step({}, [signal(f"ticker:T{i}", DAY0_S + 300, True)], DAY0_S + 300, LifecyclePolicy()).notifications[0]
        await outbox.enqueue(n, now[0])
    async with delivery:
        while await outbox.pending(sink.name):  # noqa: ASYNC110 -- the loop under test is the only other task
            await asyncio.sleep(0)
    assert len(sink.reposts) >= 4, "one re-post per interval through the 300 s backlog, not one at its end"


async def test_a_refresh_does_not_re_post_an_alert_whose_resolved_went_out_before_its_state_was_saved() -> None:
    """Found by review: notices are queued before the states are committed, so a refresh in between read the alert
    as firing and re-posted it; Alertmanager reopened what it had just resolved."""
    policy, states, key = LifecyclePolicy(), {}, "ticker:T1"
    fired = step(states, [signal(key, DAY0_S + 300, True)], DAY0_S + 300, policy)
    stale = dict(fired.states)  # what the store still holds until the commit lands
    states.update(fired.states)
    resolved = None
    for n in range(2, 6):
        now = DAY0_S + 300 * n
        result = step(states, [signal(key, now, False)], now, policy)
        states.update(result.states)
        resolved = next((x for x in result.notifications if x.status == "resolved"), resolved)
    assert resolved is not None
    now = [1_000.0]
    sink = RefreshRecorder(interval_s=60.0)
    outbox = MemoryOutbox([sink.name])
    delivery = OutboxDelivery(outbox, [sink], RetryPolicy(), clock=lambda: now[0])
    firing_states: list[object] = list(stale.values())

    async def firing() -> list[object]:
        return firing_states

    delivery.firing = firing  # type: ignore[assignment]
    await outbox.enqueue(resolved, now[0])
    await delivery.deliver_due(sink)
    await delivery.refresh_if_due(sink)
    assert sink.reposts == [[]]
    again = step(states, [signal(key, DAY0_S + 3_000, True)], DAY0_S + 3_000, policy)  # a new episode later
    firing_states[:] = [s for s in again.states.values()]
    now[0] += 61
    await delivery.refresh_if_due(sink)
    assert sink.reposts[-1] == [s.dedup_key for s in again.states.values()]
