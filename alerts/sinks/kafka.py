"""kafka://topic -- notification JSON to a Kafka topic, keyed by group key (per-group ordering).

The producer is started lazily on the first send, so a broker that is down at boot delays alerts
(the outbox retries) instead of failing the daemon's start. Connection settings come from [kafka].
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer

from alerts.model import Notification
from alerts.sinks.base import SinkError
from consumers.kafka_client import client_kwargs
from monitor.config import KafkaSettings
from monitor.lifecycle import Service


def producer_options(kafka: KafkaSettings, timeout_s: float) -> dict[str, Any]:
    """The shared connection/security settings (SASL, SSL) plus durable-producer options."""
    return {
        **client_kwargs(kafka, "alerts"),
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": int(timeout_s * 1000),
    }


class KafkaSink(Service):
    def __init__(self, topic: str, name: str, kafka: KafkaSettings, timeout_s: float) -> None:
        self.topic = topic
        self.name = name
        self._options = producer_options(kafka, timeout_s)
        self._timeout_s = timeout_s
        self._producer: Any = None

    @classmethod
    def from_url(cls, url: str, name: str, kafka: KafkaSettings, timeout_s: float) -> KafkaSink:
        topic = urlsplit(url).netloc or urlsplit(url).path.strip("/")
        if not topic:
            raise ValueError(f"kafka sink URL {url!r} needs a topic: kafka://finsent.alerts")
        return cls(topic, name, kafka, timeout_s)

    async def _stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def send(self, notification: Notification) -> None:
        try:
            if self._producer is None:
                producer = AIOKafkaProducer(**self._options)
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            async with asyncio.timeout(self._timeout_s):
                await self._producer.send_and_wait(
                    self.topic, value=notification.to_json(), key=notification.group_key.encode()
                )
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
