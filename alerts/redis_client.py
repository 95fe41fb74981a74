"""One Redis connection per alerts backend (state store, outbox), opened on start, closed on stop; a Redis
Cluster endpoint gets the cluster-aware client (monitor/redis_connect.py)."""

from __future__ import annotations

from monitor.lifecycle import Service
from monitor.redis_connect import RedisClient, connect


class RedisBacked(Service):
    """Base for Redis-backed services: ``self.redis`` is valid between ``start()`` and ``stop()``.

    Responses are decoded to ``str`` (every value stored by alerts/ is JSON text or a number).
    """

    url: str
    _redis: RedisClient | None = None

    async def _start(self) -> None:
        self._redis = await connect(self.url, decode_responses=True)

    async def _stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> RedisClient:
        if self._redis is None:
            raise RuntimeError(f"{type(self).__name__} used before start()")
        return self._redis
