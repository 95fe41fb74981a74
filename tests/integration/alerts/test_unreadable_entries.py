"""An outbox entry or an alert state this version cannot read (written by another version: a rollback, a
schema change) is set apart with an error, not raised. Before, the oldest-first claim failed on it every time
(its sink delivered nothing again, the outbox age gauge froze), and one bad state failed every evaluation."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis
import structlog

from alerts.lifecycle import LifecyclePolicy, step
from alerts.outbox import RedisOutbox
from alerts.state import RedisAlertStateStore
from tests.integration.alerts.conftest import SINKS
from tests.integration.alerts.test_outbox_contract import LEASE_S, notification
from tests.unit.alerts.builders import DAY0_S, signal

A, B = SINKS


async def test_an_unreadable_entry_is_set_apart_and_the_rest_is_delivered(redis_url: str) -> None:
    box = RedisOutbox(redis_url, f"test-{uuid.uuid4().hex}:alerts", SINKS, max_entries=5, ids_kept=100)
    bad, good = notification(0), notification(1)
    async with box:
        await box.enqueue(bad, 10.0)
        await box.enqueue(good, 11.0)
        admin = aioredis.Redis.from_url(redis_url)
        try:
            await admin.hset(box._key("payloads"), bad.id, '{"schema": "from another version"}')
        finally:
            await admin.aclose()
        with structlog.testing.capture_logs() as logs:
            claimed = await box.claim(A, 20.0, 10, LEASE_S)
            letters = await box.dead_letters(A)
        assert [e.notification.id for e in claimed] == [good.id]
        again = await box.claim(A, 20.0 + LEASE_S, 10, LEASE_S)  # the lease ran out: due again, alone
        assert [e.notification.id for e in again] == [good.id]
        assert [e["event"] for e in logs] == ["alert_outbox_entry_unreadable", "alert_dead_letter_unreadable"]
        assert logs[0]["notification_id"] == bad.id and letters == []



async def test_an_unreadable_alert_state_is_left_out_and_the_others_load(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}:alerts"
    async with RedisAlertStateStore(redis_url, prefix) as state:
        first = step({}, [signal("ticker:T0", DAY0_S + 300, True)], DAY0_S + 300, LifecyclePolicy()).states
        await state.commit(list(first.values()), [], DAY0_S + 300)
        admin = aioredis.Redis.from_url(redis_url)
        try:
            await admin.hset(state.states_key, "ticker:OLD", '{"schema": "from another version"}')
        finally:
            await admin.aclose()
        with structlog.testing.capture_logs() as logs:
            loaded = await state.load_states()
    assert loaded == first
    assert [(e["event"], e["dedup_key"]) for e in logs] == [("alert_state_unreadable", "ticker:OLD")]
