from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from monitor import metrics
from monitor.retry import Backoff, Dependencies, describe, is_transient, refusing_for_now, retrying

FAST = Backoff(initial_s=0.001, max_s=0.01)


class Flaky:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


async def test_transient_errors_are_retried_past_any_attempt_count_until_success() -> None:
    deps = Dependencies()
    op = Flaky(200, RedisConnectionError("redis down"))
    before = metrics.RETRIES.labels("store-x")._value.get()
    assert await retrying("store-x", op, backoff=FAST, dependencies=deps) == "ok"
    assert op.calls == 201
    assert metrics.RETRIES.labels("store-x")._value.get() - before == 200
    assert deps.reasons() == []
    assert metrics.DEPENDENCY_UP.labels("store-x")._value.get() == 1


OOM = "command not allowed when used memory > 'maxmemory'."
WRONGPASS = "invalid username-password pair or user is disabled."


@pytest.mark.parametrize(("error", "reason"), [
    (ConnectionRefusedError("connection refused"),
     "window_store unreachable: ConnectionRefusedError: connection refused"),
    (OutOfMemoryError(OOM),  # a full Redis is waited for, and the reason says what to do
     f"window_store unreachable: OutOfMemoryError: {OOM} -- Redis is at its maxmemory: raise it or lower "
     "windows.retention_s (waiting until it has room)"),
    (AuthenticationError(WRONGPASS),  # a rotated password: waited for, and the reason names the setting
     f"window_store unreachable: AuthenticationError: {WRONGPASS} -- Redis refused the credentials of "
     "windows.store_url: set MONITOR_WINDOWS__STORE_URL to the current password and restart (waiting until then)"),
    (SlotNotCoveredError("Slot 11445 not covered by the cluster."),  # a Redis Cluster mid-failover
     "window_store unreachable: SlotNotCoveredError: Slot 11445 not covered by the cluster. -- the Redis Cluster "
     "does not serve every slot now (a failover, a master down): waiting; `redis-cli --cluster check HOST:PORT` "
     "shows which"),
], ids=["connection_refused", "redis_full_with_its_fix", "password_rotated_with_its_fix", "cluster_failover"])
async def test_a_failing_dependency_is_reported_down_with_its_error_until_it_recovers(
    error: Exception, reason: str
) -> None:
    deps = Dependencies()
    gate = asyncio.Event()

    async def op() -> int:
        if not gate.is_set():
            raise error
        return 1

    task = asyncio.create_task(retrying("window_store", op, backoff=FAST, dependencies=deps))
    await asyncio.sleep(0.05)
    assert deps.reasons() == [reason]
    assert metrics.DEPENDENCY_UP.labels("window_store")._value.get() == 0
    gate.set()
    assert await task == 1
    assert deps.reasons() == []


async def test_a_non_transient_error_propagates_at_once() -> None:
    op = Flaky(1, ResponseError("WRONGTYPE"))
    with pytest.raises(ResponseError):
        await retrying("store-y", op, backoff=FAST, dependencies=Dependencies())
    assert op.calls == 1


async def test_cancelling_the_caller_ends_the_retry_wait() -> None:
    op = Flaky(10**9, TimeoutError())
    task = asyncio.create_task(retrying("store-z", op, backoff=Backoff(1.0, 5.0), dependencies=Dependencies()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_connection_and_timeout_errors_are_transient_and_bugs_are_not() -> None:
    from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

    assert is_transient(RedisConnectionError()) and is_transient(OSError()) and is_transient(TimeoutError())
    assert is_transient(KafkaConnectionError())
    assert not is_transient(ValueError()) and not is_transient(ResponseError("ERR"))
    assert is_transient(UnknownTopicOrPartitionError()) == UnknownTopicOrPartitionError.retriable


def test_a_full_redis_and_a_cluster_without_a_master_are_transient() -> None:
    assert is_transient(OutOfMemoryError("OOM")) and is_transient(MasterDownError("MASTERDOWN"))
    assert is_transient(ClusterDownError("CLUSTERDOWN")) and not is_transient(NoPermissionError("NOPERM"))


def test_a_slot_being_moved_is_transient_and_says_so() -> None:
    from redis.exceptions import ClusterError, TryAgainError

    assert is_transient(ClusterError("TTL exhausted.")) and is_transient(TryAgainError("TRYAGAIN"))
    assert "resharding" in describe(ClusterError("TTL exhausted."))


def test_a_redis_busy_with_another_clients_script_is_waited_for_and_other_refusals_are_not() -> None:
    busy = ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    assert is_transient(busy) and "SCRIPT KILL" in describe(busy)
    assert not is_transient(ResponseError("ERR unknown command")) and "SCRIPT KILL" not in describe(
        ResponseError("ERR unknown command"))


def test_a_redis_that_cannot_persist_is_waited_for_with_what_to_fix() -> None:
    """Found by review: MISCONF (a full disk under stop-writes-on-bgsave-error or a failing AOF) was a plain
    ResponseError: the daemon exited at its first batch and at every restart, blaming maxmemory and ACLs."""
    misconf = ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist")
    assert is_transient(misconf) and refusing_for_now(misconf) and "free the disk" in describe(misconf)


def test_a_primary_short_of_replicas_is_waited_for_with_what_to_check() -> None:
    """Found by review: NOREPLICAS (min-replicas-to-write with a replica away) was a plain ResponseError: the daemon
    exited at its next batch, and a start blamed the Redis version and the ACL."""
    refused = ResponseError("NOREPLICAS Not enough good replicas to write.")
    assert is_transient(refused) and refusing_for_now(refused) and "min-replicas-to-write" in describe(refused)


def test_start_up_waits_only_for_a_redis_that_answers_but_refuses_for_now() -> None:
    for refusing in (OutOfMemoryError("OOM"), ReadOnlyError("READONLY"), BusyLoadingError("LOADING"),
                     ResponseError("BUSY Redis is busy running a script")):
        assert refusing_for_now(refusing)
    assert not refusing_for_now(RedisConnectionError()) and not refusing_for_now(ResponseError("NOPERM"))
    assert "reconnecting" in describe(ReadOnlyError("READONLY You can't write against a read only replica."))
