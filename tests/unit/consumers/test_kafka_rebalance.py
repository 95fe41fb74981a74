"""A partition revoked while one of its records is being dead-lettered (the send waits out a broker outage,
and the group rebalances meanwhile): the fetch is dropped for its new owner, not a KeyError that ended the
pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka.structs import TopicPartition

from consumers.kafka import KafkaSource
from monitor.config import load_settings
from monitor.lifecycle import Service


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int = 0
    timestamp_type: int = 0
    headers: tuple[()] = ()


class RebalancingDeadLetter(Service):
    """Its first send is where the rebalance lands: the source forgets the partition meanwhile."""

    def __init__(self) -> None:
        self.source: KafkaSource | None = None
        self.sent = 0

    async def send(self, raw: bytes, reason: str, detail: str, origin: Mapping[str, object], *,
                   key: bytes | None = None, headers: object = ()) -> None:
        self.sent += 1
        if self.source is not None and self.sent == 1:
            self.source._forget(list(self.source._pending))


GOOD = b'{"id": "m1", "text": "ACME shares fall", "published_at": "2026-03-01T10:00:00Z", "source": "news"}'


async def test_a_partition_revoked_during_a_dead_letter_send_drops_the_fetch_for_its_new_owner() -> None:
    settings = load_settings(source={"kind": "kafka"})
    dead = RebalancingDeadLetter()
    source = KafkaSource(settings, dead)
    dead.source = source
    tp = TopicPartition(settings.kafka.news_topic, 0)
    source._adopt([tp])
    records = [Record(tp.topic, 0, 7, b"not json"), Record(tp.topic, 0, 8, GOOD)]
    assert await source._accept(tp, records) == []
    assert dead.sent == 1 and tp not in source._pending and tp not in source._committed


async def test_without_a_rebalance_the_dead_letter_is_sent_and_the_good_record_handed_out() -> None:
    settings = load_settings(source={"kind": "kafka"})
    dead = RebalancingDeadLetter()
    source = KafkaSource(settings, dead)
    tp = TopicPartition(settings.kafka.news_topic, 0)
    source._adopt([tp])
    got = await source._accept(tp, [Record(tp.topic, 0, 7, b"not json"), Record(tp.topic, 0, 8, GOOD)])
    assert [r.position for r in got] == [(tp, 8)] and dead.sent == 1
