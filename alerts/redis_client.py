"""One Redis connection per alerts backend (state store, outbox), opened on start, closed on stop; a Redis
Cluster endpoint gets the cluster-aware client (monitor/redis_connect.py)."""

from __future__ import annotations

import functools

from monitor.lifecycle import Service
from monitor.redis_connect import RedisClient, connect
from monitor.retry import refusing_for_now, retrying


class RedisBacked(Service):
    """Base for Redis-backed services: ``self.redis`` is valid between ``start()`` and ``stop()``.

    Responses are decoded to ``str`` (every value stored by alerts/ is JSON text or a number). A Redis that
    answers but refuses for now (loading its data, unable to persist) is waited for at start (monitor/retry.py).
    """

    url: str
    component = "alert_store"
    """The dependency name in retry logs and ``/readyz``."""
    wait_at_start = True
    """The daemon waits for a Redis that refuses for now; an operator's command (``monitor alerts``, ``monitor
    silences``) fails at once instead, with one line (found by the regression review: it hung)."""
    _redis: RedisClient | None = None

    def start_retry_if(self, exc: BaseException) -> bool:
        """What ``_start`` waits for: ``refusing_for_now`` in the daemon, nothing in a command."""
        return self.wait_at_start and refusing_for_now(exc)

    async def _start(self) -> None:
        self._redis = await retrying(self.component, functools.partial(connect, self.url, decode_responses=True),
                                     retry_if=self.start_retry_if)

    async def _stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> RedisClient:
        if self._redis is None:
            raise RuntimeError(f"{type(self).__name__} used before start()")
        return self._redis
