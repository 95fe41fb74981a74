"""Kafka authorization and authentication failures are waited for, like Redis's refused password: exiting on a
dead-letter topic the daemon may not write (Apache Kafka ACLs, MSK IAM answer TopicAuthorizationFailedError) sent
a supervisor into a crash loop on the same record, while the fix (an ACL, a credential) comes from outside."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    PolicyViolationError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from monitor.retry import Backoff, Dependencies, describe, is_transient, retrying


@pytest.mark.parametrize("error", [
    TopicAuthorizationFailedError("finsent.dead-letter"), GroupAuthorizationFailedError("finsent-monitor"),
    ClusterAuthorizationFailedError(), SaslAuthenticationFailed("Authentication failed"),
], ids=["topic_acl", "group_acl", "cluster_acl", "sasl_login"])
def test_kafka_authorization_and_authentication_failures_are_waited_for(error: KafkaError) -> None:
    assert is_transient(error)


def test_other_requests_the_broker_refuses_still_propagate() -> None:
    assert not is_transient(PolicyViolationError())


async def test_a_dead_letter_topic_the_daemon_may_not_write_is_a_readiness_reason_naming_the_setting() -> None:
    deps = Dependencies()
    gate = asyncio.Event()

    async def produce() -> str:
        if not gate.is_set():
            raise TopicAuthorizationFailedError("finsent.dead-letter")
        return "sent"

    task = asyncio.create_task(retrying("dead_letter", produce, backoff=Backoff(0.001, 0.01), dependencies=deps))
    await asyncio.sleep(0.05)
    [reason] = deps.reasons()
    assert reason.startswith("dead_letter unreachable: TopicAuthorizationFailedError")
    assert "finsent.dead-letter" in reason and "kafka.dead_letter_topic" in reason and "ACLs" in reason
    gate.set()
    assert await task == "sent"
    assert deps.reasons() == []


def test_rejected_sasl_credentials_say_which_settings_and_that_a_restart_is_needed() -> None:
    text = describe(SaslAuthenticationFailed("Authentication failed"))
    assert "kafka.sasl_username" in text and "kafka.sasl_password" in text and "restart" in text


async def test_waiting_for_a_refused_acl_backs_off_instead_of_spinning() -> None:
    """The default backoff: up to 0.2 s doubling per attempt, capped at 10 s; a hot loop would try thousands of
    times in the second this test waits."""
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise TopicAuthorizationFailedError("finsent.dead-letter")

    task = asyncio.create_task(retrying("dead_letter", refused, dependencies=Dependencies()))
    started = time.monotonic()
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2.0
    assert 1 <= calls <= 12
