"""Prometheus metrics, defined once per process (served by monitor/web/server.py at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from monitor.types import SourceKind

MESSAGES = Counter("finsent_messages_total", "Messages processed into windows", ["source"])
DUPLICATES = Counter("finsent_duplicate_messages_total", "Redelivered messages ignored by the window store")
DEAD_LETTERS = Counter(
    "finsent_dead_letters_total", "Messages sent to the dead-letter sink (counted by the sink)", ["reason"]
)
DEAD_LETTER_REASONS = (
    "bad_json", "bad_encoding", "missing_field", "bad_field", "empty_text", "bad_timestamp", "implausible_time",
    "id_conflict", "oversized", "bad_csv", "bad_gzip", "parse_error", "record_too_large", "corrupt_record", "late",
    "classifier_error",
)
"""Every ``reason`` a dead letter can carry (README "Reasons"; tests/unit/monitor/test_metrics.py finds each one
the code raises here). Their series, and each source's ``finsent_messages_total``, are created at 0 at import:
``rate()`` sees nothing of a series born at its first increment, so a first burst of 200 bad messages never
fired FinsentDeadLetters, and a messages series born at N made FinsentLateMessages see a 100% late share."""
for _reason in DEAD_LETTER_REASONS:
    DEAD_LETTERS.labels(_reason)
for _source in SourceKind:
    MESSAGES.labels(_source.value)
REPEATS = Counter(
    "finsent_repeat_messages_total", "Messages folded into an earlier story (retweets, copies, reissues)"
)
NOVELTY_EVICTED_IN_WINDOW = Counter(
    "finsent_novelty_evicted_in_window_total",
    "Stories the novelty index forgot (windows.novelty_max_entries full) while still inside "
    "windows.novelty_window_s: their later copies count as new stories; raise novelty_max_entries",
)
LATE = Counter("finsent_late_messages_total", "Messages older than watermark - allowed lateness, per source (a feed "
               "that arrives later than windows.allowed_lateness_s shows as one source's share)", ["source"])
for _source in SourceKind:  # born at 0: a rate() sees the first late message
    LATE.labels(_source.value)
EVENT_TIME_JUMPS = Counter(
    "finsent_event_time_jumps_total",
    "Holds of messages dated more than source.max_event_time_jump_s ahead of their partition: held when one "
    "starts, then confirmed (event time moved), refuted (dead-lettered as implausible_time), released (the idle "
    "sweep found its partition's event time within the bound) or unconfirmed (the stream ended first: "
    "dead-lettered); a hold on a revoked partition ends without an outcome (its next owner reads it again)",
    ["outcome"],
)
# every series at 0 from the start (rate() sees the first)
for _outcome in ("held", "confirmed", "refuted", "released", "unconfirmed"):
    EVENT_TIME_JUMPS.labels(_outcome)
INFERENCE_WORKER_DEATHS = Counter(
    "finsent_inference_worker_deaths_total", "Inference worker processes that died mid-call (each is respawned)"
)
INFERENCE_WORKER_TIMEOUTS = Counter(
    "finsent_inference_worker_timeouts_total",
    "Inference worker processes killed after a batch outran classifier.batch_timeout_s (each is respawned)",
)
INFERENCE_SECONDS = Histogram(
    "finsent_inference_seconds", "Classifier call latency per micro-batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "finsent_batch_size", "Texts per classifier call", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
END_TO_END_SECONDS = Histogram(
    "finsent_batch_processing_seconds", "Source batch to durable windows + commit",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENT_LOOP_LAG = Histogram(
    "finsent_event_loop_lag_seconds",
    "How late a probe that wakes every 0.25 s woke: the time the event loop was blocked by one callback",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WATERMARK = Gauge("finsent_watermark_seconds", "Event-time watermark (epoch seconds)")
IN_FLIGHT = Gauge("finsent_in_flight_batches", "Batches classified but not yet committed")
ALERT_EVALUATIONS = Counter("finsent_alert_evaluations_total", "Detection sweeps run")
EVALUATED_UNTIL = Gauge(
    "finsent_detection_evaluated_until_seconds", "End of the newest bucket detection has judged (epoch seconds)"
)
CLUSTER_LEADER = Gauge("finsent_cluster_leader", "1 while this instance leads detection (cluster mode)")
CLUSTER_UNMARKED_PARTITIONS = Gauge(
    "finsent_cluster_unmarked_partitions",
    "Leader: partitions with no mark, holding detection back (changing hands, or not yet fetched)",
)
CLUSTER_IDLE_BACKLOG = Gauge(
    "finsent_cluster_idle_backlog", "Leader: 1 while records wait past an idle partition's mark, holding detection"
)
CLOCK_OFFSET = Gauge(
    "finsent_clock_offset_seconds",
    "Cluster mode: the Redis server's clock (TIME) minus this host's, at each heartbeat; positive = this host's "
    "clock is behind",
)
NOTIFICATIONS = Counter("finsent_notifications_total", "Alert notifications produced", ["state"])
for _state in ("firing", "resolved"):  # at 0 from start-up, so increase() sees each state's first one
    NOTIFICATIONS.labels(_state)
DELIVERIES = Counter(
    "finsent_alert_deliveries_total", "Outbox delivery attempts by sink and outcome", ["sink", "outcome"]
)
DELIVERY_OUTCOMES = ("delivered", "failed", "abandoned")
"""The ``outcome`` values of ``finsent_alert_deliveries_total``; each sink's series are created at 0 when its
delivery loop is built (alerts/delivery.py), because ``increase()`` sees nothing of a series born at 1."""
ALERT_REFRESH_FAILURES = Counter(
    "finsent_alert_refresh_failures_total",
    "Failed re-posts of the firing alerts to an Alertmanager sink (each retried 10 s later): while they fail, "
    "Alertmanager lets those alerts end (alerts.alertmanager_ends_after_s) and sends RESOLVED", ["sink"],
)
DEPENDENCY_UP = Gauge(
    "finsent_dependency_up", "0 while calls to this dependency fail and are being retried, else 1", ["component"]
)
RETRIES = Counter("finsent_dependency_retries_total", "Retried dependency calls (transient errors)", ["component"])
ALERT_DEAD_LETTERS = Counter(
    "finsent_alert_dead_letters_total", "Notifications moved to the dead-letter outbox past the retry bound",
    ["sink"],
)
HTTP_FAILURES = Counter(
    "finsent_http_failures_total",
    "HTTP requests not served: kind=dependency (503, a dependency unreachable), internal (500, a bug), "
    "bad_request (a malformed HTTP request)", ["kind"],
)
WINDOW_KEYS = Gauge(
    "finsent_window_keys",
    "Window keys (all, topic, ticker, topic+ticker) the window store holds buckets for: its size, which grows "
    "with the watchlist and the tickers seen (Redis: refreshed with the store's marker check, at most every 30 s)",
)
WINDOW_STORE_RESETS = Counter(
    "finsent_window_store_resets_total",
    "Times the window store's Redis was found to have lost its data under the running daemon (windows, "
    "baselines and alert state gone: detection blind until the baselines rebuild)",
)
ALERTS_DROPPED = Counter(
    "finsent_alert_notifications_dropped_total",
    "Alert notifications never queued because the outbox was full (its sinks down for long): pages lost",
)
READY = Gauge("finsent_ready", "1 while /readyz answers ready (started, processing, every dependency reachable)")
OUTBOX_PENDING = Gauge("finsent_outbox_pending", "Undelivered outbox entries per sink (due or waiting to retry)",
                       ["sink"])
OUTBOX_OLDEST_AGE = Gauge(
    "finsent_outbox_oldest_age_seconds", "Wall time since the oldest undelivered entry of a sink was enqueued",
    ["sink"],
)
CONSUMER_LAG = Gauge(
    "finsent_consumer_lag_records",
    "Records on the broker not yet fetched, per owned partition (last fetch; probed while paused or held)",
    ["topic", "partition"],
)
KAFKA_RECORDS_EXPIRED = Counter(
    "finsent_kafka_records_expired_total",
    "Records the broker deleted (retention) before this daemon read them, or skipped by the offset reset "
    "that followed: their messages are in no window", ["topic"],
)
PARTITIONS_ELSEWHERE = Gauge(
    "finsent_consumer_partitions_elsewhere",
    "Partitions of the subscribed topics the consumer group gave to another member while cluster mode is off "
    "(this daemon then sees only part of the stream); 0 in cluster mode",
)
ALERTS_FIRING = Gauge("finsent_alerts_firing", "Alerts in the firing state after the latest evaluation")
BUILD_INFO = Gauge(
    "finsent_build_info", "Always 1; the labels say what runs", ["version", "model", "runtime", "python"]
)
TOPIC_NEGATIVE_SHARE = Gauge(
    "finsent_topic_negative_share",
    "Negative share of the newest evaluated bucket per topic (at most MAX_TOPIC_LABELS topics)", ["topic"],
)
MAX_TOPIC_LABELS = 64
"""Cap on distinct ``topic`` label values: a custom model with a huge label set cannot blow up
Prometheus (topics past the cap are not exported; the taxonomy has 20)."""

_topics_exported: set[str] = set()


def observe_topic_negative_shares(shares: dict[str, float | None]) -> None:
    """Set (or, for ``None`` = no messages in the bucket, remove) each topic's negative share.

    Removing a quiet topic's series keeps a stale value from looking current."""
    for topic, share in sorted(shares.items()):
        if share is None:
            if topic in _topics_exported:
                TOPIC_NEGATIVE_SHARE.remove(topic)
                _topics_exported.discard(topic)
            continue
        if topic in _topics_exported or len(_topics_exported) < MAX_TOPIC_LABELS:
            _topics_exported.add(topic)
            TOPIC_NEGATIVE_SHARE.labels(topic).set(share)


def exported_topics() -> frozenset[str]:
    return frozenset(_topics_exported)


def prometheus_client_value(name: str, **labels: str) -> float | None:
    """The current value of one series in this process's registry (tests, the CLI summary)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels)
    return None if value is None else float(value)


def set_build_info(model: str, runtime: str) -> None:
    """One ``finsent_build_info`` series per process: what runs (replaces an earlier app's)."""
    import platform

    from monitor import __version__

    BUILD_INFO.clear()
    BUILD_INFO.labels(__version__, model, runtime, platform.python_version()).set(1)
