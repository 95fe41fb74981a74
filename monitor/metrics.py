"""Prometheus metrics, defined once per process (served by monitor/http.py at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("finsent_messages_total", "Messages processed into windows", ["source"])
DUPLICATES = Counter("finsent_duplicate_messages_total", "Redelivered messages ignored by the window store")
DEAD_LETTERS = Counter(
    "finsent_dead_letters_total", "Messages sent to the dead-letter sink (counted by the sink)", ["reason"]
)
REPEATS = Counter(
    "finsent_repeat_messages_total", "Messages folded into an earlier story (retweets, copies, reissues)"
)
LATE = Counter("finsent_late_messages_total", "Messages older than watermark - allowed lateness")
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
NOTIFICATIONS = Counter("finsent_notifications_total", "Alert notifications produced", ["state"])
DELIVERIES = Counter(
    "finsent_alert_deliveries_total", "Outbox delivery attempts by sink and outcome", ["sink", "outcome"]
)
