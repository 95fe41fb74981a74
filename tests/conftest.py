"""Shared fixtures: real servers for integration and contract tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.kafka_broker import kafka_broker
from tests.servers import redis_cluster, redis_server

# The CI machine has 2 shared cores: wall-clock based health checks would flake, not find bugs.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real redis-server started for this test session (fails if redis-server is missing)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of one node of a real 3-master Redis Cluster started for this test session."""
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a real in-memory Kafka-protocol broker (tansu) for this test session."""
    with kafka_broker(tmp_path_factory.mktemp("kafka") / "tansu.log") as bootstrap:
        yield bootstrap
