"""Shared HTTP POST with a timeout and a few in-line retries (webhook and Slack sinks).

Retries here cover blips (a 502 from a proxy, a dropped connection); longer outages fall through to
the outbox, which retries with capped exponential backoff. 4xx answers other than 408/429 are not
retried: resending the same body will not fix them.
"""

from __future__ import annotations

import asyncio

import aiohttp

from alerts.sinks.base import SinkError
from monitor.lifecycle import Service

RETRYABLE_4XX = frozenset({408, 429})


class HttpPoster(Service):
    def __init__(self, name: str, timeout_s: float, max_attempts: int, backoff_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST until a 2xx answer; raise ``SinkError`` after ``max_attempts`` or a permanent 4xx."""
        await self.start()
        assert self._session is not None
        last = "no attempt"
        for attempt in range(self.max_attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                async with self._session.post(url, data=body, headers=headers) as resp:
                    if 200 <= resp.status < 300:
                        return
                    last = f"HTTP {resp.status}"
                    if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise SinkError(f"{self.name}: delivery failed ({last})")
