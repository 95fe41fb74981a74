"""The app tells a Redis window store when a Kafka source finds the group read before this start (data lost while
every instance was down looked like a first start)."""

from __future__ import annotations

from pathlib import Path

from aiokafka import TopicPartition

from consumers.kafka import KafkaSource
from consumers.replay import FileReplaySource
from monitor.config import KafkaSettings, Settings, SourceSettings
from monitor.engine.app import watch_loss_while_down
from monitor.windows.memory import MemoryWindowStore
from monitor.windows.redis import RedisWindowStore
from tests.fakes import CollectingDeadLetter


def test_a_kafka_source_reports_to_a_redis_store_and_no_other_pair_is_wired() -> None:
    settings = Settings(source=SourceSettings(kind="kafka"), kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    redis = RedisWindowStore("redis://127.0.0.1:1/0", key_prefix="t", bucket_s=60, retention_s=3600,
                             top_negative_per_bucket=2)
    kafka = KafkaSource(settings, CollectingDeadLetter())
    watch_loss_while_down(kafka, redis)
    assert kafka.on_group_read_before == redis.report_if_lost_while_down
    memory_backed = KafkaSource(settings, CollectingDeadLetter())
    watch_loss_while_down(memory_backed, MemoryWindowStore(60, retention_s=3600))
    assert memory_backed.on_group_read_before is None, "a memory store always starts empty"
    files = FileReplaySource([Path("x.jsonl")], CollectingDeadLetter(), max_message_bytes=1000, max_text_chars=100)
    watch_loss_while_down(files, redis)
    assert not hasattr(files, "on_group_read_before")


def test_only_the_first_assignment_is_asked_and_cluster_mode_is_not_wired() -> None:
    """Found by review: a new group's first rebalance found the daemon's own committed offsets and paged a loss;
    in cluster mode another instance's commits are no evidence either."""
    from monitor.config import load_settings
    from monitor.engine.app import MonitorApp

    settings = Settings(source=SourceSettings(kind="kafka"), kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    kafka = KafkaSource(settings, CollectingDeadLetter())
    kafka.on_group_read_before = lambda partition, committed: None
    kafka._forget([])  # the first join revokes nothing: still asked
    assert kafka.on_group_read_before is not None
    kafka._forget([TopicPartition("news", 0)])  # a rebalance revoked the first assignment
    assert kafka.on_group_read_before is None
    clustered = load_settings(source={"kind": "kafka"}, kafka={"bootstrap_servers": "127.0.0.1:1"},
                              windows={"store_url": "redis://127.0.0.1:1/0"}, classifier={"kind": "lexicon"},
                              alerts={"cluster_mode": True, "sinks": []}, http={"enabled": False})
    app = MonitorApp(clustered)
    assert getattr(app.source, "on_group_read_before", "absent") is None
