"""The ``Sink`` protocol and what every sink shares: a safe display name and a delivery error.

A sink delivers one notification per ``send`` and raises on failure; retrying across outages is
the outbox's job (alerts/outbox/), so a sink only retries what is cheap to retry in-line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from alerts.model import Notification
from monitor.types import Lifecycle
from monitor.windows.buckets import key_path

if TYPE_CHECKING:
    from alerts.lifecycle import AlertState

NON_SECRET_PATH_SCHEMES = frozenset({"log", "file", "kafka"})


class SinkError(Exception):
    """A notification could not be delivered (the outbox will retry it).

    ``retry_after_s``: the receiver asked to wait this long (HTTP ``Retry-After`` on 429/503): the next
    attempt is not sooner. ``refused``: the receiver rejects the request itself (a 4xx such as a revoked
    webhook's 404/410): still retried, but reported as an error at once, not after the retry bound."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, refused: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.refused = refused


class Sink(Lifecycle, Protocol):
    name: str
    """Stable, secret-free identity: the outbox keys delivery records by it."""

    async def send(self, notification: Notification) -> None:
        """Deliver or raise. Idempotent receivers can dedupe on ``notification.id``."""
        ...


class RefreshingSink(Sink, Protocol):
    """A sink whose receiver forgets alerts that are not re-posted (Alertmanager): the delivery loop
    calls ``refresh`` every ``refresh_interval_s`` (wall time) with the durable firing states."""

    refresh_interval_s: float

    async def refresh(self, firing: Sequence[AlertState]) -> None:
        """Re-post what is firing; raise on failure (the next interval tries again)."""
        ...


def refreshing(sink: Sink) -> RefreshingSink | None:
    """``sink`` as a ``RefreshingSink`` when it is one (duck-typed: sinks are plain classes)."""
    if callable(getattr(sink, "refresh", None)) and isinstance(getattr(sink, "refresh_interval_s", None), float):
        return sink  # type: ignore[return-value]
    return None


def sink_name(url: str) -> str:
    """``scheme://host[:port]`` (+ path for log/file/kafka) and a short hash of the full URL.

    Webhook paths and query strings often carry tokens (Slack's do), so they never appear in
    names, logs or Redis keys; the hash keeps two sinks on one host apart.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.scheme in NON_SECRET_PATH_SCHEMES:
        return f"{parts.scheme}://{host}{parts.path}"
    return f"{parts.scheme}://{host}#{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def console_url(public_url: str, notification: Notification) -> str | None:
    """The console page of the notification's group (as the console links keys); None without a public URL
    (the default loopback address means nothing in a mailbox or a Slack channel)."""
    if not public_url:
        return None
    return public_url.rstrip("/") + key_path(notification.group_key)
