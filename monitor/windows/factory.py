"""Pick the ``WindowStore`` backend from ``windows.store_url``'s scheme (a small registry)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from monitor.config import InputError, WindowSettings
from monitor.redact import redact_url
from monitor.windows.base import WindowStore
from monitor.windows.memory import MemoryWindowStore
from monitor.windows.redis import RedisWindowStore


def _memory(settings: WindowSettings) -> WindowStore:
    return MemoryWindowStore(settings.bucket_s, settings.retention_s, settings.top_negative_per_bucket)


def _redis(settings: WindowSettings) -> WindowStore:
    return RedisWindowStore(
        settings.store_url,
        key_prefix=settings.key_prefix,
        bucket_s=settings.bucket_s,
        retention_s=settings.retention_s,
        top_negative_per_bucket=settings.top_negative_per_bucket,
    )


BACKENDS: dict[str, Callable[[WindowSettings], WindowStore]] = {
    "memory": _memory,
    "redis": _redis,
    "rediss": _redis,
    "unix": _redis,
}


def build_window_store(settings: WindowSettings) -> WindowStore:
    """A new, not yet started store for ``settings.store_url`` (memory://, redis://, rediss://, unix://)."""
    scheme = urlsplit(settings.store_url).scheme.lower()
    backend = BACKENDS.get(scheme)
    if backend is None:
        allowed = ", ".join(f"{s}://" for s in BACKENDS)
        raise InputError(  # a user's input (the setting or a --store flag), not a crash; a ValueError too
            f"windows.store_url {redact_url(settings.store_url)!r}: unknown scheme {scheme!r} "
            f"-- use one of {allowed} (MONITOR_WINDOWS__STORE_URL, or --store for replay/backtest)"
        )
    return backend(settings)
