"""Wires the service together from ``Settings`` and runs it with an ordered start/stop.

Start order: dead-letter → window store → single-instance lease (Redis without cluster mode) →
alerting (state, outbox delivery) → micro-batcher → source → HTTP → scheduler. Stop runs in reverse,
so on SIGTERM the source stops reading, in-flight batches drain and commit, the outbox flushes, and
only then do connections close.
Signals are *not* handled here: the CLI entry point installs them and calls ``request_stop``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.engine import AlertEngine
from alerts.factory import build_alerting, uses_redis
from consumers.deadletter import DeadLetterSink, build_dead_letter
from consumers.replay import FileReplaySource
from monitor import metrics
from monitor.cluster.solo import InstanceConflictError, InstanceLease, LeaseWaitCancelled
from monitor.cluster.watermark import ClusterWatermark
from monitor.config import ConfigError, Settings
from monitor.engine.batching import MicroBatcher
from monitor.engine.enrich import build_enricher
from monitor.engine.inference_process import engine_classifier
from monitor.engine.loop_lag import LoopLagProbe
from monitor.engine.pipeline import Pipeline, PipelineStats
from monitor.engine.time_jumps import JumpGuard
from monitor.fatal import ShutdownIncompleteError, root_cause
from monitor.redact import redact_url
from monitor.retry import DEPENDENCIES, describe, is_transient
from monitor.time_bounds import EventTimeBounds
from monitor.types import Classifier, GroupHistorySource, Source
from monitor.web import install as install_web
from monitor.web.server import HttpServer
from monitor.windows.base import LossAwareStore, WindowStore
from monitor.windows.factory import build_window_store

log = structlog.get_logger(__name__)
SKEW_LOG_EVERY_S = 600.0
"""At most one ``event_time_ahead_of_clock`` warning this often while the skew lasts."""

STOP_RECANCEL_S = 1.0
"""Past ``shutdown_timeout_s`` the run is cancelled again this often: each cancel ends the stop step that
is waiting (a flush, a lease release, a close), so every later part still gets its turn to close."""


def watch_loss_while_down(source: Source, store: WindowStore) -> None:
    """A Kafka source tells a Redis store when its group had read before this start: a store that started empty
    then lost its data while every instance was down (it looked like a first start). Other pairs: nothing."""
    if isinstance(store, LossAwareStore) and isinstance(source, GroupHistorySource):
        source.on_group_read_before = store.report_if_lost_while_down


def build_source(settings: Settings, dead_letter: DeadLetterSink) -> Source:
    if settings.source.kind == "kafka":
        from consumers.kafka import KafkaSource

        return KafkaSource(settings, dead_letter)
    return FileReplaySource(
        settings.source.replay_paths,
        dead_letter,
        max_message_bytes=settings.source.max_message_bytes,
        max_text_chars=settings.source.max_text_chars,
        speed=settings.source.replay_speed,
        bounds=EventTimeBounds.from_settings(settings.source),
    )


def build_cluster(settings: Settings) -> ClusterWatermark | None:
    """Cluster coordination when ``alerts.cluster_mode`` is on (live Kafka + shared Redis only)."""
    if not settings.alerts.cluster_mode:
        return None
    if settings.source.kind != "kafka" or not settings.windows.store_url.startswith(("redis://", "rediss://")):
        raise ConfigError(
            "alerts.cluster_mode needs source.kind = 'kafka' and a redis:// windows.store_url "
            "(instances coordinate through the shared Redis) -- set both, or turn cluster_mode off"
        )
    return ClusterWatermark(settings.windows.store_url, settings.windows.key_prefix,
                            lease_s=settings.alerts.leader_lease_s,
                            time_bounds=EventTimeBounds.from_settings(settings.source))


def check_retention(settings: Settings) -> None:
    """``windows.retention_s`` must hold the history detection needs before it may alert, else no alert
    ever fires and nothing says why (60 s, 600 s and 900 s were accepted: 0 notifications, exit 0)."""
    w, a = settings.windows, settings.alerts
    needed_s = w.bucket_s + w.allowed_lateness_s + a.min_baseline_buckets * w.bucket_s
    if a.detection != "bucket":
        needed_s = max(needed_s, w.bucket_s + w.allowed_lateness_s + a.min_history_s)
    if w.retention_s < needed_s:
        raise ConfigError(
            f"windows.retention_s = {w.retention_s} keeps less than the {needed_s} s of history detection needs "
            f"before it may alert (windows.bucket_s, windows.allowed_lateness_s, alerts.min_baseline_buckets"
            f"{', alerts.min_history_s' if a.detection != 'bucket' else ''}) -- raise windows.retention_s "
            "(MONITOR_WINDOWS__RETENTION_S); a week or more is usual")


PAGE_AGE_MARGIN_S = 3600
"""``alerts.max_page_age_s`` must exceed how old a bucket normally is when it is judged by this much."""


def check_page_age(settings: Settings) -> None:
    """A live bucket is judged about ``allowed_lateness_s + bucket_s`` after it ends: a ``max_page_age_s`` below that
    (plus a margin) called every live episode historical and muted every page (found by review: 300 s against 600 s
    of lateness was accepted)."""
    w, a = settings.windows, settings.alerts
    needed_s = w.allowed_lateness_s + w.bucket_s + PAGE_AGE_MARGIN_S
    if a.max_page_age_s and a.max_page_age_s < needed_s:
        raise ConfigError(
            f"alerts.max_page_age_s = {a.max_page_age_s} is shorter than a live bucket's normal age when it is judged "
            f"plus an hour ({needed_s} s: windows.allowed_lateness_s + windows.bucket_s + 3600): every page would be "
            "held back as historical -- raise it (MONITOR_ALERTS__MAX_PAGE_AGE_S; 6 h is the default), or 0 to page "
            "whatever the age")


def build_instance_lease(settings: Settings, on_lost: Callable[[str], None]) -> InstanceLease | None:
    """One daemon per Redis key prefix unless cluster mode coordinates several (monitor/cluster/solo.py)."""
    if settings.alerts.cluster_mode or not uses_redis(settings):
        return None
    a = settings.alerts
    return InstanceLease(settings.windows.store_url, settings.windows.key_prefix, lease_s=a.leader_lease_s,
                         wait_s=a.instance_wait_s, on_lost=on_lost)


class MonitorApp:
    """One daemon instance. Components may be injected (tests, backtests, replays); otherwise built from
    settings. An injected ``dead_letter`` is started and stopped by the app like one it built."""

    def __init__(
        self,
        settings: Settings,
        *,
        classifier: Classifier | None = None,
        source: Source | None = None,
        store: WindowStore | None = None,
        alerting: AlertEngine | None = None,
        dead_letter: DeadLetterSink | None = None,
        history: bool = False,
    ) -> None:
        """``history``: a replay or backtest (``monitor replay``/``monitor backtest``), where the data's clock is
        not the wall clock: with ``source.max_future_s = 0`` event time then follows the data. ``monitor run``
        (False) always caps event time at the wall clock, whatever that setting."""
        self.settings = settings
        # a replay passes its own (a file next to its report): one built from settings would be the production
        # dead-letter topic whenever source.kind is kafka, as it is for a Kafka range replay
        self.dead_letter = dead_letter if dead_letter is not None else build_dead_letter(settings)
        self.store = store or build_window_store(settings.windows)
        self.classifier = classifier or engine_classifier(
            settings.classifier, log_level=settings.log.level, log_format=settings.log.format)
        metrics.set_build_info(self.classifier.name, settings.classifier.runtime)
        self.alerting = alerting or build_alerting(settings, self.store)
        if not history and settings.source.kind == "kafka":  # a file replay is history by intent: it pages
            check_page_age(settings)
            self.alerting.page_max_age_s = settings.alerts.max_page_age_s
        self.source = source or build_source(settings, self.dead_letter)
        if not settings.alerts.cluster_mode:  # instances commit for each other: another's offset is no evidence
            watch_loss_while_down(self.source, self.store)
        check_retention(settings)
        if ignored := settings.alerts.ignored_by_detection():
            log.warning("settings_ignored_by_detection", settings=[f"alerts.{name}" for name in ignored],
                        detection=settings.alerts.detection,
                        fix="remove them, or set alerts.detection to the detection that reads them (or 'both')")
        self.cluster = build_cluster(settings)
        self._lease_lost_to: str | None = None
        self.on_stop_request: Callable[[], None] | None = None
        """Called at each stop request, whatever asked (a signal, a lost lease): the CLI arms its hard-exit
        backstop here (a lost lease used to stop without it; found by review)."""
        self.instance_lease = build_instance_lease(settings, self._lease_lost)
        if self.cluster is not None:
            # only the leader delivers from the shared outbox, so a notification is sent once
            self.alerting.delivery.active = lambda: self.pipeline.is_leader
        b = settings.batching
        self.batcher = MicroBatcher(
            self.classifier, max_batch_size=b.max_batch_size, max_wait_ms=b.max_wait_ms,
            max_queue_messages=b.max_queue_messages, gil_switch_interval_ms=b.gil_switch_interval_ms,
            stall_after_s=settings.classifier.batch_timeout_s,
        )
        self.pipeline = Pipeline(
            self.source, self.batcher, self.store, self.dead_letter, self.alerting,
            allowed_lateness_s=settings.windows.allowed_lateness_s,
            max_batch_size=b.max_batch_size, max_wait_ms=b.max_wait_ms,
            max_in_flight_batches=b.max_in_flight_batches,
            max_buckets_per_evaluation=settings.alerts.max_catchup_buckets,
            cluster=self.cluster,
            enricher=build_enricher(settings),
            # retries give up halfway, leaving the other half for the parts' own stops (outbox, lease, close)
            stop_grace_s=settings.shutdown_timeout_s / 2,
            # history dated ahead (max_future_s = 0) is evaluated to its end; a live stream never outruns the clock
            cap_to_wall_clock=not (history and settings.source.max_future_s == 0),
            jumps=JumpGuard(settings.source.max_event_time_jump_s, settings.source.event_time_jump_confirmations),
        )
        self.loop_lag = LoopLagProbe()
        self.http: HttpServer | None = None
        if settings.http.enabled:
            self.http = HttpServer(settings.http.host, settings.http.port, self.store, self.ready,
                                   event_time_s=lambda: self.pipeline.watermark.value_s,
                                   not_ready_reasons=self.not_ready_reasons, public_url=settings.http.public_url,
                                   allowed_hosts=settings.http.allowed_hosts)
            install_web(self.http, self.alerting, settings, watermark=lambda: self.pipeline.watermark.value_s,
                        recent=self.pipeline.recent_notifications)
        self._ready = False
        self._skew_logged_at = float("-inf")
        self._started_at = time.monotonic()
        self._run_task: asyncio.Task[PipelineStats] | None = None
        self._stop_requested_at: float | None = None
        self._stop_timer: asyncio.TimerHandle | None = None
        self._cut_short = False
        self._starting = False
        self._stopped_starting = False
        """A stop came while the parts were still starting (waiting for a Redis that refuses writes, a lease)."""
        metrics.READY.set_function(lambda: float(self.ready()))

    def ready(self) -> bool:
        """Started, still running, and no dependency failing (monitor/retry.py tracks them)."""
        return self._ready and not self.pipeline.finished.is_set() and not DEPENDENCIES.reasons()

    def not_ready_reasons(self) -> list[str]:
        reasons = DEPENDENCIES.reasons()
        if not self._ready:
            reasons.insert(0, "starting or stopping")
        elif self.pipeline.finished.is_set():
            reasons.insert(0, "pipeline finished")
        return reasons

    def request_stop(self) -> None:
        """Drain, commit, flush and close; bounded by ``shutdown_timeout_s`` even when a dependency is down."""
        log.info("shutdown_requested", timeout_s=self.settings.shutdown_timeout_s)
        if self.on_stop_request is not None:
            self.on_stop_request()
        self.pipeline.request_stop()
        if self.instance_lease is not None:
            self.instance_lease.stop_waiting()
        if self._starting and self._run_task is not None:  # nothing read yet: end the wait now, not after the deadline
            self._stopped_starting = True
            self._run_task.cancel()
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
            self._arm_stop_deadline()

    def _arm_stop_deadline(self) -> None:
        if self._run_task is not None and self._stop_requested_at is not None and self._stop_timer is None:
            left_s = self._stop_requested_at + self.settings.shutdown_timeout_s - time.monotonic()
            self._stop_timer = asyncio.get_running_loop().call_later(max(0.0, left_s), self._cut_stop_short)

    def _cut_stop_short(self) -> None:
        """The stop is overdue: cancel what it waits on (again every STOP_RECANCEL_S until the run ends)."""
        task = self._run_task
        if task is None or task.done():
            return
        if not self._cut_short:
            self._cut_short = True
            log.error("shutdown_overdue", timeout_s=self.settings.shutdown_timeout_s, waiting_on=self._stop_waits())
            abort = getattr(self.classifier, "abort", None)  # a worker process stuck in a forward pass
            if callable(abort):
                abort()
        task.cancel()
        self._stop_timer = asyncio.get_running_loop().call_later(STOP_RECANCEL_S, self._cut_stop_short)

    def _incomplete_stop(self, cause: BaseException | None) -> ShutdownIncompleteError:
        assert self._stop_requested_at is not None
        took_s = time.monotonic() - self._stop_requested_at
        waiting = self._stop_waits() or [describe(cause) if cause else "a stop step that did not return"]
        log.error("shutdown_incomplete", took_s=round(took_s, 1), waiting_on=waiting)
        return ShutdownIncompleteError(
            f"the graceful stop gave up after {took_s:.0f} s (shutdown_timeout_s = "
            f"{self.settings.shutdown_timeout_s:g}): {'; '.join(waiting)} -- messages not yet committed are read "
            "again at the next start (each is counted once), so nothing is lost; fix that dependency, or raise "
            "shutdown_timeout_s (MONITOR_SHUTDOWN_TIMEOUT_S) if stops are cut short while everything is healthy")

    def _stop_waits(self) -> list[str]:
        """What an overdue stop waits on: failing dependencies, and a forward pass still running."""
        running = self.batcher.running_pass()
        return [*DEPENDENCIES.reasons(), *([running] if running else [])]

    def _lease_lost(self, holder: str) -> None:
        """Another daemon took this prefix: stop (drain, commit) and exit non-zero, rather than run beside it."""
        self._lease_lost_to = holder
        self.request_stop()

    def _scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone="UTC")
        sweep_s = self.settings.alerts.sweep_interval_s
        if self.settings.source.kind == "kafka":
            idle_sweep_s = min(sweep_s, self.settings.windows.idle_timeout_s / 2)
            scheduler.add_job(self._idle_sweep, "interval", seconds=idle_sweep_s, id="idle-sweep",
                              max_instances=1, coalesce=True)
        if self.cluster is not None:
            tick_s = min(sweep_s, self.settings.alerts.leader_lease_s / 3)
            scheduler.add_job(self._cluster_tick, "interval", seconds=tick_s, id="cluster-tick",
                              max_instances=1, coalesce=True)
            # its own job: the cluster tick waits in its retries while Redis is away, which is when this must run
            scheduler.add_job(self._watch_membership, "interval", seconds=tick_s, id="membership-watch",
                              max_instances=1, coalesce=True)
        scheduler.add_job(self._progress, "interval", seconds=max(sweep_s, 10.0), id="progress",
                          max_instances=1, coalesce=True)
        return scheduler

    async def _stopping_quietly(self, work: Awaitable[None]) -> None:
        """Run a scheduled job; the scheduler cancelling it at shutdown is the stop, not an error (apscheduler logged
        it at ERROR with a traceback, which tripped log alerts at every rolling deploy; found by review)."""
        try:
            await work
        except asyncio.CancelledError:
            if self._stop_requested_at is None:
                raise

    async def _idle_sweep(self) -> None:
        await self._stopping_quietly(self.pipeline.idle_tick(time.monotonic(), self.settings.windows.idle_timeout_s))

    async def _cluster_tick(self) -> None:
        await self._stopping_quietly(self.pipeline.cluster_tick())

    async def _watch_membership(self) -> None:
        await self._stopping_quietly(self.pipeline.watch_membership(time.monotonic()))

    async def _progress(self) -> None:
        s = self.pipeline.stats
        log.info("pipeline_progress", read=s.read, applied=s.applied, duplicates=s.duplicates, late=s.late,
                 notifications=s.notifications, watermark_s=self.pipeline.watermark.value_s)
        self._check_clock_skew()

    def _check_clock_skew(self) -> None:
        """Most messages dated ahead of this host's clock: the host's clock is behind (or the publishers'
        ahead), and event time, so every bucket close and every alert, lags by the difference."""
        watermark = self.pipeline.watermark
        skew = watermark.take_clock_skew()
        now = time.monotonic()
        if not skew.capped or skew.capped * 2 < skew.observed or now - self._skew_logged_at < SKEW_LOG_EVERY_S:
            return
        self._skew_logged_at = now
        log.warning("event_time_ahead_of_clock", messages=skew.observed, ahead=skew.capped,
                    most_ahead_s=skew.max_excess_s + watermark.max_ahead_s, host_clock=time.time(),
                    why="event time may run at most "
                        f"{watermark.max_ahead_s} s past this host's clock: buckets close and alerts fire late "
                        "by the difference",
                    fix="check the host's clock (timedatectl, chronyc tracking) and the publishers' published_at")

    async def run(self) -> PipelineStats:
        """Start everything, process until the source ends or a stop is requested, stop everything."""
        DEPENDENCIES.clear()  # readiness is about this run's dependencies
        self._run_task = asyncio.current_task()
        self._arm_stop_deadline()
        try:
            return await self._run()
        except LeaseWaitCancelled as exc:  # SIGTERM while another daemon held the prefix: nothing ran
            log.info("monitor_stopped", uptime_s=round(time.monotonic() - self._started_at, 1), before_start=str(exc))
            return self.pipeline.stats
        except asyncio.CancelledError:
            if self._stopped_starting:  # SIGTERM while a part waited to start (e.g. for a full Redis): nothing ran
                task = asyncio.current_task()
                while task is not None and task.uncancel() > 0:
                    pass
                log.info("monitor_stopped", uptime_s=round(time.monotonic() - self._started_at, 1),
                         before_start="stop requested while starting", waiting_on=DEPENDENCIES.reasons())
                return self.pipeline.stats
            if not self._cut_short:
                raise
            self._disarm_stop_deadline()
            task = asyncio.current_task()
            while task is not None and task.uncancel() > 0:  # the cancels were ours: end the run normally
                pass
            raise self._incomplete_stop(None) from None
        except Exception as exc:
            cause = root_cause(exc)
            if self._stop_requested_at is None or not is_transient(cause):
                raise
            raise self._incomplete_stop(cause) from exc  # the pipeline's retries gave up on the stop
        finally:
            self._disarm_stop_deadline()
            self._run_task = None

    def _disarm_stop_deadline(self) -> None:
        if self._stop_timer is not None:
            self._stop_timer.cancel()
            self._stop_timer = None

    async def _run(self) -> PipelineStats:
        async with AsyncExitStack() as stack:
            self._starting = True
            try:
                for part in (self.loop_lag, self.dead_letter, self.store, self.instance_lease, self.cluster,
                             self.alerting, self.batcher, self.source, self.http):
                    if part is not None:
                        await stack.enter_async_context(part)
            finally:
                self._starting = False
            scheduler = self._scheduler()
            scheduler.start()
            stack.callback(scheduler.shutdown, wait=False)
            self._ready = True
            log.info("monitor_started", source=self.settings.source.kind, classifier=self.classifier.name,
                     store=redact_url(self.settings.windows.store_url))
            try:
                stats = await self.pipeline.run()
            finally:
                self._ready = False
        stats.dead_letters = int(getattr(self.dead_letter, "count", 0))
        if isinstance(self.source, FileReplaySource):
            stats.inputs_cut_off = list(self.source.cut_off)
        stats.deliveries_delivered = self.alerting.delivery.outcomes["delivered"]
        stats.deliveries_abandoned = self.alerting.delivery.outcomes["abandoned"]
        stats.undelivered = dict(self.alerting.undelivered_at_stop)
        stats.undelivered_kept = uses_redis(self.settings)
        log.info("monitor_stopped", uptime_s=round(time.monotonic() - self._started_at, 1),
                 worst_event_loop_lag_s=round(self.loop_lag.worst_s, 3), dead_letters=stats.dead_letters,
                 deliveries_delivered=stats.deliveries_delivered, deliveries_abandoned=stats.deliveries_abandoned,
                 undelivered=stats.undelivered)
        if self._lease_lost_to is not None:
            raise InstanceConflictError(
                f"stopped: another finsent daemon ({self._lease_lost_to}) took over Redis prefix "
                f"{self.settings.windows.key_prefix!r} while this one could not renew its lease -- run one "
                "instance per prefix, or set alerts.cluster_mode = true on every instance")
        return stats
