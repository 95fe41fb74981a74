"""Compressed record batches against a real broker (tansu): producers compress with lz4, zstd, snappy or gzip
(Kafka's ``compression.type``), and aiokafka 0.14 decompresses all but gzip with ``cramjam`` only, the extras
of ``aiokafka[lz4,snappy,zstd]``. Before, the project depended on plain ``aiokafka``: the first lz4/zstd/snappy
batch ended the daemon, and every restart met it again (found by review)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from consumers.deadletter import KafkaDeadLetter
from consumers.kafka import KafkaSource
from consumers.kafka_range import KafkaRangeReader
from tests.integration.consumers.test_kafka_source import (
    T0,
    committed_offsets,
    consuming,
    ids,
    iso,
    make_settings,
    payload,
    produce,
    wait_until,
)

CODECS = ("lz4", "zstd", "snappy", "gzip")
PER_BATCH = 3


async def produce_compressed(bootstrap: str, topic: str, codec: str, partition: int) -> None:
    """A plain record, then one compressed batch of ``PER_BATCH`` records (sent without waiting, so they
    share a batch), then a plain record."""
    await produce(bootstrap, topic, [payload(f"{codec}-before", iso(T0))], partition=partition)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=100)
    await producer.start()
    try:
        sent = [await producer.send(topic, payload(f"{codec}-{i}", iso(T0)), partition=partition)
                for i in range(PER_BATCH)]
        await producer.flush()
        for future in sent:
            await future
    finally:
        await producer.stop()
    await produce(bootstrap, topic, [payload(f"{codec}-after", iso(T0))], partition=partition)


def expected_ids() -> list[str]:
    suffixes = ("before", "after", *map(str, range(PER_BATCH)))
    return sorted(f"{codec}-{suffix}" for codec in CODECS for suffix in suffixes)


async def test_lz4_zstd_snappy_and_gzip_batches_are_read_and_committed_by_the_kafka_source(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap, news_partitions=len(CODECS))
    k = settings.kafka
    for partition, codec in enumerate(CODECS):
        await produce_compressed(kafka_bootstrap, k.news_topic, codec, partition)
    dlq = KafkaDeadLetter(k)
    async with dlq, KafkaSource(settings, dlq) as source, consuming(source) as got:
        await wait_until(lambda: len(got) == len(expected_ids()), "every record of every codec")
        await source.commit(got)
        assert source.dead_count == 0
    assert sorted(ids(got)) == expected_ids()
    per_partition = PER_BATCH + 2
    assert await committed_offsets(settings, k.news_topic, len(CODECS)) == [per_partition] * len(CODECS)


async def test_a_range_scan_reads_lz4_zstd_snappy_and_gzip_batches(kafka_bootstrap: str) -> None:
    settings = await make_settings(kafka_bootstrap, news_partitions=len(CODECS))
    for partition, codec in enumerate(CODECS):
        await produce_compressed(kafka_bootstrap, settings.kafka.news_topic, codec, partition)
    async with KafkaRangeReader(settings, [settings.kafka.news_topic]) as reader:
        got = [r async for batch in reader.batches(100, 200) for r in batch]
    assert sorted(ids(got)) == expected_ids()
    assert reader.dead_count == 0
