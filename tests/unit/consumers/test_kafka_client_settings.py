"""What the Kafka clients are built with and what they say when they cannot start or read."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

import consumers.kafka
import consumers.kafka_range
from consumers.kafka import KafkaSource
from consumers.kafka_client import TOO_LARGE_FIX, KafkaUnavailableError, start_client
from consumers.kafka_range import KafkaRangeReader
from monitor.config import Settings, SourceSettings
from tests.fakes import CollectingDeadLetter


class Built(Exception):
    """Raised by the recording consumer: the test needs its arguments only."""


class RecordingConsumer:
    built: list[dict[str, Any]] = []

    def __init__(self, *topics: str, **kwargs: Any) -> None:
        RecordingConsumer.built.append(kwargs)
        raise Built


async def _no_check(*_: object) -> None:
    return None


async def test_the_group_consumer_and_the_range_reader_skip_records_of_aborted_transactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka reads ``read_uncommitted`` by default: an exactly-once producer's (Flink, Kafka Streams, Debezium)
    aborted records counted as news."""
    RecordingConsumer.built.clear()
    monkeypatch.setattr(consumers.kafka, "AIOKafkaConsumer", RecordingConsumer)
    monkeypatch.setattr(consumers.kafka, "require_topics", _no_check)
    monkeypatch.setattr(consumers.kafka_range, "AIOKafkaConsumer", RecordingConsumer)
    settings = Settings(source=SourceSettings(kind="kafka"))
    with pytest.raises(Built):
        await KafkaSource(settings, CollectingDeadLetter())._start()
    with pytest.raises(Built):
        await KafkaRangeReader(settings)._start()
    assert [kwargs["isolation_level"] for kwargs in RecordingConsumer.built] == ["read_committed", "read_committed"]


def test_the_too_large_fix_names_only_what_a_user_of_this_daemon_can_change() -> None:
    """It told the user to raise ``max_partition_fetch_bytes``, a setting the daemon does not offer."""
    assert "max_partition_fetch_bytes" not in TOO_LARGE_FIX
    assert "max.message.bytes" in TOO_LARGE_FIX and "source.max_message_bytes" in TOO_LARGE_FIX


class RefusedClient:
    def __init__(self, error: Exception) -> None:
        self.error, self.stopped = error, False

    async def start(self) -> None:
        raise self.error

    async def stop(self) -> None:
        self.stopped = True


async def test_a_client_the_broker_refuses_at_start_is_told_about_the_acl_not_a_broker_down() -> None:
    client = RefusedClient(TopicAuthorizationFailedError("news"))
    with pytest.raises(KafkaUnavailableError) as caught:
        await start_client(client, Settings().kafka, "consumer")
    assert client.stopped
    assert "ACLs" in str(caught.value) and "up and reachable" not in str(caught.value)


async def test_a_client_that_cannot_connect_at_start_is_told_to_check_the_broker() -> None:
    client = RefusedClient(KafkaConnectionError("Unable to bootstrap"))
    with pytest.raises(KafkaUnavailableError) as caught:
        await start_client(client, Settings().kafka, "consumer")
    assert str(caught.value).startswith("kafka.bootstrap_servers 127.0.0.1:9092: the consumer cannot connect")
    assert "up and reachable" in str(caught.value)


async def test_a_client_that_cannot_connect_names_the_error_type_once() -> None:
    """Found by review: "(KafkaConnectionError: KafkaConnectionError: Unable to bootstrap ...)" -- aiokafka's
    errors already start with their type."""
    client = RefusedClient(KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9092"))
    with pytest.raises(KafkaUnavailableError) as caught:
        await start_client(client, Settings().kafka, "consumer")
    assert "(KafkaConnectionError: Unable to bootstrap from 127.0.0.1:9092) -- " in str(caught.value)
    assert str(caught.value).count("KafkaConnectionError") == 1
