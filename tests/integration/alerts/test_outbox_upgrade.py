"""An outbox written by the previous version (no order index) keeps each alert's notices in order after the
upgrade, and index members the previous version leaked (it acked entries without removing them) hold nothing
back: both found by the regression review of the order index (real redis-server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from alerts.outbox import RedisOutbox, index_members
from tests.unit.alerts.builders import episode

pytestmark = pytest.mark.integration
SINK = "webhook+https://desk#1"
LEASE_S = 60.0


@pytest.fixture
async def outbox(redis_url: str) -> AsyncIterator[RedisOutbox]:
    async with RedisOutbox(redis_url, f"up-{uuid.uuid4().hex}:alerts", [SINK]) as box:
        yield box


async def forget_index(raw: aioredis.Redis, box: RedisOutbox) -> None:
    """What the previous version wrote: the same queue and payloads, no members and no order index."""
    await raw.delete(box._key("members"), box._key("order", SINK))


async def test_entries_the_previous_version_queued_are_indexed_and_go_out_in_order(
    outbox: RedisOutbox, redis_url: str,
) -> None:
    firing, resolved, _ = episode()
    await outbox.enqueue(firing, 10.0)
    await outbox.mark_failed(SINK, firing.id, 30.0)  # waiting for its retry when the upgrade happens
    await outbox.enqueue(resolved, 11.0)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await forget_index(raw, outbox)
        assert await outbox.claim(SINK, 20.0, 10, LEASE_S) == [], "the RESOLVED waits for its FIRING"
        assert [e.notification for e in await outbox.claim(SINK, 30.0, 10, LEASE_S)] == [firing]
        await outbox.mark_delivered(SINK, firing.id, 31.0)
        assert [e.notification for e in await outbox.claim(SINK, 31.0, 10, LEASE_S)] == [resolved]
    finally:
        await raw.aclose()


async def test_an_index_member_left_by_an_entry_no_longer_queued_holds_nothing_back(
    outbox: RedisOutbox, redis_url: str,
) -> None:
    firing, resolved, _ = episode()
    await outbox.enqueue(firing, 10.0)
    await outbox.enqueue(resolved, 11.0)
    raw = aioredis.Redis.from_url(redis_url)
    try:  # the previous version acked the FIRING: out of the queue, its index member left behind
        await raw.zrem(outbox._key("queue", SINK), firing.id)
        assert index_members(firing).encode() in {m for m in await raw.zrange(outbox._key("order", SINK), 0, -1)}
        assert [e.notification for e in await outbox.claim(SINK, 20.0, 10, LEASE_S)] == [resolved]
        assert await raw.zcard(outbox._key("order", SINK)) == 1, "the stale member was dropped"
    finally:
        await raw.aclose()
