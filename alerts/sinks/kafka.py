"""kafka://topic -- notification JSON to a Kafka topic, keyed per alert so each alert's records stay in order.

A record's key is its alerts' ``group_key(window_key)`` (``ticker:TSLA`` for ``ticker:TSLA`` and
``topic_ticker:earnings|TSLA``): a function of the alert alone, so an alert's FIRING and RESOLVED land in
one partition, in the order they were made. (The notification's group label is not: TSLA firing with AAPL
is labelled ``topic:earnings``, its RESOLVED alone ``ticker:TSLA``, and keyed by the label the two went to
different partitions.) A notification whose alerts share one key, the usual case, is one record: the
notification itself. One spanning several keys is split into one record per key, each the notification with
that key's alerts, that key as ``group_key`` and an id derived from the notification's and the key (stable
across retries, so receivers still dedupe on the id).

The producer is started lazily on the first send, so a broker that is down at boot delays alerts
(the outbox retries) instead of failing the daemon's start. Connection settings come from [kafka].
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer

from alerts.lifecycle import group_key
from alerts.model import AlertItem, Notification
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


def records(notification: Notification) -> list[tuple[bytes, bytes]]:
    """(key, value) of each record ``notification`` is sent as (module doc)."""
    parts: dict[str, list[AlertItem]] = {}
    for alert in notification.alerts:
        parts.setdefault(group_key(alert.window_key), []).append(alert)
    if len(parts) == 1:
        [(key, _)] = parts.items()
        return [(key.encode(), notification.to_json())]
    out = []
    for key, alerts in sorted(parts.items()):
        part_id = hashlib.sha256(f"{notification.id}\n{key}".encode()).hexdigest()[:24]
        part = replace(notification, id=part_id, group_key=key, alerts=tuple(alerts))
        out.append((key.encode(), part.to_json()))
    return out


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
                acks = [await self._producer.send(self.topic, value=value, key=key)
                        for key, value in records(notification)]
                await asyncio.gather(*acks)
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
