"""Build the alerting stack from settings: memory or Redis backends chosen by ``windows.store_url``.

``memory://`` -> in-process state and outbox (embedded mode: nothing survives a restart);
``redis://`` / ``rediss://`` -> Redis under ``<windows.key_prefix>:alerts`` (survives restarts,
shared by every daemon instance; the silences CLI needs this).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from alerts.engine import AlertEngine
from alerts.outbox import MemoryOutbox, Outbox, RedisOutbox
from alerts.sinks import build_sinks
from alerts.state import AlertStateStore, MemoryAlertStateStore, RedisAlertStateStore
from monitor.config import ConfigError, Settings
from monitor.time_bounds import EventTimeBounds
from monitor.windows.base import WindowStore

REDIS_SCHEMES = frozenset({"redis", "rediss"})


def alerts_key_prefix(settings: Settings) -> str:
    return f"{settings.windows.key_prefix}:alerts"


def _backend(settings: Settings) -> str:
    scheme = urlsplit(settings.windows.store_url).scheme
    if scheme == "memory" or scheme in REDIS_SCHEMES:
        return scheme
    raise ConfigError(
        f"windows.store_url scheme {scheme!r} is not supported by alerts -- use memory:// or redis://"
    )


def uses_redis(settings: Settings) -> bool:
    return _backend(settings) in REDIS_SCHEMES


def build_state_store(settings: Settings, *, wait_at_start: bool = True) -> AlertStateStore:
    """``wait_at_start=False`` for an operator's command: a Redis refusing for now is an error, not a wait."""
    if uses_redis(settings):
        store = RedisAlertStateStore(
            settings.windows.store_url, alerts_key_prefix(settings), settings.alerts.max_silences
        )
        store.wait_at_start = wait_at_start
        return store
    return MemoryAlertStateStore(settings.alerts.max_silences)


def build_outbox(settings: Settings, sink_names: Sequence[str], *, wait_at_start: bool = True,
                 read_only: bool = False) -> Outbox:
    """``wait_at_start=False`` for an operator's command: a Redis refusing for now is an error, not a wait;
    ``read_only``: a listing, which writes nothing at start."""
    a = settings.alerts
    if uses_redis(settings):
        box = RedisOutbox(
            settings.windows.store_url, alerts_key_prefix(settings), sink_names,
            max_entries=a.outbox_max_entries, ids_kept=a.outbox_delivered_ids_kept,
        )
        box.wait_at_start, box.read_only = wait_at_start, read_only
        return box
    return MemoryOutbox(sink_names, max_entries=a.outbox_max_entries, ids_kept=a.outbox_delivered_ids_kept)


def build_alerting(settings: Settings, store: WindowStore) -> AlertEngine:
    """The engine over ``store`` (the pipeline's window store), with state/outbox/sinks from settings."""
    sinks = build_sinks(settings)
    return AlertEngine(
        store,
        settings.alerts,
        build_state_store(settings),
        build_outbox(settings, [s.name for s in sinks]),
        sinks,
        time_bounds=EventTimeBounds.from_settings(settings.source),
    )
