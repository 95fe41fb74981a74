"""Backends for the alerts contract suites: every test runs on memory and on a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from alerts.outbox import MemoryOutbox, Outbox, RedisOutbox
from alerts.state import AlertStateStore, MemoryAlertStateStore, RedisAlertStateStore

SINKS = ("webhook+https://a#1", "file:///tmp/b.jsonl")


@pytest.fixture(params=["memory", "redis"])
async def state_store(request: pytest.FixtureRequest) -> AsyncIterator[AlertStateStore]:
    store: AlertStateStore
    if request.param == "memory":
        store = MemoryAlertStateStore(max_silences=3)
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisAlertStateStore(url, f"test-{uuid.uuid4().hex}:alerts", max_silences=3)
    async with store:
        yield store


@pytest.fixture(params=["memory", "redis"])
async def outbox(request: pytest.FixtureRequest) -> AsyncIterator[Outbox]:
    box: Outbox
    if request.param == "memory":
        box = MemoryOutbox(SINKS, max_entries=5, ids_kept=100)
    else:
        url = request.getfixturevalue("redis_url")
        box = RedisOutbox(url, f"test-{uuid.uuid4().hex}:alerts", SINKS, max_entries=5, ids_kept=100)
    async with box:
        yield box
