"""One Redis connection per alerts backend (state store, outbox), opened on start, closed on stop."""

from __future__ import annotations

import redis.asyncio as aioredis

from monitor.lifecycle import Service


class RedisBacked(Service):
    """Base for Redis-backed services: ``self.redis`` is valid between ``start()`` and ``stop()``.

    Responses are decoded to ``str`` (every value stored by alerts/ is JSON text or a number).
    """

    url: str
    _redis: aioredis.Redis | None = None

    async def _start(self) -> None:
        self._redis = aioredis.Redis.from_url(self.url, decode_responses=True)
        await self._redis.ping()

    async def _stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError(f"{type(self).__name__} used before start()")
        return self._redis
