"""Poison records on the real broker: ``monitor run`` (tansu + real Redis) keeps running, counts every
valid record around them, dead-letters each poison record with its reason, and commits past them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.daemon import Daemon
from tests.integration.streams import stream
from tests.integration.test_daemon_e2e import Scenario, _metric
from tests.kafka_broker import create_topics, produce_round_robin

pytestmark = pytest.mark.integration

PARTITIONS = 2


def _wire(**fields: object) -> bytes:
    base: dict[str, object] = {"id": "poison", "source": "news", "text": "ACME poison", "tickers": ["ACME"],
                               "published_at": "2026-03-02T14:10:00Z"}
    return json.dumps({**base, **fields}).encode()


def poison() -> list[tuple[bytes, str]]:
    """(record value, expected dead-letter reason): every shape that once crash-looped the daemon."""
    future = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    return [
        (_wire(id="p-year1", published_at="0001-01-01T00:00:00+05:00"), "bad_timestamp"),
        (_wire(id="p-year9999", published_at="9999-12-31T23:00:00-05:00"), "bad_timestamp"),
        (_wire(id="p-9999z", published_at="9999-12-31T23:59:00Z"), "bad_timestamp"),
        (_wire(id="p-400").replace(b'"2026-03-02T14:10:00Z"', b"1" + b"0" * 400), "bad_timestamp"),
        (_wire(id="@").replace(b'"@"', b"9" * 5_000), "bad_json"),
        (_wire(id="p-surrogate-text", text="ACME \\ud800 plunge").replace(b"\\\\ud800", b"\\ud800"), "bad_encoding"),
        (_wire(id="p-surrogate-\\udfff").replace(b"\\\\udfff", b"\\udfff"), "bad_encoding"),
        (_wire(id="p-surrogate-ticker", tickers=["AC\\ud83dME"]).replace(b"\\\\ud83d", b"\\ud83d"), "bad_encoding"),
        (_wire(id="p-deep", meta={"x": "@"}).replace(b'"@"', b"[" * 200 + b"]" * 200), "bad_field"),
        (_wire(id="p-future", published_at=future), "implausible_time"),
        (_wire(id="p-ancient", published_at="1999-06-01T00:00:00Z"), "implausible_time"),
        (_wire(id="p-huge", text="x" * 70_000), "oversized"),
        (b"\x00\x00\x00", "bad_json"),
    ]


@pytest.fixture
def scenario(tmp_path: Path, kafka_bootstrap: str, redis_url: str) -> Iterator[Scenario]:
    s = Scenario(tmp_path, kafka_bootstrap, redis_url)
    asyncio.run(create_topics(kafka_bootstrap, {s.news: PARTITIONS, s.comments: 1, s.dlq: 1}))
    yield s


async def _dead_letters(scenario: Scenario, expected: int, timeout_s: float, daemon: Daemon) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(scenario.dlq, bootstrap_servers=scenario.kafka, auto_offset_reset="earliest")
    await consumer.start()
    got: list[dict[str, str]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            daemon.assert_alive()
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got += [{k: v.decode() for k, v in r.headers} for r in records]
    finally:
        await consumer.stop()
    return got


async def _committed(scenario: Scenario) -> list[int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=scenario.kafka, group_id=scenario.group, enable_auto_commit=False)
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(scenario.news, p)) for p in range(PARTITIONS)]
    finally:
        await consumer.stop()


async def test_poison_records_are_dead_lettered_with_reasons_and_never_stop_the_partition(scenario: Scenario) -> None:
    valid = stream(buckets=12, surge=range(0), per_bucket=10)
    bad = poison()
    values = [json.dumps(m).encode() for m in valid]
    for i, (raw, _) in enumerate(bad):  # spread over both partitions, between valid records
        values.insert(7 + i * 9, raw)
    values.append(bad[0][0])  # and one as the very last record of its partition
    await produce_round_robin(scenario.kafka, scenario.news, values, PARTITIONS)
    daemon = scenario.daemon("run").start()
    try:
        port = int(daemon.wait_for_event("http_listening", 60)["port"])
        await scenario.wait_volume(len(valid), 90, daemon)
        dead = await _dead_letters(scenario, len(bad) + 1, 60, daemon)
        daemon.assert_alive()
        assert _metric(port, "finsent_messages_total") == len(valid)
    finally:
        assert daemon.terminate() == 0, daemon.tail()
    assert sorted(d["dlq.reason"] for d in dead) == sorted([r for _, r in bad] + [bad[0][1]])
    assert all(d["dlq.detail"] for d in dead)
    assert await scenario.volume() == len(valid)
    per_partition = [len(values[p::PARTITIONS]) for p in range(PARTITIONS)]
    assert await _committed(scenario) == per_partition, "offsets must be committed past every poison record"
    # a restart redelivers nothing: no message read, no record dead-lettered again
    again = scenario.daemon("restart").start()
    try:
        port = int(again.wait_for_event("http_listening", 60)["port"])
        again.wait_for_event("partitions_assigned", 60)
        await asyncio.sleep(3.0)
        assert _metric(port, "finsent_messages_total") == 0
        assert _metric(port, "finsent_dead_letters_total") == 0
    finally:
        assert again.terminate() == 0, again.tail()
    assert await scenario.volume() == len(valid)
