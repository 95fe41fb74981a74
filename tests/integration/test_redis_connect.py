"""Every Redis client the daemon opens has a command timeout, so a Redis that accepts connections but never
answers is an outage the retries wait out, not a call that waits forever (real redis-server)."""

from __future__ import annotations

import pytest

from monitor.redis_connect import SOCKET_TIMEOUT_S, connect

pytestmark = pytest.mark.integration


async def test_a_client_gets_the_default_command_and_connect_timeouts(redis_url: str) -> None:
    client = await connect(redis_url)
    try:
        kwargs = client.connection_pool.connection_kwargs  # type: ignore[union-attr]
        assert kwargs["socket_timeout"] == SOCKET_TIMEOUT_S and kwargs["socket_connect_timeout"] == SOCKET_TIMEOUT_S
    finally:
        await client.aclose()


async def test_the_urls_own_timeout_wins(redis_url: str) -> None:
    client = await connect(f"{redis_url}?socket_timeout=1.5")
    try:
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 1.5  # type: ignore[union-attr]
    finally:
        await client.aclose()
