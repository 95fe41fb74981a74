"""Shared HTTP POST with a timeout and a few in-line retries (webhook and Slack sinks).

Retries here cover blips (a 502 from a proxy, a dropped connection); longer outages fall through to
the outbox, which retries with capped exponential backoff. A timeout is not retried here: the receiver may
have the body already, and only the outbox's retry (once per backoff) should repeat it. 4xx answers other than
408/429 are not retried: resending the same body will not fix them. A redirect is refused too (a configuration
error): its ``Location`` is shown resolved and redacted, since webhook URLs carry their token in the path.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from urllib.parse import urljoin

import aiohttp

from alerts.sinks.base import SinkError
from monitor.lifecycle import Service
from monitor.redact import redact_url

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
                # never follow a redirect: aiohttp turns a POST answered 301/302 into a bodiless GET, and an
                # endpoint that answers that GET with 200 (Alertmanager's alert list, an SSO login page)
                # made an alert look delivered that nobody received
                async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    if 200 <= resp.status < 300:
                        return
                    if 300 <= resp.status < 400:
                        raise SinkError(
                            f"{self.name}: delivery refused (HTTP {resp.status} redirect to "
                            f"{redirect_target(url, resp.headers.get('Location'))!r}) -- put the final URL in "
                            "alerts.sinks (a redirected POST is not followed: it would arrive as a GET without "
                            "the alert)", refused=True)
                    last = f"HTTP {resp.status}"
                    retry_after_s = retry_after(resp.headers.get("Retry-After"))
                    if retry_after_s is not None:  # asked to wait: the outbox waits, no in-line hammering
                        raise SinkError(f"{self.name}: delivery failed ({last}, Retry-After {retry_after_s:g} s)",
                                        retry_after_s=retry_after_s)
                    if 400 <= resp.status < 500 and resp.status not in RETRYABLE_4XX:
                        raise SinkError(f"{self.name}: delivery refused ({last}) -- the receiver rejects the "
                                        "request itself: check the sink URL and its token", refused=True)
            except TimeoutError:
                # the body may have arrived and only the answer be late: a receiver that cannot dedupe (Slack) got
                # the notice once per in-line attempt, times the outbox's (12 posts for one alert; found by review).
                # The outbox retries it with its backoff, once.
                raise SinkError(f"{self.name}: delivery failed (no answer within {self.timeout_s:g} s)") from None
            except aiohttp.ClientError as exc:
                last = _described(exc, url)
        raise SinkError(f"{self.name}: delivery failed ({last})")


def _described(exc: aiohttp.ClientError, url: str) -> str:
    """The error without the request URL: aiohttp's ``ClientResponseError`` text ends ``url='...'``, which put a
    webhook's or Slack's token in every ``alert_delivery_failed`` line (found by review)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: {exc.status}, {exc.message}"
    return f"{type(exc).__name__}: {exc}".replace(url, redact_url(url, posted=True))


def redirect_target(url: str, location: str | None) -> str:
    """Where a redirect points, for an error message: made absolute (a relative ``Location`` would slip
    past the redaction) with its secrets masked; the token of a webhook URL otherwise reached the logs."""
    if not location:
        return "?"
    try:
        return redact_url(urljoin(url, location), posted=True)
    except ValueError:
        return "***"


def retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` (delta seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # '²'.isdigit() is true too, and float('²') raised (found by review)
        return float(value)
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        return None
    return max(0.0, at.timestamp() - (time.time() if now_s is None else now_s))
