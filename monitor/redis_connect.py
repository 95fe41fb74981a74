"""One way to open a Redis connection: a standalone server (or a primary with replicas) or a Redis Cluster.

Why auto-detect instead of a URL scheme: managed services hand out one endpoint either way, and the daemon's
keys are hash-tagged per component (``{P}`` for windows and leases, ``{P:alerts}`` for alert state and the
outbox), so every script and transaction touches one slot and runs the same on both. A cluster endpoint is
recognised by ``INFO cluster`` (``cluster_enabled:1``) and reopened with the cluster-aware client, which
follows ``MOVED``/``ASK`` redirections.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.exceptions import ReadOnlyError, ResponseError

RedisClient = aioredis.Redis | RedisCluster


class _DropOnReadOnly(AbstractConnection):
    """A connection that reconnects after the server answered READONLY, like redis-py's Sentinel connections do.

    Behind a fixed address (a managed service's primary endpoint, a VIP, a proxy) a failover demotes the node the
    pooled connections reach; they stayed open, so every retry went back to the replica and the daemon stalled
    until restarted (found by review). Reconnected, the retry reaches the new primary through the address; the
    error itself still propagates and is retried as transient (monitor/retry.py). The drop waits for the next
    command: closing at once made a pipeline's remaining replies unreadable, so it failed with "Connection closed
    by server" instead of READONLY and the log lost the failover hint."""

    _answered_read_only = False

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ReadOnlyError:
            self._answered_read_only = True
            raise

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        if self._answered_read_only:
            self._answered_read_only = False
            await self.disconnect()
        await super().send_packed_command(*args, **kwargs)


class _PlainConnection(_DropOnReadOnly, Connection):
    pass


class _TLSConnection(_DropOnReadOnly, SSLConnection):
    pass


class _UnixConnection(_DropOnReadOnly, UnixDomainSocketConnection):
    pass


def _connection_class(url: str) -> type[AbstractConnection]:
    chosen = parse_url(url).get("connection_class", Connection)
    if issubclass(chosen, UnixDomainSocketConnection):
        return _UnixConnection
    return _TLSConnection if issubclass(chosen, SSLConnection) else _PlainConnection


async def is_cluster_node(client: aioredis.Redis) -> bool:
    """True when the server runs in Redis Cluster mode (an ACL that refuses INFO reads as not a cluster)."""
    try:
        info = await client.info("cluster")
    except ResponseError:
        return False
    return str(info.get("cluster_enabled", "0")) == "1"


def node_values(reply: Any, name: str) -> list[Any]:
    """``name`` from a CONFIG GET / INFO reply: one server's dict, or a Redis Cluster client's dict per node."""
    if not isinstance(reply, dict):
        return []
    if name in reply:
        return [reply[name]]
    return [node[name] for node in reply.values() if isinstance(node, dict) and name in node]


async def config_value(client: RedisClient, name: str) -> str | None:
    """``CONFIG GET name`` (a cluster's first node), or None where CONFIG is refused (managed Redis services
    often rename it)."""
    try:
        found = node_values(await client.config_get(name), name)
    except ResponseError:
        return None
    return str(found[0]) if found else None


SOCKET_TIMEOUT_S = 5.0
"""Longest one Redis command or connect may wait unless the URL says otherwise (``?socket_timeout=1``):
a Redis that accepts connections but never answers (frozen, a hung proxy) becomes a retried outage, not a
pipeline, a lease and a stop waiting forever. redis-py before 8.0 had no timeout by default."""


async def connect(url: str, **options: Any) -> RedisClient:
    """A started client for ``url``; raises what redis-py raises when the server cannot be used.
    The URL's query options win over ``options`` (redis-py's rule)."""
    options.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
    options.setdefault("socket_connect_timeout", SOCKET_TIMEOUT_S)
    client = aioredis.Redis.from_url(url, connection_class=_connection_class(url), **options)
    try:
        await client.ping()
        cluster = await is_cluster_node(client)
    except BaseException:
        await client.aclose()
        raise
    if not cluster:
        return client
    await client.aclose()
    cluster_client = RedisCluster.from_url(url, **options)
    try:
        await cluster_client.initialize()
    except BaseException:
        await cluster_client.aclose()
        raise
    return cluster_client
