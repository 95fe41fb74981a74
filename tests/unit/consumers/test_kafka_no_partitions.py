"""A daemon outside cluster mode that the consumer group gives no partition reads nothing: after a grace it says so
(an ERROR and a readiness reason), and the next assignment clears it."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from consumers.kafka import ASSIGNMENT_COMPONENT, UNASSIGNED_GRACE_S
from monitor.retry import DEPENDENCIES
from tests.unit.consumers.test_kafka_step_aside import GroupConsumer
from tests.unit.consumers.test_kafka_unreadable_records import good, news, source_over


@pytest.fixture(autouse=True)
def _clean_dependencies() -> None:
    DEPENDENCIES.clear()


def _reasons() -> list[str]:
    return [r for r in DEPENDENCIES.reasons() if ASSIGNMENT_COMPONENT in r]


def test_owning_no_partition_past_the_grace_is_an_error_and_a_readiness_reason_until_an_assignment() -> None:
    consumer = GroupConsumer({news(0): [good("a")]})
    source, _ = source_over(consumer)
    consumer.subscribed = False  # a rebalance that never completes: nothing assigned
    with capture_logs() as logs:
        source._check_assigned(1000.0)
        source._check_assigned(1000.0 + UNASSIGNED_GRACE_S - 1)
        assert _reasons() == [] and not logs, "a rebalance takes a while"
        source._check_assigned(1000.0 + UNASSIGNED_GRACE_S)
        source._check_assigned(1000.0 + UNASSIGNED_GRACE_S + 30)  # once, not at every poll
    assert [e["event"] for e in logs] == ["kafka_no_partitions"]
    assert "kafka-consumer-groups --describe" in logs[0]["fix"]
    assert len(_reasons()) == 1
    consumer.subscribed = True
    source._check_assigned(2000.0)
    assert _reasons() == []


def test_the_grace_is_at_least_two_session_timeouts() -> None:
    consumer = GroupConsumer({news(0): [good("a")]})
    source, _ = source_over(consumer)
    source.kafka = source.kafka.model_copy(update={"session_timeout_ms": 45_000})
    consumer.subscribed = False
    source._check_assigned(0.0)
    source._check_assigned(UNASSIGNED_GRACE_S + 1)
    assert _reasons() == []
    source._check_assigned(90.0)
    assert len(_reasons()) == 1


def test_a_cluster_member_without_partitions_is_not_reported() -> None:
    """More members than partitions leave some without any: normal in cluster mode."""
    consumer = GroupConsumer({news(0): [good("a")]})
    source, _ = source_over(consumer)
    source.shares_group = True
    consumer.subscribed = False
    source._check_assigned(0.0)
    source._check_assigned(10 * UNASSIGNED_GRACE_S)
    assert _reasons() == []


async def test_stopping_clears_the_reason() -> None:
    consumer = GroupConsumer({news(0): [good("a")]})
    source, _ = source_over(consumer)
    consumer.subscribed = False
    source._check_assigned(0.0)
    source._check_assigned(UNASSIGNED_GRACE_S)
    assert len(_reasons()) == 1
    await source._stop()
    assert _reasons() == []
