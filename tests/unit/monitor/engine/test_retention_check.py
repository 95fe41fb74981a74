"""A retention too short for the history detection needs is a config error naming the keys, not a run with no
alert and exit 0 (60 s, 600 s and 900 s were accepted; found by review)."""

from __future__ import annotations

import pytest

from monitor.config import REPO_ROOT, ConfigError, load_settings
from monitor.engine.app import check_retention


def test_a_retention_shorter_than_the_baseline_detection_needs_is_refused_naming_the_keys() -> None:
    with pytest.raises(ConfigError, match=r"windows.retention_s = 600 keeps less than .*MONITOR_WINDOWS__RETENTION_S"):
        check_retention(load_settings(windows={"retention_s": 600}))


def test_multiscale_detection_also_needs_its_minimum_history() -> None:
    settings = load_settings(windows={"retention_s": 6 * 3600}, alerts={"detection": "multiscale"})
    with pytest.raises(ConfigError, match=r"alerts\.min_history_s"):
        check_retention(settings)
    check_retention(load_settings(windows={"retention_s": 6 * 3600}))  # enough for per-bucket detection


def test_the_shipped_configurations_pass() -> None:
    check_retention(load_settings())
    check_retention(load_settings(REPO_ROOT / "configs" / "production.toml"))
