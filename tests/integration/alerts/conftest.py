"""Backends for the alerts contract suites: every test runs on memory, a real redis-server and a real
3-master Redis Cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from alerts.outbox import MemoryOutbox, Outbox, RedisOutbox
from alerts.state import AlertStateStore, MemoryAlertStateStore, RedisAlertStateStore

SINKS = ("webhook+https://a#1", "file:///tmp/b.jsonl")
BACKENDS = ["memory", "redis", "redis-cluster"]


def redis_of(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("redis_cluster_url" if request.param == "redis-cluster" else "redis_url"))


@pytest.fixture(params=BACKENDS)
async def state_store(request: pytest.FixtureRequest) -> AsyncIterator[AlertStateStore]:
    store: AlertStateStore
    if request.param == "memory":
        store = MemoryAlertStateStore(max_silences=3)
    else:
        url = redis_of(request)
        store = RedisAlertStateStore(url, f"test-{uuid.uuid4().hex}:alerts", max_silences=3)
    async with store:
        yield store


@pytest.fixture(params=BACKENDS)
async def outbox(request: pytest.FixtureRequest) -> AsyncIterator[Outbox]:
    box: Outbox
    if request.param == "memory":
        box = MemoryOutbox(SINKS, max_entries=5, ids_kept=100)
    else:
        url = redis_of(request)
        box = RedisOutbox(url, f"test-{uuid.uuid4().hex}:alerts", SINKS, max_entries=5, ids_kept=100)
    async with box:
        yield box
