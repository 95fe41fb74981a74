"""An outbox written by the previous version (no order index) keeps each alert's notices in order after the
upgrade, and index members the previous version leaked (it acked entries without removing them) hold nothing
back: both found by the regression review of the order index (real redis-server). Rollbacks: entries this version
holds look like waiting retries to the versions before the index (which otherwise sent a RESOLVED before its held
FIRING), an outbox schema newer than this version's refuses start, and what a rollback left in the index is
repaired at start (found by the upgrade review)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from alerts.outbox import RedisOutbox, index_members
from monitor.cli import main
from monitor.fatal import StartupError
from tests.unit.alerts.builders import episode

pytestmark = pytest.mark.integration
SINK = "webhook+https://desk#1"
LEASE_S = 60.0


@pytest.fixture
async def outbox(redis_url: str) -> AsyncIterator[RedisOutbox]:
    async with RedisOutbox(redis_url, f"up-{uuid.uuid4().hex}:alerts", [SINK]) as box:
        yield box


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def same_keys(box: RedisOutbox) -> RedisOutbox:
    """Another process (a restart) on ``box``'s keys."""
    return RedisOutbox(box.url, box._tag[1:-1], box.sink_names)


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


async def waiting_retries_before_the_index(raw: aioredis.Redis, box: RedisOutbox, sink: str = SINK) -> set[str]:
    """The ids versions before the order index held later notices of their alerts behind (their ``waiting_retry``:
    the fields of the sink's ``attempts`` hash)."""
    return set(await raw.hkeys(box._key("attempts", sink)))


async def test_entries_this_version_leases_or_holds_are_waiting_retries_to_a_version_before_the_index(
    outbox: RedisOutbox, raw: aioredis.Redis,
) -> None:
    """The rollback review: the held RESOLVED had no attempt, so after a rollback it went out before its FIRING."""
    firing, resolved, refiring = episode()
    for at_s, n in enumerate((firing, resolved, refiring), 10):
        await outbox.enqueue(n, float(at_s))
    assert [e.notification for e in await outbox.claim(SINK, 20.0, 10, LEASE_S)] == [firing]
    # the deliverer stops here (a rollback): the FIRING is leased, the two after it held, none has failed
    assert await waiting_retries_before_the_index(raw, outbox) == {firing.id, resolved.id, refiring.id}


async def test_a_redriven_entry_is_a_waiting_retry_to_a_version_before_the_index(
    outbox: RedisOutbox, raw: aioredis.Redis,
) -> None:
    firing, _, _ = episode()
    await outbox.enqueue(firing, 10.0)
    await outbox.abandon(SINK, firing.id, 11.0)
    assert await outbox.redrive(50.0) == 1  # due now: after later notices of its alert that are already due
    assert await waiting_retries_before_the_index(raw, outbox) == {firing.id}


async def test_an_adopted_entry_is_a_waiting_retry_to_a_version_before_the_index(
    outbox: RedisOutbox, raw: aioredis.Redis,
) -> None:
    firing, _, _ = episode()
    await outbox.enqueue(firing, 10.0)
    renamed = "webhook+https://desk#2"  # the sink's URL changed
    async with RedisOutbox(outbox.url, outbox._tag[1:-1], [renamed]) as after:
        assert await after.adopt(SINK, renamed, 50.0) == 1  # all due at once
    assert await waiting_retries_before_the_index(raw, outbox, renamed) == {firing.id}


async def test_start_records_the_outbox_schema_it_writes(outbox: RedisOutbox, raw: aioredis.Redis) -> None:
    assert await raw.get(outbox._key("schema")) == "2"


async def test_a_newer_outbox_schema_refuses_start_naming_the_keys_and_the_fix_and_writes_nothing(
    outbox: RedisOutbox, raw: aioredis.Redis,
) -> None:
    await raw.set(outbox._key("schema"), 99)
    await raw.delete(outbox._key("sinks"))
    with pytest.raises(StartupError) as refused:
        async with same_keys(outbox):
            pass
    assert (f"{outbox._tag}:outbox:* were written by a newer finsent (outbox schema 99, this one writes 2)"
            in str(refused.value))
    assert "monitor alerts sinks" in str(refused.value) and f"DEL {outbox._key('schema')}" in str(refused.value)
    assert await raw.get(outbox._key("schema")) == "99" and not await raw.exists(outbox._key("sinks"))


def test_the_cli_prints_a_newer_outbox_schema_as_one_error_line(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"up-{uuid.uuid4().hex}"
    sync = redis.Redis.from_url(redis_url)
    try:
        sync.set(f"{{{prefix}:alerts}}:outbox:schema", 3)
    finally:
        sync.close()
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", redis_url)
    monkeypatch.setenv("MONITOR_WINDOWS__KEY_PREFIX", prefix)
    monkeypatch.setenv("MONITOR_ALERTS__SINKS", f'["file://{tmp_path}/alerts.jsonl"]')
    capsys.readouterr()
    assert main(["alerts", "sinks"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: Redis keys {{{prefix}:alerts}}:outbox:* were written by a newer finsent")


async def test_a_first_start_on_a_full_redis_waits_for_room_then_records_the_schema(
    outbox: RedisOutbox, raw: aioredis.Redis,
) -> None:
    """The marker is a start write like the others: a Redis refusing writes is waited for, as before."""
    await raw.delete(outbox._key("schema"))
    await raw.config_set("maxmemory", "1")
    box = same_keys(outbox)
    try:
        starting = asyncio.create_task(box.start())
        await asyncio.sleep(0.5)
        assert not starting.done(), "waiting, not exited"
    finally:
        await raw.config_set("maxmemory", "0")
    async with asyncio.timeout(15):
        await starting
    await box.stop()
    assert await raw.get(outbox._key("schema")) == "2"


async def test_index_entries_left_by_a_version_before_the_index_are_dropped_at_start(
    outbox: RedisOutbox, raw: aioredis.Redis,
) -> None:
    firing, resolved, _ = episode()
    other, _, _ = episode("ticker:AAPL")
    for at_s, n in enumerate((firing, resolved, other), 10):
        await outbox.enqueue(n, float(at_s))
    await outbox.claim(SINK, 20.0, 10, LEASE_S)  # the RESOLVED is held
    ids = [firing.id, resolved.id, other.id]  # a version before the index acks all three (its _DONE)
    await raw.zrem(outbox._key("queue", SINK), *ids)
    for key in ("attempts", "payloads", "remaining"):
        await raw.hdel(outbox._key(key) if key != "attempts" else outbox._key(key, SINK), *ids)
    async with same_keys(outbox):
        pass
    assert not await raw.exists(outbox._key("members"), outbox._key("order", SINK), outbox._key("held", SINK))


async def test_an_entry_a_version_before_the_index_requeued_holds_later_notices_back_after_start(
    outbox: RedisOutbox, raw: aioredis.Redis,
) -> None:
    firing, resolved, _ = episode()
    await outbox.enqueue(firing, 10.0)
    # dead-lettered and redriven by a version before the index: queued again, its index members dropped meanwhile
    await raw.zrem(outbox._key("order", SINK), *index_members(firing).split("\n"))
    async with same_keys(outbox) as again:
        await again.enqueue(resolved, 11.0)
        assert [e.notification for e in await again.claim(SINK, 20.0, 10, LEASE_S)] == [firing]
