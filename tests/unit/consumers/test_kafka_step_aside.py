"""A cluster member that lost Redis leaves its consumer group and joins it again once Redis answers: its partitions
go to the other members instead of holding detection for everyone."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import TopicPartition
from structlog.testing import capture_logs

from tests.unit.consumers.test_kafka_lag_gauge import PausingConsumer
from tests.unit.consumers.test_kafka_unreadable_records import consume, good, news, source_over


class GroupConsumer(PausingConsumer):
    """Records (un)subscriptions; unsubscribed, it is assigned nothing, as aiokafka's consumer."""

    def __init__(self, logs: dict[TopicPartition, list[object]]) -> None:
        super().__init__(logs)
        self.subscribed = True
        self.calls: list[str] = []
        self.polls = 0
        self.joining: Any = None
        """The listener of a subscription whose rebalance the next poll completes (aiokafka calls it from getmany)."""

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs) if self.subscribed else set()

    def unsubscribe(self) -> None:
        self.subscribed = False
        self.calls.append("unsubscribe")

    def subscribe(self, topics: list[str], listener: object) -> None:
        self.subscribed = True
        self.calls.append("subscribe")
        self.joining = listener

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[object]]:  # type: ignore[override]
        self.polls += 1
        if self.joining is not None:
            listener, self.joining = self.joining, None
            await listener.on_partitions_assigned(set(self.logs))
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)  # type: ignore[return-value]


async def test_stepping_aside_leaves_the_group_forgets_its_partitions_and_stops_polling() -> None:
    p0, p1 = news(0), news(1)
    consumer = GroupConsumer({p0: [good("a")], p1: [good("b")]})
    source, _ = source_over(consumer)
    await source.hold()
    with capture_logs() as logs:
        await source.step_aside()
        await source.step_aside()  # idempotent
    assert consumer.calls == ["unsubscribe"]
    assert next(e for e in logs if e["event"] == "kafka_group_left")["partitions"] == ["news:0", "news:1"]
    assert source._pending == {}, "fetched records of the partitions it gave up are the new owners' to read"
    polls = consumer.polls
    await source.hold()  # out of the group: nothing to keep alive, nothing fetched
    assert consumer.polls == polls


async def test_aside_it_reads_nothing_and_after_rejoining_it_reads_on() -> None:
    p0 = news(0)
    consumer = GroupConsumer({p0: [good("a"), good("b")]})
    source, _ = source_over(consumer)
    await source.step_aside()
    assert await consume(source, rounds=2) == []
    assert consumer.calls == ["unsubscribe"]
    with capture_logs() as logs:
        source.rejoin()
        source.rejoin()  # idempotent
        got = await consume(source, rounds=3)
    assert consumer.calls == ["unsubscribe", "subscribe"]
    assert any(e["event"] == "kafka_group_rejoined" for e in logs)
    assert [r.message.id for r in got] == ["a", "b"]
