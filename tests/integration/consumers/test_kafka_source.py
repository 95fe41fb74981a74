"""KafkaSource, KafkaDeadLetter and KafkaRangeReader against a real broker (tansu, see tests/kafka_broker.py).

Every test uses its own topics and consumer group on the session's broker. Sessions are 1 s so that
group joins are fast on tansu (see the quirks in tests/kafka_broker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from structlog.testing import capture_logs

from consumers.deadletter import KafkaDeadLetter
from consumers.kafka import KafkaSource
from consumers.kafka_range import KafkaRangeReader
from monitor import metrics
from monitor.config import KafkaSettings, Settings, SourceSettings
from monitor.types import SourceKind, SourceRecord
from tests.kafka_broker import create_topics, unique_name

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def payload(msg_id: str, published_at: object, **extra: Any) -> bytes:
    body = {"id": msg_id, "text": f"text of {msg_id}", "published_at": published_at, **extra}
    return json.dumps(body).encode()


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def make_settings(bootstrap: str, news_partitions: int = 1, **kafka: Any) -> Settings:
    """Settings with fresh news/comments/DLQ topics and a fresh group."""
    news, comments, dlq = unique_name("news"), unique_name("comments"), unique_name("dlq")
    await create_topics(bootstrap, {news: news_partitions, comments: 1, dlq: 1})
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap, "group_id": unique_name("group"), "news_topic": news,
        "comments_topic": comments, "dead_letter_topic": dlq, "session_timeout_ms": 1000, **kafka,
    }
    return Settings(source=SourceSettings(kind="kafka"), kafka=KafkaSettings(**options))


async def produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            # A broker timestamp far from the payload time: event time must come from the payload.
            await producer.send_and_wait(topic, value, partition=partition, timestamp_ms=1_000_000_000_000)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def consuming(source: KafkaSource) -> AsyncIterator[list[SourceRecord]]:
    """Run ``source.batches`` in a background task (as the pipeline does), collecting records."""
    got: list[SourceRecord] = []

    async def run() -> None:
        async for batch in source.batches(100, 100):
            got.extend(batch)

    task = asyncio.create_task(run())
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for: {what}")
        await asyncio.sleep(0.05)


async def committed_offsets(settings: Settings, topic: str, partitions: int) -> list[int | None]:
    k = settings.kafka
    reader = AIOKafkaConsumer(bootstrap_servers=k.bootstrap_servers, group_id=k.group_id)
    await reader.start()
    try:
        return [await reader.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await reader.stop()


async def read_topic(bootstrap: str, topic: str, expected: int) -> list[Any]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        reader.assign([tp])
        reader.seek(tp, 0)
        records: list[Any] = []
        deadline = time.monotonic() + 10
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await reader.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await reader.stop()


def ids(records: list[SourceRecord]) -> list[str]:
    return [r.message.id for r in records]


async def test_records_arrive_with_payload_event_time_and_source_kind_from_their_topic(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap)
    k = settings.kafka
    await produce(kafka_bootstrap, k.news_topic, [payload("n1", iso(T0), tickers=["acme"])])
    await produce(kafka_bootstrap, k.comments_topic, [payload("c1", int(T0.timestamp() * 1000) + 1500)])
    dlq = KafkaDeadLetter(k)
    async with dlq, KafkaSource(settings, dlq) as source, consuming(source) as got:
        await wait_until(lambda: len(got) == 2, "two records")
    by_id = {r.message.id: r for r in got}
    assert by_id["n1"].message.source is SourceKind.NEWS
    assert by_id["n1"].message.event_time == T0
    assert by_id["n1"].message.tickers == ("ACME",)
    assert by_id["n1"].position == (TopicPartition(k.news_topic, 0), 0)
    assert by_id["c1"].message.source is SourceKind.COMMENT
    assert by_id["c1"].message.event_time == T0 + timedelta(seconds=1.5)


async def test_malformed_records_go_to_the_dead_letter_topic_with_reason_and_consumption_continues(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap)
    k = settings.kafka
    bad_json, no_text = b"{not json", json.dumps({"id": "x", "published_at": iso(T0)}).encode()
    await produce(kafka_bootstrap, k.news_topic,
                  [payload("a", iso(T0)), bad_json, payload("b", iso(T0)), no_text, payload("c", iso(T0))])
    dlq = KafkaDeadLetter(k)
    async with dlq, KafkaSource(settings, dlq) as source, consuming(source) as got:
        await wait_until(lambda: len(got) == 3, "three valid records")
        assert source.dead_count == 2
    assert ids(got) == ["a", "b", "c"]
    dead = await read_topic(kafka_bootstrap, k.dead_letter_topic, 2)
    assert [r.value for r in dead] == [bad_json, no_text]
    headers = [dict(r.headers) for r in dead]
    assert [h["dlq.reason"] for h in headers] == [b"bad_json", b"missing_field"]
    origins = [json.loads(h["dlq.origin"]) for h in headers]
    assert [(o["topic"], o["partition"], o["offset"]) for o in origins] == [(k.news_topic, 0, 1),
                                                                           (k.news_topic, 0, 3)]


async def test_a_dead_letter_keeps_the_original_key_and_headers_so_a_re_fed_record_lands_on_its_partition(
    kafka_bootstrap: str,
) -> None:
    """Found by review: the dead-letter record had no key and only the dlq.* headers."""
    settings = await make_settings(kafka_bootstrap, news_partitions=3)
    k = settings.kafka
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:  # partitioned by key, as a producer of the input topic does
        sent = await producer.send_and_wait(k.news_topic, b"{not json", key=b"ACME", headers=[("trace-id", b"t-1")])
    finally:
        await producer.stop()
    dlq = KafkaDeadLetter(k)
    async with dlq, KafkaSource(settings, dlq) as source, consuming(source):
        await wait_until(lambda: source.dead_count == 1, "the malformed record dead-lettered")
    (dead,) = await read_topic(kafka_bootstrap, k.dead_letter_topic, 1)
    assert (dead.key, dead.value) == (b"ACME", b"{not json")
    assert dead.headers[0] == ("trace-id", b"t-1")
    assert [name for name, _ in dead.headers[1:]] == ["dlq.reason", "dlq.detail", "dlq.origin", "dlq.at"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:  # re-fed as the README says: value and key from the dead-letter record
        refed = await producer.send_and_wait(k.news_topic, dead.value, key=dead.key)
    finally:
        await producer.stop()
    assert refed.partition == sent.partition


async def test_dead_lettered_records_are_committed_so_a_restart_does_not_dead_letter_them_again(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap, news_partitions=2)
    k = settings.kafka
    await produce(kafka_bootstrap, k.news_topic, [payload("a", iso(T0)), b"bad-after-good"], partition=0)
    await produce(kafka_bootstrap, k.news_topic, [b"only-bad-1", b"only-bad-2"], partition=1)
    dlq = KafkaDeadLetter(k)
    async with dlq:
        async with KafkaSource(settings, dlq) as source, consuming(source) as got:
            await wait_until(lambda: len(got) == 1 and source.dead_count == 3, "one valid, three dead")
            await source.commit(got)
            # p0: "a" committed carries the dead record after it; p1: all-dead run committed by the source.
            assert await committed_offsets(settings, k.news_topic, 2) == [2, 2]
        await produce(kafka_bootstrap, k.news_topic, [payload("after-restart", iso(T0))], partition=1)
        async with KafkaSource(settings, dlq) as source, consuming(source) as got:
            await wait_until(lambda: len(got) == 1, "the record produced after the restart")
            await asyncio.sleep(0.5)
            assert ids(got) == ["after-restart"]
            assert source.dead_count == 0
    assert len(await read_topic(kafka_bootstrap, k.dead_letter_topic, 3)) == 3


async def test_restart_in_the_same_group_resumes_after_committed_offsets_and_redelivers_the_rest(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap, news_partitions=2)
    k = settings.kafka
    for p in (0, 1):
        await produce(kafka_bootstrap, k.news_topic, [payload(f"p{p}-{i}", iso(T0)) for i in range(6)], p)
    dlq = KafkaDeadLetter(k)
    calls: list[tuple[str, int]] = []
    first_calls: list[tuple[str, int]] = []
    async with dlq:
        first = KafkaSource(settings, dlq)
        first.on_group_read_before = lambda partition, committed: first_calls.append((partition, committed))
        async with first as source, consuming(source) as got:
            await wait_until(lambda: len(got) == 12, "all twelve records")
            # Acknowledge p0 up to offset 3 with one record (everything before it counts as done).
            await source.commit([r for r in got if r.message.id == "p0-3"])
        second = KafkaSource(settings, dlq)
        second.on_group_read_before = lambda partition, committed: calls.append((partition, committed))
        with capture_logs() as logs:
            async with second as source, consuming(source) as again:
                await wait_until(lambda: len(again) == 8, "the eight uncommitted records")
                await asyncio.sleep(0.5)
    assert sorted(ids(again)) == sorted(["p0-4", "p0-5"] + [f"p1-{i}" for i in range(6)])
    assert calls == [(f"{k.news_topic}:0", 4)], "told once that the group had read before (p1 never committed)"
    assert first_calls == [], "a group that never committed: a first start"
    resumed = {e["partition"]: (e["committed"], e["first_offset"]) for e in logs if e["event"] == "partition_resumes"}
    assert resumed == {f"{k.news_topic}:0": (4, 4), f"{k.news_topic}:1": (None, 0)}, "asked of the broker"
    assert not [e for e in logs if e["event"] in ("kafka_records_expired", "kafka_committed_unknown")]


async def test_partitions_pause_while_uncommitted_records_exceed_the_buffer_and_resume_after_commit(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap, max_poll_records=5, max_buffered_records=3)
    k = settings.kafka
    await produce(kafka_bootstrap, k.news_topic, [payload(f"m{i}", iso(T0)) for i in range(10)])
    dlq = KafkaDeadLetter(k)
    async with dlq, KafkaSource(settings, dlq) as source, consuming(source) as got:
        await wait_until(lambda: len(got) == 5, "the first poll of five")
        assert source.paused
        assert source.consumer.paused() == source.consumer.assignment()
        assert TopicPartition(k.news_topic, 0) in source.consumer.paused()
        await asyncio.sleep(1.0)
        assert len(got) == 5, "a paused source must not hand out more records"
        await source.commit(got)
        assert not source.paused
        assert source.consumer.paused() == set()
        await wait_until(lambda: len(got) == 10, "the rest after the commit")
    assert ids(got) == [f"m{i}" for i in range(10)]


async def test_idle_stream_yields_empty_batches_so_the_caller_regains_control(kafka_bootstrap: str) -> None:
    settings = await make_settings(kafka_bootstrap)
    dlq = KafkaDeadLetter(settings.kafka)
    async with dlq, KafkaSource(settings, dlq) as source:
        batches = source.batches(100, 100)
        try:
            assert await asyncio.wait_for(anext(batches), 5.0) == []
            assert await asyncio.wait_for(anext(batches), 5.0) == []
        finally:
            await batches.aclose()


async def test_durable_offsets_stop_at_the_first_uncommitted_record_and_the_broker_reveals_records_beyond(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap)
    k = settings.kafka
    key = f"{k.news_topic}:0"
    await produce(kafka_bootstrap, k.news_topic, [payload(f"m{i}", iso(T0)) for i in range(4)])
    dlq = KafkaDeadLetter(k)
    async with dlq, KafkaSource(settings, dlq) as source, consuming(source) as got:
        await wait_until(lambda: len(got) == 4, "four records")
        await source.commit(got[:2])
        offsets = await source.durable_offsets()
        assert offsets[key] == 2  # m2, m3 were handed out but are not durable yet
        assert await source.has_records_beyond(offsets)
        await source.commit(got)
        offsets = await source.durable_offsets()
        assert offsets[key] == 4
        assert not await source.has_records_beyond(offsets)
        await produce(kafka_bootstrap, k.news_topic, [payload("late-arrival", iso(T0))])
        assert await source.has_records_beyond(offsets)  # a claim made before it landed is stale


async def test_range_reader_returns_exactly_the_records_whose_payload_time_is_in_start_to_end(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap, news_partitions=2)
    k = settings.kafka
    start, end = T0, T0 + timedelta(hours=1)
    # Offsets deliberately out of event-time order; boundaries at start (in) and end (out).
    await produce(kafka_bootstrap, k.news_topic, [
        payload("late-in", iso(end - timedelta(milliseconds=1))),
        payload("before", iso(start - timedelta(seconds=1))),
        payload("at-start", iso(start)),
        b"malformed",
    ], partition=0)
    await produce(kafka_bootstrap, k.news_topic, [
        payload("at-end", iso(end)),
        payload("middle", int((start + timedelta(minutes=30)).timestamp())),
    ], partition=1)
    await produce(kafka_bootstrap, k.comments_topic, [
        payload("comment-in", iso(start + timedelta(minutes=5))),
        payload("comment-out", iso(end + timedelta(days=1))),
    ])
    reader = KafkaRangeReader(settings, start=start, end=end)
    async with reader:
        got = [r async for batch in reader.batches(2, 200) for r in batch]
    assert sorted(ids(got)) == ["at-start", "comment-in", "late-in", "middle"]
    assert {r.message.id: r.message.source for r in got}["comment-in"] is SourceKind.COMMENT
    assert (reader.read_count, reader.skipped_count, reader.dead_count) == (4, 3, 1)


async def test_range_reader_with_explicit_topics_and_open_bounds_reads_every_valid_record_of_those_topics(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap)
    k = settings.kafka
    other = unique_name("other")
    await create_topics(kafka_bootstrap, {other: 1})
    # epoch seconds, not ISO (a plausible time: 1970 is below source.min_event_time)
    await produce(kafka_bootstrap, k.news_topic, [payload("n1", iso(T0)), payload("n2", int(T0.timestamp()))])
    await produce(kafka_bootstrap, k.comments_topic, [payload("not-asked-for", iso(T0))])
    await produce(kafka_bootstrap, other, [payload("o1", iso(T0), source="comment"),
                                           payload("no-kind", iso(T0))])
    async with KafkaRangeReader(settings, [k.news_topic, other]) as reader:
        got = [r async for batch in reader.batches(100, 200) for r in batch]
    assert {r.message.id: r.message.source for r in got} == {
        "n1": SourceKind.NEWS, "n2": SourceKind.NEWS, "o1": SourceKind.COMMENT}
    assert reader.dead_count == 1  # "no-kind": a topic with no default kind needs "source" in the payload


async def test_consumer_lag_metric_counts_records_left_on_the_broker_per_partition(kafka_bootstrap: str) -> None:
    from monitor import metrics

    settings = await make_settings(kafka_bootstrap, max_poll_records=4, max_buffered_records=3)
    k = settings.kafka
    await produce(kafka_bootstrap, k.news_topic, [payload(f"m{i}", iso(T0)) for i in range(10)])

    def lag() -> float | None:
        return metrics.prometheus_client_value("finsent_consumer_lag_records", topic=k.news_topic, partition="0")

    dlq = KafkaDeadLetter(k)
    async with dlq, KafkaSource(settings, dlq) as source, consuming(source) as got:
        await wait_until(lambda: len(got) == 4, "the first poll of four (then paused)")
        assert lag() == 6
        deadline = time.monotonic() + 15
        while len(got) < 10 and time.monotonic() < deadline:  # commit as the pipeline would
            await source.commit(got)
            await asyncio.sleep(0.05)
        assert len(got) == 10
        await wait_until(lambda: lag() == 0, "lag back to zero")
    assert lag() is None, "a stopped consumer owns no partition: its lag series is gone"


async def test_without_cluster_mode_a_second_member_of_the_group_is_reported_with_the_partitions_it_took(
    kafka_bootstrap: str,
) -> None:
    settings = await make_settings(kafka_bootstrap, news_partitions=4)
    k = settings.kafka
    async with KafkaDeadLetter(k) as dlq, KafkaSource(settings, dlq) as first, consuming(first):
        assert await _wait_for(lambda: len(first.consumer.assignment()) == 5)
        assert metrics.PARTITIONS_ELSEWHERE._value.get() == 0  # sole owner of 4 news + 1 comments
        with capture_logs() as logs:
            async with KafkaSource(settings, dlq) as second, consuming(second):
                assert await _wait_for(lambda: len(second.consumer.assignment()) > 0
                                       and len(first.consumer.assignment()) < 5)
                assert metrics.PARTITIONS_ELSEWHERE._value.get() > 0
        reports = [e for e in logs if e["event"] == "partitions_elsewhere"]
        assert reports and reports[-1]["group_id"] == k.group_id
        assert "alerts.cluster_mode = true" in reports[-1]["fix"]


async def test_in_cluster_mode_sharing_the_partitions_is_not_reported(kafka_bootstrap: str) -> None:
    settings = await make_settings(kafka_bootstrap, news_partitions=2)
    settings = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"cluster_mode": True})})
    async with (KafkaDeadLetter(settings.kafka) as dlq, KafkaSource(settings, dlq) as first, consuming(first),
                KafkaSource(settings, dlq) as second, consuming(second)):
        assert await _wait_for(lambda: len(second.consumer.assignment()) > 0 and len(first.consumer.assignment()) < 3)
        assert metrics.PARTITIONS_ELSEWHERE._value.get() == 0


async def _wait_for(predicate: Callable[[], bool], timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_a_rebalance_held_by_a_member_stuck_in_it_is_reported_while_start_waits_and_cleared_when_it_completes(
    kafka_bootstrap: str,
) -> None:
    """aiokafka's start() waits for the group's assignment with no timeout: a member whose revocation callback hangs
    holds the rebalance until the broker drops it (its rebalance timeout). The daemon says so meanwhile."""
    from consumers.rebalance_watch import COMPONENT
    from monitor.retry import DEPENDENCIES

    settings = await make_settings(kafka_bootstrap, session_timeout_ms=6000, rebalance_report_after_s=1.0)
    k = settings.kafka
    hung = asyncio.Event()

    class Hangs(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
        async def on_partitions_revoked(self, revoked: frozenset[TopicPartition]) -> None:
            if revoked:  # its own first join revokes nothing
                hung.set()
                await asyncio.Event().wait()  # e.g. a commit to a database that does not answer

        async def on_partitions_assigned(self, assigned: object) -> None:
            return None

    stuck = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=k.group_id, session_timeout_ms=6000,
                             heartbeat_interval_ms=500, max_poll_interval_ms=8000, rebalance_timeout_ms=8000)
    stuck.subscribe([k.news_topic, k.comments_topic], listener=Hangs())
    await stuck.start()
    DEPENDENCIES.clear()
    try:
        async with KafkaDeadLetter(k) as dlq:
            source = KafkaSource(settings, dlq)
            with capture_logs() as logs:
                starting = asyncio.create_task(source.start())
                await wait_until(hung.is_set, "the other member's revocation begins", 10)
                await wait_until(lambda: any(e["event"] == "kafka_rebalance_stuck" for e in logs),
                                 "the stuck rebalance reported", 10)
                assert not starting.done(), "start() is still waiting for the assignment"
                assert any(COMPONENT in r for r in DEPENDENCIES.reasons())
                await asyncio.wait_for(starting, 40)  # the broker drops the hung member; the group completes
            try:
                assert source.consumer.assignment(), "this daemon owns the partitions now"
                assert [e["event"] for e in logs if e["event"].startswith("kafka_rebalance")] == [
                    "kafka_rebalance_stuck", "kafka_rebalance_completed"]
                assert not any(COMPONENT in r for r in DEPENDENCIES.reasons())
            finally:
                await source.stop()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stuck.stop(), 5)
