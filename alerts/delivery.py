"""Outbox delivery: one loop per sink, retries with capped exponential backoff.

A sink that is down only delays its own queue (the other sinks' loops keep going); its entries
stay in the outbox (durable on Redis) and go out when it comes back. After ``max_attempts`` an
entry moves to that sink's dead-letter outbox (logged as an error, counted in
``finsent_alert_dead_letters_total``; ``monitor alerts redrive`` queues it again): bounded retries,
nothing stuck forever, nothing dropped. Outbox bookkeeping after a send (delivered / failed) is
retried through a backend outage (monitor/retry.py), so a sent notification is not sent again
just because Redis blinked while it was being recorded.
Delivery times are wall-clock (``clock``), unlike detection, which runs on event time.
When the outbox backend itself is down, each loop polls it again with capped exponential backoff and
logs the outage once, then at most once per ``OUTAGE_LOG_EVERY_S`` (before: one ERROR line per sink
per second for the whole outage -- 120 lines for a one-minute Redis stop with the default two sinks).

Each pass claims its batch for ``claim_lease_s`` (see alerts/outbox/), so two deliverers on one
outbox (cluster leader handover, a late old leader) never send the same entry concurrently, and a
deliverer that dies mid-batch only delays its entries by the lease. Each alert's notices reach a sink in
the order they were made: ``claim`` holds a notice back while an older one of its alerts is still queued for
that sink, and drops one the sink already saw superseded (alerts/outbox/).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from alerts.model import AlertStatus, Notification
from alerts.outbox import Outbox, OutboxEntry
from alerts.sinks.base import Sink, refreshing
from monitor import metrics
from monitor.lifecycle import Service, cancel_and_wait
from monitor.logging import LogThrottle
from monitor.retry import DEPENDENCIES, describe, is_transient, retrying

if TYPE_CHECKING:
    from alerts.lifecycle import AlertState

log = structlog.get_logger("alerts.delivery")
MIN_WAIT_S = 0.02
OUTAGE_LOG_EVERY_S = 60.0
"""While the outbox backend stays down, one ``alert_outbox_unavailable`` line per sink per this long."""
RETRY_AFTER_MAX_S = 900.0
"""A receiver's Retry-After is honoured up to this long (a misconfigured one must not park alerts for a day)."""
REFRESH_RETRY_S = 10.0
"""A failed re-post to Alertmanager is tried again this soon, not a whole refresh interval later: the alerts
it keeps active end ``ends_after_s`` (4 intervals) after the last post that landed."""
FIRING_MEMORY_MAX_AGE_S = 3_600.0
"""While the state store is down, re-posts use the firing set last read from it, up to this old. An alert
cannot resolve meanwhile (detection needs the same store), so re-posting it is right; without this a Redis
outage of ~4 minutes let Alertmanager time out every firing alert, send RESOLVED, and page again on return."""
RESOLVED_KEPT = 10_000
"""Alerts whose RESOLVED went out that a refresh remembers (oldest forgotten first)."""
STOP_WAIT_S = 10.0
"""How long a stop waits for each sink's send in hand. The default send timeout (sink_timeout_s x attempts
+ 5 = 35 s) alone outlasted the whole default shutdown_timeout_s (30 s), so one hanging sink turned every
stop into an incomplete one."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 50
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    poll_interval_s: float = 1.0
    batch_size: int = 50
    send_timeout_s: float = 30.0
    outage_max_wait_s: float = 10.0
    """Cap of the wait between polls of an outbox backend that is down (from ``poll_interval_s``, doubling):
    how long delivery may lag behind a recovered Redis."""
    claim_lease_s: float = 0.0
    """How long a claimed batch stays hidden from other deliverers; 0 (default): 2 * send_timeout_s.

    Must exceed ``send_timeout_s``: a send has to end inside its lease, or a second deliverer could
    claim and send the entry while the first is still sending it. The excess is slack: a batch
    starts sends only during the first half of it, and the second half is left after the latest
    possible end of a send, for recording its outcome and for clock skew between deliverers.
    """

    def __post_init__(self) -> None:
        if not self.claim_lease_s:
            object.__setattr__(self, "claim_lease_s", 2 * self.send_timeout_s)
        if self.claim_lease_s <= self.send_timeout_s:
            raise ValueError(f"claim_lease_s ({self.claim_lease_s}) must exceed send_timeout_s "
                             f"({self.send_timeout_s})")

    @property
    def send_window_s(self) -> float:
        """How long after its claim a batch may still start a send (see ``claim_lease_s``)."""
        return (self.claim_lease_s - self.send_timeout_s) / 2

    def delay_s(self, attempts: int) -> float:
        """Delay before attempt ``attempts + 1`` (``attempts`` failures so far, >= 1)."""
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(attempts - 1, 60)))

    def outage_wait_s(self, failures: int) -> float:
        """Wait before polling the outbox backend again after ``failures`` failed polls in a row (>= 1)."""
        return float(min(self.outage_max_wait_s, self.poll_interval_s * 2 ** min(failures - 1, 60)))


def failure_text(exc: BaseException, send_timeout_s: float) -> str:
    """What a failed send logs: a send cut at its time limit is a bare TimeoutError, which logged ``error=`` with
    nothing after it for the one failure on-call most needs named (a hanging sink; found by review)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"TimeoutError: the sink did not finish within {send_timeout_s:g} s"
    return str(exc) or type(exc).__name__


class OutboxDelivery(Service):
    def __init__(
        self, outbox: Outbox, sinks: Sequence[Sink], policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.sinks = list(sinks)
        self.policy = policy
        self._clock = clock
        self._wakeups = {s.name: asyncio.Event() for s in self.sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.active: Callable[[], bool] = lambda: True
        """Deliver only while this returns True (in cluster mode: while this instance leads), so
        instances sharing one Redis outbox do not send the same notification twice."""
        self.firing: Callable[[], Awaitable[Sequence[AlertState]]] | None = None
        """The durable firing alerts (set by the engine), re-posted to ``RefreshingSink``s (Alertmanager)
        by this loop: the loop already runs only where delivery is active (the cluster leader)."""
        self._refreshed_at_s: dict[str, float] = {}
        self._firing_memory: tuple[float, Sequence[AlertState]] | None = None
        """When the firing set was last read from the state store, and what it was (FIRING_MEMORY_MAX_AGE_S)."""
        self._resolved: collections.OrderedDict[str, tuple[int, int]] = collections.OrderedDict()
        """Alerts whose RESOLVED went out, with that notice's episode start and sequence (the newest
        RESOLVED_KEPT): a refresh skips a state of that episode not newer than it (a new episode may restart the
        sequence). The engine queues notices before it commits the states, so a refresh in between read the alert
        as firing and re-posted it: Alertmanager reopened what it had just resolved, and resolved it again
        ends_after_s later (found by review)."""
        self.outcomes: collections.Counter[str] = collections.Counter()
        """Delivery outcomes of this process (``delivered``/``failed``/``abandoned``), for the run summary."""
        self._export_zero_counters()

    def _export_zero_counters(self) -> None:
        """Create every sink's counter series at 0 now: a series that first appears at 1 (the first abandoned
        notification of a process) shows no ``increase()`` to Prometheus, so its alert would stay silent."""
        for sink in self.sinks:
            for outcome in metrics.DELIVERY_OUTCOMES:
                metrics.DELIVERIES.labels(sink.name, outcome)
            metrics.ALERT_DEAD_LETTERS.labels(sink.name)
            if refreshing(sink) is not None:
                metrics.ALERT_REFRESH_FAILURES.labels(sink.name)

    async def _start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._run(s), name=f"alert-delivery:{s.name}") for s in self.sinks]

    async def _stop(self) -> None:
        """Let each loop finish the send in hand (cancelling mid-send would resend it), then end; a send still
        hanging after STOP_WAIT_S is cancelled: its entry stays claimed and is sent again after the lease."""
        self._stopping = True
        self.wake()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=min(self.policy.send_timeout_s, STOP_WAIT_S))
            await cancel_and_wait(*late)
        self._tasks = []

    def wake(self) -> None:
        """New entries were enqueued: deliver now instead of at the next poll."""
        for event in self._wakeups.values():
            event.set()

    async def flush(self, timeout_s: float) -> None:
        """Deliver what is due now, for shutdown; entries that fail stay in the outbox."""
        results: list[int | BaseException] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):  # all sinks at once: a hanging one does not starve the rest
                results = await asyncio.gather(*(self._drain(sink) for sink in self.sinks),
                                               return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _drain(self, sink: Sink) -> int:
        """Passes until nothing is due: a notice held behind an older one of its alert in the same pass is due
        again once that one is delivered, and a single pass left it behind at shutdown; a pass of only held or
        superseded entries sends nothing while other entries may still be due (found by the regression review).
        Ends: every pass leases, retries or removes what it claims, so the due entries run out."""
        total = 0
        while True:
            total += await self.deliver_due(sink)
            due_s = await self.outbox.next_due_s(sink.name)
            if not self.active() or due_s is None or due_s > self._clock():
                return total

    async def deliver_due(self, sink: Sink) -> int:
        """One pass over (at most a batch of) the due entries of ``sink``; returns how many it tried.

        Sends start only within ``send_window_s`` of the claim, so each ends inside the lease; the
        rest of a slow batch stays claimed and is due again when the lease ends.
        """
        if not self.active():
            return 0
        claimed_at_s = self._clock()
        entries = await self.outbox.claim(
            sink.name, claimed_at_s, self.policy.batch_size, self.policy.claim_lease_s
        )
        send_by_s = claimed_at_s + self.policy.send_window_s
        for tried, entry in enumerate(entries):
            if self._clock() > send_by_s:
                log.info("alert_batch_deferred", sink=sink.name, deferred=len(entries) - tried,
                         due_again_at_s=claimed_at_s + self.policy.claim_lease_s)
                return tried
            await self._deliver_one(sink, entry)
        return len(entries)

    async def _deliver_one(self, sink: Sink, entry: OutboxEntry) -> None:
        nid = entry.notification.id
        try:
            async with asyncio.timeout(self.policy.send_timeout_s):
                await sink.send(entry.notification)
        except Exception as exc:
            error = failure_text(exc, self.policy.send_timeout_s)
            attempts = entry.attempts + 1
            if attempts >= self.policy.max_attempts:
                await retrying("outbox", functools.partial(self.outbox.abandon, sink.name, nid, self._clock(),
                                                           attempts))
                metrics.DELIVERIES.labels(sink.name, "abandoned").inc()
                self.outcomes["abandoned"] += 1
                metrics.ALERT_DEAD_LETTERS.labels(sink.name).inc()
                log.error("alert_dead_lettered", sink=sink.name, notification_id=nid,
                          attempts=attempts, error=error, redrive=f"monitor alerts redrive --sink {sink.name}")
            else:
                delay_s = self.policy.delay_s(attempts)
                asked_s = getattr(exc, "retry_after_s", None)
                if asked_s is not None:  # the receiver's Retry-After (rate limit, maintenance), bounded
                    delay_s = max(delay_s, min(float(asked_s), RETRY_AFTER_MAX_S))
                retry_at_s = self._clock() + delay_s
                await retrying("outbox", functools.partial(self.outbox.mark_failed, sink.name, nid, retry_at_s))
                metrics.DELIVERIES.labels(sink.name, "failed").inc()
                self.outcomes["failed"] += 1
                refused = bool(getattr(exc, "refused", False))
                (log.error if refused else log.warning)(
                    "alert_delivery_refused" if refused else "alert_delivery_failed",
                    sink=sink.name, notification_id=nid, attempts=attempts, retry_in_s=delay_s, error=error)
            return
        self._forget_resolved(entry.notification)
        await retrying("outbox", functools.partial(self.outbox.mark_delivered, sink.name, nid, self._clock()))
        metrics.DELIVERIES.labels(sink.name, "delivered").inc()
        self.outcomes["delivered"] += 1
        log.info("alert_delivered", sink=sink.name, notification_id=nid, attempts=entry.attempts + 1)

    async def refresh_if_due(self, sink: Sink) -> float | None:
        """Re-post the firing alerts to a ``RefreshingSink`` when its interval has passed; returns when
        the next refresh is due (None for other sinks). After the due outbox entries, so a resolved
        notice in the outbox always lands after the last re-post of the alert it resolves."""
        target = refreshing(sink)
        if target is None or self.firing is None or not self.active():
            return None
        now_s = self._clock()
        due_s = self._refreshed_at_s.get(sink.name, 0.0) + target.refresh_interval_s
        if now_s < due_s:
            return due_s
        self._refreshed_at_s[sink.name] = now_s
        try:
            firing = self._still_firing(await self._firing_now(now_s))
        except Exception as exc:
            # the state store is down past the remembered set's age: nothing was posted, so it is not counted
            # as a refresh failure (it grew finsent_alert_refresh_failures_total every 10 s with nothing
            # firing); the outage shows in /readyz and FinsentNotReady
            log.warning("alert_refresh_failed", sink=sink.name, stage="read_firing",
                        error=str(exc) or type(exc).__name__)
            return self._refresh_again_soon(sink.name, target.refresh_interval_s, now_s)
        try:
            async with asyncio.timeout(self.policy.send_timeout_s):
                await target.refresh(firing)
        except Exception as exc:
            metrics.ALERT_REFRESH_FAILURES.labels(sink.name).inc()
            log.warning("alert_refresh_failed", sink=sink.name, error=str(exc) or type(exc).__name__)
            return self._refresh_again_soon(sink.name, target.refresh_interval_s, now_s)
        return now_s + target.refresh_interval_s

    def _refresh_again_soon(self, sink_name: str, interval_s: float, now_s: float) -> float:
        """Make the next refresh due REFRESH_RETRY_S from now (or the interval, if shorter); returns when."""
        retry_s = min(REFRESH_RETRY_S, interval_s)
        self._refreshed_at_s[sink_name] = now_s - interval_s + retry_s
        return now_s + retry_s

    def _forget_resolved(self, notification: Notification) -> None:
        """Drop the alerts of a RESOLVED notice about to be acknowledged from the remembered firing set: it is
        up to a refresh interval old, so an alert that resolved just before Redis went down was re-posted as
        firing for the whole outage (Alertmanager reopened it and paged again; found by a regression review)."""
        if notification.status is not AlertStatus.RESOLVED:
            return
        for alert in notification.alerts:
            self._resolved.pop(alert.dedup_key, None)
            self._resolved[alert.dedup_key] = (alert.started_at_s, alert.sequence)
        while len(self._resolved) > RESOLVED_KEPT:
            self._resolved.popitem(last=False)
        if self._firing_memory is None:
            return
        resolved = {a.dedup_key for a in notification.alerts}
        read_s, states = self._firing_memory
        self._firing_memory = (read_s, [s for s in states if s.dedup_key not in resolved])

    def _still_firing(self, states: Sequence[AlertState]) -> list[AlertState]:
        """``states`` less those whose RESOLVED already went out (a state read before its commit landed)."""
        return [s for s in states if not self._resolved_already(s)]

    def _resolved_already(self, state: AlertState) -> bool:
        resolved = self._resolved.get(state.dedup_key)
        return resolved is not None and state.started_at_s == resolved[0] and state.sequence <= resolved[1]

    async def _firing_now(self, now_s: float) -> Sequence[AlertState]:
        """The firing alerts from the state store; while it is down, the set last read (FIRING_MEMORY_MAX_AGE_S)."""
        assert self.firing is not None
        try:
            async with asyncio.timeout(self.policy.send_timeout_s):
                firing = await self.firing()
        except Exception as exc:
            memory = self._firing_memory
            if memory is None or now_s - memory[0] > FIRING_MEMORY_MAX_AGE_S:
                raise
            log.warning("alert_refresh_from_memory", error=str(exc) or type(exc).__name__, alerts=len(memory[1]),
                        read_s_ago=round(now_s - memory[0]))
            return memory[1]
        self._firing_memory = (now_s, firing)
        return firing

    @staticmethod
    def _report_failure(sink: Sink, exc: Exception, failures: int, throttle: LogThrottle) -> None:
        """Readiness and one log line now and then; a non-transient error is a bug and keeps its traceback."""
        transient = is_transient(exc)
        if transient:
            DEPENDENCIES.down("outbox", exc)
        left_out = throttle.allow()
        if left_out is None:
            return
        if transient:
            log.error("alert_outbox_unavailable", sink=sink.name, error=describe(exc)[:400], failed_polls=failures,
                      left_out_since_last=left_out)
        else:
            log.error("alert_delivery_loop_failed", sink=sink.name, failed_polls=failures,
                      left_out_since_last=left_out, exc_info=exc)

    async def _observe(self, sink: Sink) -> None:
        """Outbox depth and the age of its oldest entry, per sink (for alerting on a stuck sink)."""
        metrics.OUTBOX_PENDING.labels(sink.name).set(await self.outbox.pending(sink.name))
        oldest_s = await self.outbox.oldest_enqueued_s(sink.name)
        age_s = 0.0 if oldest_s is None else max(0.0, self._clock() - oldest_s)
        metrics.OUTBOX_OLDEST_AGE.labels(sink.name).set(age_s)

    async def _run(self, sink: Sink) -> None:
        wakeup = self._wakeups[sink.name]
        throttle = LogThrottle(OUTAGE_LOG_EVERY_S)
        failures = 0
        while not self._stopping:
            wakeup.clear()
            try:
                tried = await self.deliver_due(sink)
                next_due = await self.outbox.next_due_s(sink.name)
                await self._observe(sink)
            except Exception as exc:  # the outbox backend itself is down (or a bug): keep the loop alive
                failures += 1
                self._report_failure(sink, exc, failures, throttle)
                tried, next_due = 0, None
            else:
                if failures:
                    log.info("alert_outbox_recovered", sink=sink.name, failed_polls=failures)
                    failures = 0
                    throttle.reset()
                DEPENDENCIES.up("outbox")
            if tried >= self.policy.batch_size:
                # more may be due right now; the re-posts keep their interval through a backlog (skipping them
                # let Alertmanager end every firing alert after ends_after_s and page again: found by review)
                await self.refresh_if_due(sink)
                continue
            refresh_due = await self.refresh_if_due(sink)  # also while the outbox is down: see _firing_now
            if refresh_due is not None:
                next_due = refresh_due if next_due is None else min(next_due, refresh_due)
            wait_s = self.policy.outage_wait_s(failures) if failures else self.policy.poll_interval_s
            if next_due is not None:
                wait_s = min(wait_s, max(MIN_WAIT_S, next_due - self._clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):  # not wait_for: on 3.11 it can swallow a cancel
                    await wakeup.wait()
