"""Servers the chaos drills may freeze, stop and restart: each drill gets its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import BrokerProcess, RedisProcess


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    redis = RedisProcess(workdir).start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def chaos_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path / "tansu.log").start()
    try:
        yield broker
    finally:
        broker.stop()
