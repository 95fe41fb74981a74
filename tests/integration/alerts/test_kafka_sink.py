"""The kafka:// alert sink against a real broker (tansu): what lands on the topic is the notification.

The unreachable-broker case (SinkError) is in test_sinks.py.

Broker quirk: tansu 0.6.0 (memory storage) answers aiokafka's InitProducerId v0 with UnknownError, so
an idempotent producer (``enable_idempotence=True``, what the sink uses against real Kafka) cannot start
on it. The test turns idempotence off; everything else (topic from the URL, payload, key) is the
production path. Duplicates are harmless anyway: receivers dedupe on the notification id.
"""

from __future__ import annotations

import json

import pytest

from alerts.model import Notification
from alerts.sinks import build_sink
from alerts.sinks.kafka import KafkaSink
from monitor.config import Settings
from tests.integration.alerts.test_sinks import notification
from tests.integration.consumers.test_kafka_source import read_topic
from tests.kafka_broker import create_topics, unique_name

pytestmark = pytest.mark.integration


async def test_kafka_sink_publishes_notification_json_keyed_by_group(kafka_bootstrap: str) -> None:
    topic = unique_name("alerts")
    await create_topics(kafka_bootstrap, {topic: 1})
    settings = Settings(kafka={"bootstrap_servers": kafka_bootstrap}, alerts={"sink_timeout_s": 10.0})
    sink = build_sink(f"kafka://{topic}", settings)
    assert isinstance(sink, KafkaSink)
    sink._options["enable_idempotence"] = False  # tansu cannot init producer ids (module docstring)
    sent = notification()
    async with sink:
        await sink.send(sent)
    [record] = await read_topic(kafka_bootstrap, topic, 1)
    assert json.loads(record.value) == sent.to_dict()
    assert Notification.from_json(record.value) == sent
    assert record.key == sent.group_key.encode()
