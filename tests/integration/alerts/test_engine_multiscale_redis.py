"""Multiscale detection reads the real Redis window store exactly as the memory one: same alerts,
and a restarted engine (fresh process state) rebuilds its baselines from Redis and carries on."""

from __future__ import annotations

import uuid

from alerts.engine import AlertEngine
from alerts.outbox import MemoryOutbox
from alerts.state import MemoryAlertStateStore
from monitor.windows.memory import MemoryWindowStore
from monitor.windows.redis import RedisWindowStore
from tests.unit.alerts.builders import DAY0_S
from tests.unit.alerts.test_engine_multiscale import DAY, B, evaluate_every, settings, sparse_history


async def test_multiscale_alerts_on_redis_equal_memory_and_survive_a_restart(redis_url: str) -> None:
    memory = MemoryWindowStore(B, retention_s=30 * DAY)
    end = await sparse_history(memory, 5, story_at_bucket=4 * DAY // B + 150)
    s = settings(max_catchup_buckets=10_000)
    reference = AlertEngine(memory, s, MemoryAlertStateStore(), MemoryOutbox([]), [])
    await reference.evaluate(DAY0_S + B)
    expected = await evaluate_every(reference, DAY0_S + B, end, 12)
    assert expected

    async with RedisWindowStore(redis_url, key_prefix=f"ms-{uuid.uuid4().hex}", bucket_s=B,
                                retention_s=30 * DAY, top_negative_per_bucket=5) as redis:
        await sparse_history(redis, 5, story_at_bucket=4 * DAY // B + 150)
        state = MemoryAlertStateStore()
        first = AlertEngine(redis, s, state, MemoryOutbox([]), [])
        await first.evaluate(DAY0_S + B)
        before = await evaluate_every(first, DAY0_S + B, DAY0_S + 4 * DAY, 12)
        restarted = AlertEngine(redis, s, state, MemoryOutbox([]), [])
        after = await evaluate_every(restarted, DAY0_S + 4 * DAY, end, 12)
    assert [n.id for n in before + after] == [n.id for n in expected]
