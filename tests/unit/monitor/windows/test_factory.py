"""``build_window_store`` picks the backend from ``windows.store_url``'s scheme."""

from __future__ import annotations

import pytest

from monitor.config import WindowSettings
from monitor.windows.factory import build_window_store
from monitor.windows.memory import MemoryWindowStore
from monitor.windows.redis import RedisWindowStore


def test_memory_scheme_builds_a_memory_store_with_the_window_settings() -> None:
    store = build_window_store(WindowSettings(store_url="memory://", bucket_s=30, retention_s=120,
                                              top_negative_per_bucket=7))  # fmt: skip

    assert isinstance(store, MemoryWindowStore)
    assert (store.bucket_s, store.retention_s, store.top_n) == (30, 120, 7)


@pytest.mark.parametrize(
    "url", ["redis://:pw@127.0.0.1:6379/0", "rediss://cache.internal:6380/1", "unix:///run/redis.sock?db=0",
            "REDIS://127.0.0.1"],
)  # fmt: skip
def test_redis_schemes_build_an_unstarted_redis_store_with_the_window_settings(url: str) -> None:
    store = build_window_store(WindowSettings(store_url=url, key_prefix="bt", bucket_s=30, retention_s=120,
                                              top_negative_per_bucket=7))  # fmt: skip

    assert isinstance(store, RedisWindowStore)
    assert (store.url, store.keys.tag) == (url, "{bt}")
    assert (store.bucket_s, store.retention_s, store.top_n) == (30, 120, 7)
    assert not store.started


@pytest.mark.parametrize("url", ["postgres://:pw@db/0", "127.0.0.1:6379", ""])
def test_unknown_scheme_is_rejected_naming_the_setting_and_the_allowed_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"windows\.store_url") as raised:
        build_window_store(WindowSettings(store_url=url))

    message = str(raised.value)
    assert all(s in message for s in ["memory://", "redis://", "rediss://", "unix://"])
    assert ":pw@" not in message


def test_an_unknown_store_scheme_is_a_config_error_naming_the_setting_and_the_flag() -> None:
    from monitor.config import ConfigError

    with pytest.raises(ConfigError, match=r"windows\.store_url 'bogus://x': unknown scheme .* or --store"):
        build_window_store(WindowSettings(store_url="bogus://x"))
