"""kafka:// record keys: each alert's records share one key (one partition, in order); the broker path is in
tests/integration/alerts/test_kafka_sink.py."""

from __future__ import annotations

import asyncio
from typing import Any

from alerts.lifecycle import AlertState, LifecyclePolicy, step
from alerts.model import AlertStatus, Notification
from alerts.sinks.kafka import KafkaSink
from monitor.config import KafkaSettings
from tests.unit.alerts.builders import DAY0_S, signal

B = 300
AAPL, TSLA = "topic_ticker:earnings|AAPL", "topic_ticker:earnings|TSLA"


class Producer:
    """Records what an AIOKafkaProducer would be asked to produce."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Notification]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((key, Notification.from_json(value)))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        await self.send(topic, value, key)


async def produced(*notifications: Notification) -> list[tuple[bytes, Notification]]:
    sink = KafkaSink("alerts", "kafka://alerts", KafkaSettings(), timeout_s=1.0)
    producer = Producer()
    sink._producer = producer
    for n in notifications:
        await sink.send(n)
    return producer.sent


def notifications(*buckets: dict[str, bool]) -> list[Notification]:
    states: dict[str, AlertState] = {}
    out: list[Notification] = []
    for i, active in enumerate(buckets, 1):
        now = DAY0_S + i * B
        result = step(states, [signal(k, now, a) for k, a in active.items()], now, LifecyclePolicy())
        states.update(result.states)
        out += result.notifications
    return out


async def test_an_alert_grouped_with_another_ticker_keeps_its_firing_and_resolved_under_one_key() -> None:
    """Found by review: keyed by the group label, TSLA's FIRING (grouped with AAPL) and its RESOLVED (alone) went
    to different partitions, and a consumer could read them in the wrong order."""
    firing, resolved = notifications({AAPL: True, TSLA: True}, {AAPL: True, TSLA: False}, {AAPL: True, TSLA: False})
    assert (firing.status, resolved.status) == (AlertStatus.FIRING, AlertStatus.RESOLVED)
    sent = await produced(firing, resolved)
    tsla = [key for key, n in sent if any(a.window_key == TSLA for a in n.alerts)]
    assert tsla == [b"ticker:TSLA", b"ticker:TSLA"]
    parts = [n for _, n in sent[:-1]]
    assert sorted(a.item_id for n in parts for a in n.alerts) == sorted(a.item_id for a in firing.alerts)
    assert len({n.id for _, n in sent}) == len(sent) == 3, "each record its own id (receivers dedupe on it)"
    assert [n.group_key for n in parts] == ["ticker:AAPL", "ticker:TSLA"]


async def test_a_notification_about_one_ticker_is_one_record_the_notification_itself() -> None:
    [n] = notifications({"ticker:TSLA": True, TSLA: True})
    assert await produced(n) == [(b"ticker:TSLA", n)]
