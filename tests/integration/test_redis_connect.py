"""Every Redis client the daemon opens has a command timeout, so a Redis that accepts connections but never
answers is an outage the retries wait out, not a call that waits forever (real redis-server)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ReadOnlyError

from monitor.redis_connect import SOCKET_TIMEOUT_S, connect
from monitor.retry import describe, retrying
from tests.servers import free_port, redis_server

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


async def test_a_connection_answered_read_only_is_dropped_so_the_retry_reaches_the_primary(
    tmp_path: Path,
) -> None:
    """Found by review: behind a fixed address (a managed primary endpoint, a VIP) a failover demotes the node the
    pooled connection reaches; the connection stayed open and every retry went back to the replica."""
    with redis_server(tmp_path) as url:
        admin = aioredis.Redis.from_url(url)
        client = await connect(url)
        try:
            before = await client.client_id()
            await admin.replicaof("127.0.0.1", str(free_port()))  # demoted: refuses writes with READONLY
            with pytest.raises(ReadOnlyError):
                await client.set("k", "v")
            await admin.replicaof("NO", "ONE")  # the address reaches a primary again
            assert await retrying("test", lambda: client.set("k", "v"))
            assert await client.client_id() != before, "a new connection, not the demoted one"
        finally:
            await client.aclose()
            await admin.aclose()


async def test_a_pipeline_answered_read_only_raises_read_only_with_its_hint_then_reconnects(tmp_path: Path) -> None:
    """Closing at the first READONLY reply left the pipeline's other replies unread: it failed with "Connection
    closed by server", so the log lost the failover hint. The connection is now dropped before its next command."""
    with redis_server(tmp_path) as url:
        admin = aioredis.Redis.from_url(url)
        client = await connect(url)
        try:
            before = await client.client_id()
            await admin.replicaof("127.0.0.1", str(free_port()))
            for transaction in (True, False):
                pipe = client.pipeline(transaction=transaction)
                pipe.set("a", 1).incr("b").get("a")
                with pytest.raises(ReadOnlyError) as refused:
                    await pipe.execute()
                assert "read-only replica" in describe(refused.value)
            await admin.replicaof("NO", "ONE")
            assert await retrying("test", lambda: client.set("k", "v"))
            assert await client.client_id() != before, "a new connection, not the demoted one"
        finally:
            await client.aclose()
            await admin.aclose()
