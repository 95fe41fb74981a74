"""The alert engine: closed buckets -> detectors -> lifecycle -> evidence -> outbox -> sinks.

``evaluate(now_s)`` is driven by event time: ``now_s`` is the watermark (e.g.
``Watermark.closed_until_s``); every bucket ``[t, t + bucket_s)`` with ``t + bucket_s <= now_s`` that
was not evaluated yet is evaluated once, oldest first, in passes of at most ``max_catchup_buckets``
buckets (bounded work and memory per pass; each pass commits its states and moves the cursor, and
the next pass continues from there: a backlog after a pause or a restart is caught up, never
skipped). The cursor (end of the last evaluated bucket) is stored with the alert states and only
moves forward, so calling ``evaluate`` twice, or after a restart or a crash mid-pass, never
evaluates a bucket twice. The first call ever evaluates only the newest closed bucket, unless
``begin_at`` set where detection starts (the pipeline does, once its first data is durable, so a
daemon stopped before its first evaluation leaves a cursor its successor starts from).

Per bucket, the keys evaluated are those with messages in that bucket plus those with a pending or
firing alert (an empty bucket counts as quiet, so alerts on keys that fall silent still resolve).

Two detector families (``alerts.detection``): the per-bucket ones look back ``history_s`` from each
bucket, in a per-key history the engine keeps between passes (alerts/history.py: a pass that follows
the previous one reads only its own buckets, any other re-reads the history); the multiscale one
(alerts/multiscale.py) keeps incremental per-key state and reads only the pass's new buckets, once.
Its state is valid only for the bucket sequence it has stepped (``until_s``): when the cursor says
otherwise (first call, restart, a failed evaluation, a skipped stretch) it is rebuilt from the
store's history (``rebuild_history_s``), so detection stays a pure function of the stored buckets,
live and in replay.
Start/stop runs the outbox delivery loops; ``stop`` flushes what is due before closing sinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Container, Iterable, Mapping, Sequence
from dataclasses import replace

import structlog

from alerts.delivery import OutboxDelivery, RetryPolicy
from alerts.detectors import DetectorConfig, KeySeries, Signal, detect, window_start_s
from alerts.evidence import collect_evidence
from alerts.history import SeriesCache
from alerts.lifecycle import AlertState, LifecyclePolicy, forget_at_s, prunable, step
from alerts.model import AlertItem, AlertStatus, Notification
from alerts.multiscale import MultiScaleConfig, MultiScaleDetector
from alerts.outbox import Outbox, OutboxFullError, RedisOutbox
from alerts.sinks.base import Sink
from alerts.state import AlertStateStore, CursorMovedError
from monitor import metrics
from monitor.config import AlertSettings
from monitor.durations import iso_utc
from monitor.lifecycle import Service
from monitor.logging import LogThrottle
from monitor.retry import describe
from monitor.time_bounds import EventTimeBounds
from monitor.windows.base import WindowStore
from monitor.windows.buckets import ALL_KEY, BucketStats, align_s, key_rank

log = structlog.get_logger("alerts.engine")
HISTORICAL_LOG_EVERY_S = 60.0
"""At most one ``alerts_not_paged_historical`` warning this often while a catch-up holds back old episodes' pages."""
FLUSH_TIMEOUT_S = 5.0
REBUILD_READ_BUCKETS = 288
"""A baseline rebuild reads the history this many buckets at a time (a day of 5-minute buckets), so the
bulk read and what it holds stay bounded however long ``rebuild_history_s`` is."""
REBUILD_READ_KEYS = 10_000
"""...and at most this many keys in one read, letting the event loop run between reads and after every bucket (and
within a big one: ``MultiScaleDetector.stepping``): rebuilding 14 days of a few hundred keys is seconds of CPU, which
in one piece stalled Kafka heartbeats, lease renewal and /healthz, and one day of 96k spam keys was a 0.5 s read."""
LIVE = (AlertStatus.PENDING, AlertStatus.FIRING)


def _merged(dense: Signal | None, multi: Signal) -> Signal:
    """``detection = both``: the multiscale signal, plus whatever the per-bucket detectors found."""
    if dense is None or not dense.triggered:
        return multi
    if not multi.triggered:
        return dense
    return replace(multi, triggered=(*multi.triggered, *dense.triggered))


async def _stepped(detector: MultiScaleDetector, start: int, buckets: Mapping[str, BucketStats],
                   evaluate: set[str]) -> AsyncIterator[Signal]:
    """``detector.step``, letting other tasks run after each of its parts (``MultiScaleDetector.stepping``)."""
    for part in detector.stepping(start, buckets, evaluate):
        for sig in part:
            yield sig
        await asyncio.sleep(0)


def _evidence_rank(key: str, pass_buckets: Iterable[BucketStats], known: Container[str]
                   ) -> tuple[int, int, bool, int, str]:
    """The order a capped pass keeps keys in: ``all`` and the topics, then the most negatives in the pass (what can
    alert), then keys with an established baseline (``known``: multiscale) before new ones, then volume, then name."""
    buckets = list(pass_buckets)
    return key_rank(key)[0], -sum(b.negative for b in buckets), key not in known, -sum(b.volume for b in buckets), key


def _chosen(candidates: list[str], room: int, pass_buckets: Mapping[str, Sequence[BucketStats]],
            detector: MultiScaleDetector | None) -> list[str]:
    """The ``room`` candidates a capped pass evaluates (by ``_evidence_rank``), in the candidates' order."""
    known: Container[str] = detector.keys if detector is not None else ()
    chosen = set(sorted(candidates, key=lambda k: _evidence_rank(k, pass_buckets.get(k, ()), known))[:room])
    return [k for k in candidates if k in chosen]


def _observed(detector: MultiScaleDetector | None, keys: Sequence[str], active: Sequence[str]) -> list[str]:
    """Keys multiscale detection observes in a pass: the evaluated ones, the active keys it already tracks, and new
    active keys while it has room for their state (a key left out of evaluation by the cap still has its negatives
    counted: observing only the evaluated ones gave the rest exposure without negatives, a rate too low). New keys
    past ``max_tracked_keys`` are not: observing 192k spam keys in one bucket blocked the event loop for 5 s, and
    their states were evicted at once (found by review)."""
    if detector is None:
        return []
    tracked = detector.keys
    observed = {*keys, *(k for k in active if k in tracked)}
    room = detector.cfg.max_keys - len(tracked) - sum(1 for k in observed if k not in tracked)
    if room > 0:
        observed.update([k for k in active if k not in observed][:room])
    return sorted(observed)


def _live_keys(states: dict[str, AlertState]) -> set[str]:
    return {s.window_key for s in states.values() if s.status in LIVE}


def _unannounced(dropped: Sequence[Notification], states: dict[str, AlertState]) -> list[str]:
    """Dedup keys whose first FIRING notice the full outbox refused: they stay un-announced, so the next bucket
    announces them again. Marked announced, the FIRING was never retried and its RESOLVED later went out
    alone (found by review: receivers got "back to normal" for something they never saw fire)."""
    out = []
    for item in (a for n in dropped if n.status is AlertStatus.FIRING for a in n.alerts if not a.repeat):
        st = states.get(item.dedup_key)
        if st is not None and st.status is AlertStatus.FIRING and st.started_at_s == item.started_at_s:
            out.append(item.dedup_key)
    return out


def _observe(states: dict[str, AlertState], series: dict[str, KeySeries], last_start_s: int) -> None:
    """Firing alerts and per-topic negative share of the newest evaluated bucket, for /metrics."""
    metrics.ALERTS_FIRING.set(sum(1 for s in states.values() if s.status is AlertStatus.FIRING))
    shares: dict[str, float | None] = dict.fromkeys(metrics.exported_topics())
    for key, ks in series.items():
        if key.startswith("topic:"):
            bucket = ks.at(last_start_s)
            shares[key.removeprefix("topic:")] = bucket.neg_share if bucket.volume else None
    metrics.observe_topic_negative_shares(shares)


class AlertEngine(Service):
    def __init__(
        self,
        store: WindowStore,
        settings: AlertSettings,
        state: AlertStateStore,
        outbox: Outbox,
        sinks: Sequence[Sink],
        *,
        clock: Callable[[], float] = time.time,
        time_bounds: EventTimeBounds | None = None,
    ) -> None:
        self.store = store
        self.time_bounds = time_bounds
        """Plausible event times (``source.*`` settings); a stored cursor outside them is repaired at
        start. None = not checked."""
        self.settings = settings
        self.state = state
        self.outbox = outbox
        self.undelivered_at_stop: dict[str, int] = {}
        """Per sink, notifications still in the outbox when the engine stopped (kept on Redis, lost in memory)."""
        self.sinks = list(sinks)
        self.detector_config = DetectorConfig.from_settings(settings, store.bucket_s)
        self.policy = LifecyclePolicy.from_settings(settings)
        self.multiscale: MultiScaleDetector | None = None
        if settings.detection != "bucket":
            self.multiscale = MultiScaleDetector(MultiScaleConfig.from_settings(settings, store.bucket_s))
        self.signal_observer: Callable[[Signal], None] | None = None
        """Called with every signal computed (backtests record the series they plot)."""
        self.page_max_age_s = 0
        """A firing episode starting on a bucket older than this (wall clock) is tracked, not paged
        (``alerts.max_page_age_s``; set by ``monitor run`` on Kafka). 0: always page."""
        self._historical_log = LogThrottle(HISTORICAL_LOG_EVERY_S)
        self._historical_held = 0
        self._clock = clock
        self.delivery = OutboxDelivery(
            outbox,
            self.sinks,
            RetryPolicy(
                max_attempts=settings.delivery_max_attempts,
                backoff_initial_s=settings.delivery_backoff_initial_s,
                backoff_max_s=settings.delivery_backoff_max_s,
                poll_interval_s=settings.delivery_poll_interval_s,
                batch_size=settings.delivery_batch_size,
                send_timeout_s=settings.sink_timeout_s * settings.webhook_max_attempts + 5.0,
            ),
            clock=clock,
        )
        self.delivery.firing = self.firing_states
        self._lock = asyncio.Lock()
        self._cursor_seen = False
        """This process read or wrote a detection cursor: one gone afterwards means the alert store lost its data."""
        self._history = SeriesCache()
        """Per-bucket detectors' history, kept between passes (alerts/history.py)."""

    async def firing_states(self) -> list[AlertState]:
        """Announced, still-firing alerts from the durable state store (re-posted to Alertmanager)."""
        states = await self.state.load_states()
        return [s for s in states.values() if s.status is AlertStatus.FIRING and s.notified]

    async def _start(self) -> None:
        await self.state.start()
        cursor = await self._repair_cursor()
        if cursor is not None:  # FinsentDetectionLag watches this gauge: from the saved cursor until the first pass
            metrics.EVALUATED_UNTIL.set(cursor)
        await self.outbox.start()
        for sink in self.sinks:
            await sink.start()
        await self.delivery.start()

    async def _repair_cursor(self) -> int | None:
        """A cursor outside the plausible event times (9999, stored before times were bounded) would
        make every later bucket look evaluated: forget it, and the alert states stamped past it
        (their cooldowns would mute every later firing), with one warning saying so. Returns the
        stored cursor left (None: none, or forgotten)."""
        cursor = await self.state.get_cursor()
        if cursor is None or self.time_bounds is None:
            return cursor
        problem = self.time_bounds.cursor_violation(cursor)
        if problem is None:
            return cursor
        limit_s = self.time_bounds.ceiling_s()
        states = await self.state.load_states()
        stale = sorted(k for k, st in states.items() if limit_s is not None and st.updated_at_s > limit_s)
        await self.state.reset_cursor(stale)
        log.warning("alert_cursor_repaired", cursor_s=cursor, problem=f"cursor {problem}",
                    states_dropped=len(stale), action="cursor cleared: detection restarts at the next closed bucket")
        return None

    async def _stop(self) -> None:
        await self.delivery.stop()
        try:
            await self.delivery.flush(FLUSH_TIMEOUT_S)
        except Exception as exc:  # the outbox is down: its entries stay there; the rest must still close
            log.error("alert_flush_failed", error=describe(exc)[:400],
                      undelivered="kept in the outbox for the next start" if isinstance(self.outbox, RedisOutbox)
                      else "lost with this process (memory outbox)")
        with contextlib.suppress(Exception):  # a report only: an unreachable outbox must not fail the stop
            self.undelivered_at_stop = {name: n for name in self.outbox.sink_names
                                        if (n := await self.outbox.pending(name))}
        for sink in self.sinks:
            try:
                await sink.stop()
            except Exception as exc:  # one sink's close (a Kafka producer, a broker gone) must not skip the rest
                log.error("alert_sink_stop_failed", sink=sink.name, error=describe(exc)[:400])
        await self.outbox.stop()
        await self.state.stop()

    async def evaluate(self, now_s: int) -> list[Notification]:
        """Evaluate every not-yet-evaluated closed bucket up to ``now_s`` (event time); see module doc."""
        async with self._lock:
            return await self._evaluate(now_s)

    async def resume_point_s(self) -> int | None:
        """The durable cursor: every bucket ending at or before it has been evaluated."""
        return await self.state.get_cursor()

    async def begin_at(self, start_s: int) -> None:
        """Detection starts at bucket ``start_s`` unless it has started already (durable cursor)."""
        if await self.state.get_cursor() is None:
            await self.state.commit([], [], align_s(start_s, self.store.bucket_s))

    def _first_bucket(self, cursor: int | None, closed_end: int) -> int:
        return closed_end - self.store.bucket_s if cursor is None else cursor

    def _pass_end(self, first: int, closed_end: int) -> int:
        """End of one bounded pass starting at ``first``; the next pass continues from it."""
        end = min(closed_end, first + self.settings.max_catchup_buckets * self.store.bucket_s)
        if end < closed_end:
            log.info("alert_catching_up", from_s=first, to_s=end, behind_buckets=(closed_end - end)
                     // self.store.bucket_s)
        return end

    async def _keys(self, active: Sequence[str], states: dict[str, AlertState], first: int, closed_end: int
                    ) -> tuple[list[str], dict[str, list[BucketStats]]]:
        """Keys to evaluate: every live alert's, then the pass's active keys up to the cap, chosen by evidence
        (``_evidence_rank``), and the pass's buckets read to rank them (none under the cap), for ``_pass_buckets``
        to reuse. Name order let junk tickers sorting before a real one push it out: a ZION surge under a wave of
        ``AJ...`` tickers fired 65 minutes late, or never (found by review)."""
        tracked = _live_keys(states)
        candidates, room = self._candidates(active, tracked)
        found: dict[str, list[BucketStats]] = {}
        if len(candidates) > room:
            log.error("alert_keys_truncated", keys=len(candidates) + len(tracked), evaluated=room + len(tracked))
            found = {k: list(v) for k, v in (await self.store.buckets_many(candidates, first, closed_end)).items()}
            await asyncio.sleep(0)  # ranking a spam bucket's keys takes a few tenths of a second: let others run
            candidates = _chosen(candidates, room, found, self.multiscale)
            await asyncio.sleep(0)
        return sorted(tracked) + candidates, found

    def _candidates(self, active: Iterable[str], tracked: set[str]) -> tuple[list[str], int]:
        """Active keys not tracked anyway, and how many of them ``max_keys_per_evaluation`` leaves room for."""
        candidates = sorted(set(active) - tracked, key=key_rank)
        return candidates, max(0, self.settings.max_keys_per_evaluation - len(tracked))

    async def _series(self, keys: Sequence[str], active: Sequence[str], first: int, closed_end: int
                      ) -> dict[str, KeySeries]:
        """Every evaluated key's history up to the end of this pass. After a pass that ended at
        ``first``, only the pass's own buckets are read (alerts/history.py); otherwise the whole
        history of every key active in it, in one bulk read of the store."""
        since = first - self.detector_config.history_s
        cache = self._history
        if cache.covers(since, first):
            cache.extend(closed_end, await self.store.buckets_many(active, first, closed_end))
        else:
            everyone = sorted({*keys, *active, *await self.store.active_keys(since, first)})
            cache.reset(since, closed_end, await self.store.buckets_many(everyone, since, closed_end))
        cache.trim(since)
        return {key: KeySeries(key, cache.history(key)) for key in keys}

    async def _pass_buckets(self, keys: Sequence[str], first: int, closed_end: int,
                            read: Mapping[str, Sequence[BucketStats]] | None = None
                            ) -> dict[int, dict[str, BucketStats]]:
        """Every key's buckets of this pass, read once (one bulk read, less the keys in ``read``: this pass's buckets
        already read), by bucket start (multiscale detection keeps the history itself, so it needs only the new
        buckets)."""
        read = read or {}
        wanted = {*keys, ALL_KEY}
        found = {k: v for k, v in read.items() if k in wanted}
        found.update(await self.store.buckets_many(sorted(wanted - found.keys()), first, closed_end))
        out: dict[int, dict[str, BucketStats]] = {}
        for key, stats_of_key in found.items():
            for stats in stats_of_key:
                out.setdefault(stats.start_s, {})[key] = stats
        return out

    async def _rebuild(self, detector: MultiScaleDetector, first: int) -> None:
        """Fresh baselines from the store's history before ``first`` (after a start, a restart or a
        failed evaluation: the state never runs ahead of the committed cursor). Each bucket is stepped as a live pass
        of that one bucket steps it (``_rebuild_step``), so an episode that ended in the history marks its windows
        spent again: stepping without evaluating forgot that, and after every restart the tail of a story that had
        paged could page again."""
        b = self.store.bucket_s
        fresh = MultiScaleDetector(detector.cfg)
        since = first - self.settings.rebuild_history_s
        history = await self.store.buckets(ALL_KEY, since, first)
        if history:
            keys: set[str] = set()
            read_s = REBUILD_READ_BUCKETS * b
            for read_start in range(history[0].start_s, first, read_s):
                read_end = min(first, read_start + read_s)
                active = await self.store.active_keys(read_start, read_end)
                keys.update(active)
                by_bucket: dict[int, dict[str, BucketStats]] = {}
                for i in range(0, len(active), REBUILD_READ_KEYS):
                    part = await self._pass_buckets(active[i:i + REBUILD_READ_KEYS], read_start, read_end)
                    for start, of_bucket in part.items():
                        by_bucket.setdefault(start, {}).update(of_bucket)
                    await asyncio.sleep(0)
                for start in range(read_start, read_end, b):
                    await self._rebuild_step(fresh, start, by_bucket.get(start, {}))
            log.info("alert_baselines_rebuilt", since_s=history[0].start_s, until_s=first, keys=len(keys))
        fresh.until_s = first
        self.multiscale = fresh

    async def _rebuild_step(self, fresh: MultiScaleDetector, start: int, stats: Mapping[str, BucketStats]) -> None:
        """One bucket of the rebuild, with the keys a live pass of it evaluates and observes: its keys with data up to
        ``max_keys_per_evaluation`` and those with a finding until it ends (live: those with a live alert), new keys
        observed only while ``max_tracked_keys`` has room. Every key of the bucket, as before, made a restart's state
        differ from the live one after a spam bucket, and froze the event loop for 12 s observing 96k keys (found by
        review)."""
        active = sorted(k for k, st in stats.items() if st.volume)
        tracked = set(fresh.active)
        candidates, room = self._candidates(active, tracked)
        if len(candidates) > room:  # ranking a spam bucket's keys takes a few tenths of a second: let others run
            await asyncio.sleep(0)
            candidates = _chosen(candidates, room, {k: (stats[k],) for k in candidates}, fresh)
            await asyncio.sleep(0)
        keys = sorted(tracked) + candidates
        observed = {k: stats[k] for k in (*_observed(fresh, keys, active), ALL_KEY) if k in stats}
        evaluated = {*keys, ALL_KEY}
        wanted = {k for k, st in observed.items() if st.volume and k in evaluated} | tracked
        async for _ in _stepped(fresh, start, observed, wanted):
            pass

    async def _signals(self, start: int, series: dict[str, KeySeries], buckets: dict[str, BucketStats],
                       live: set[str], evaluated: set[str]) -> list[Signal]:
        """Signals of one bucket: evaluated keys with data in it, plus keys with a live alert (so they resolve).
        Multiscale detection observes every key in ``buckets``."""
        by_key: dict[str, Signal] = {}
        if self.settings.detection != "multiscale":
            for key, ks in series.items():
                if key in live or ks.at(start).volume > 0:
                    by_key[key] = detect(ks, start, self.detector_config)
        if self.multiscale is not None:
            wanted = {k for k, st in buckets.items() if st.volume and k in evaluated} | live
            async for sig in _stepped(self.multiscale, start, buckets, wanted):
                by_key[sig.key] = _merged(by_key.get(sig.key), sig)
        return [by_key[k] for k in sorted(by_key)]

    async def _with_evidence(self, notification: Notification) -> Notification:
        if notification.status is not AlertStatus.FIRING:
            return notification
        items: list[AlertItem] = []
        for item in notification.alerts:
            sig = item.signal
            evidence = await collect_evidence(
                self.store, item.window_key, window_start_s(sig), sig.bucket_end_s, self.settings.evidence_top_n,
            )
            items.append(replace(item, evidence=evidence))
        return replace(notification, alerts=tuple(items))

    async def _evaluate(self, now_s: int) -> list[Notification]:
        b = self.store.bucket_s
        closed_end = align_s(now_s, b)
        notifications: list[Notification] = []
        while True:
            cursor = await self.state.get_cursor()
            if cursor is None and self._cursor_seen:
                await self._notice_lost_cursor()
            self._cursor_seen = self._cursor_seen or cursor is not None
            first = self._first_bucket(cursor, closed_end)
            if first >= closed_end:
                return notifications
            try:
                notifications += await self._evaluate_pass(first, self._pass_end(first, closed_end), cursor)
            except CursorMovedError as exc:
                # another instance judged these buckets meanwhile: its states stand, ours are dropped (the
                # detector state is rebuilt at the next pass: its end no longer matches the cursor)
                log.warning("alert_pass_superseded", first_s=first, error=str(exc),
                            why="another instance moved the detection cursor during this pass (a new cluster "
                                "leader while this one stalled)")
                return notifications

    async def _notice_lost_cursor(self) -> None:
        """The cursor is gone after this process saw one: the alert store (cursor, alert states, silences, outbox)
        lost its data, unless alert states or silences are still there (another instance repaired an implausible
        cursor at its start, ``_repair_cursor``: not a loss; found by the regression review). Its keys live under
        their own hash tag, often on another Redis Cluster shard than the windows, whose marker
        (monitor/windows/epoch.py) does not see it; before, detection silently restarted at the newest bucket,
        silenced alerts paged again and queued notices were gone (found by review)."""
        self._cursor_seen = False
        if await self.state.load_states() or await self.state.list_silences():
            return
        metrics.WINDOW_STORE_RESETS.inc()
        log.error("alert_store_lost_data", impact="the detection cursor, alert states, silences and queued "
                  "notifications are gone: detection restarts at the newest bucket, firing alerts announce "
                  "again, silences no longer mute, undelivered notifications are lost",
                  fix="give Redis persistence (appendonly yes) and a maxmemory-policy of noeviction; "
                      "re-create the silences (monitor silences list shows none)")

    async def _evaluate_pass(self, first: int, closed_end: int, cursor: int | None) -> list[Notification]:
        """Evaluate ``[first, closed_end)`` and commit states + cursor atomically (see module doc)."""
        b = self.store.bucket_s
        states = await self.state.load_states()
        silences = await self.state.list_silences()
        active = await self.store.active_keys(first, closed_end)
        if self.multiscale is not None and self.multiscale.until_s != first:
            await self._rebuild(self.multiscale, first)
        keys, ranked = await self._keys(active, states, first, closed_end)
        dense = self.settings.detection != "multiscale"
        series = await self._series(keys, active, first, closed_end) if dense else {}
        by_bucket = (await self._pass_buckets(_observed(self.multiscale, keys, active), first, closed_end, ranked)
                     if self.multiscale else {})
        evaluated = {*keys, ALL_KEY}
        changed: set[str] = set()
        notifications: list[Notification] = []
        page_from_s = int(self._clock()) - self.page_max_age_s if self.page_max_age_s else None
        historical: list[str] = []
        for start in range(first, closed_end, b):
            live = _live_keys(states)
            signals = await self._signals(start, series, by_bucket.get(start, {}), live, evaluated)
            if self.signal_observer is not None:
                for sig in signals:
                    self.signal_observer(sig)
            result = step(states, signals, start + b, self.policy, silences, page_from_s=page_from_s)
            states.update(result.states)
            changed.update(result.states)
            for key, reason in result.suppressed:
                if reason == "historical":
                    historical.append(key)
                else:
                    log.info("alert_suppressed", key=key, reason=reason, bucket_start_s=start)
            for n in result.notifications:
                notifications.append(await self._with_evidence(n))
        if historical:
            self._report_historical(sorted(set(historical)), closed_end)
        if notifications:
            await self._check_cursor_unmoved(cursor)
        for dedup_key in _unannounced(await self._enqueue(notifications), states):
            states[dedup_key] = replace(states[dedup_key], notified=False, last_firing_notified_s=None)
            changed.add(dedup_key)
        newest = by_bucket.get(closed_end - b, {})
        _observe(states, series or {k: KeySeries(k, [st]) for k, st in newest.items()}, closed_end - b)
        deleted = self._prune(states, closed_end)
        await self.state.commit([states[k] for k in sorted(changed - set(deleted))], deleted, closed_end,
                                after_s=cursor)
        if notifications:
            self.delivery.wake()
        return notifications

    async def _check_cursor_unmoved(self, cursor: int | None) -> None:
        """Before queueing a pass's notifications: the commit checks the cursor only after them, so a leader that
        stalled mid-pass past its lease queued notices of buckets the new leader had judged meanwhile (a RESOLVED
        at the wrong time went out, and the new leader's own was then a duplicate; found by review, 3 daemons,
        the leader frozen 5 s). Narrows the race to this one read; the commit still decides the states."""
        if (now := await self.state.get_cursor()) != cursor:
            raise CursorMovedError(f"cursor is {now}, the pass started at {cursor}")

    def _report_historical(self, keys: list[str], evaluated_until_s: int) -> None:
        """One warning a minute while a catch-up holds back pages of old episodes, with how many."""
        self._historical_held += len(keys)
        if self._historical_log.allow() is None:
            return
        log.warning("alerts_not_paged_historical", alerts=self._historical_held, keys=keys[:10],
                    evaluated_until=iso_utc(evaluated_until_s), max_page_age_s=self.page_max_age_s,
                    why="catching up on data older than alerts.max_page_age_s: tracked (console, /alerts), paged "
                        "only if still firing on recent data")
        self._historical_held = 0

    async def _enqueue(self, notifications: Sequence[Notification]) -> list[Notification]:
        """Queue each notification; returns those the full outbox refused (counted and logged)."""
        dropped: list[Notification] = []
        for n in notifications:
            try:
                fresh = await self.outbox.enqueue(n, self._clock())
            except OutboxFullError as exc:
                metrics.ALERTS_DROPPED.inc()
                log.error("alert_dropped_outbox_full", notification_id=n.id, error=str(exc))
                dropped.append(n)
                continue
            log.warning(
                "alert_fired" if n.status is AlertStatus.FIRING else "alert_resolved",
                notification_id=n.id, group=n.group_key, keys=[a.window_key for a in n.alerts],
                neg_share=[round(a.signal.neg_share, 4) for a in n.alerts], duplicate=not fresh,
            )
        return dropped

    def _prune(self, states: dict[str, AlertState], now_s: int) -> list[str]:
        """Dedup keys to delete: states that no longer matter, then, over the cap, the idle ones whose memory
        (cooldown, flap counting) ends soonest. Not the least recently updated: a key with steady data updates
        its inactive state every bucket, and the cap then evicted alerts still in cooldown instead."""
        deleted = [k for k, s in states.items() if prunable(s, now_s, self.policy)]
        for k in deleted:
            del states[k]
        excess = len(states) - self.settings.max_alert_states
        if excess > 0:
            idle = sorted(
                (s for s in states.values() if s.status in (AlertStatus.INACTIVE, AlertStatus.RESOLVED)),
                key=lambda s: (forget_at_s(s, self.policy) or 0, s.dedup_key),
            )[:excess]
            for s in idle:
                del states[s.dedup_key]
            deleted += [s.dedup_key for s in idle]
            log.warning("alert_states_capped", dropped=len(idle))
        return deleted
