"""``monitor run`` on Kafka does not page for episodes in old data (alerts.max_page_age_s); history runs always do."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import Settings, load_settings
from monitor.engine.app import MonitorApp


def _settings(kind: str, **alerts: object) -> Settings:
    return load_settings(source={"kind": kind, "replay_paths": [Path("x.jsonl")]},
                         kafka={"bootstrap_servers": "127.0.0.1:1"}, classifier={"kind": "lexicon"},
                         alerts={"sinks": [], **alerts}, http={"enabled": False})


def test_a_live_kafka_run_holds_back_pages_of_buckets_older_than_max_page_age_s() -> None:
    assert MonitorApp(_settings("kafka")).alerting.page_max_age_s == 6 * 3600
    assert MonitorApp(_settings("kafka", max_page_age_s=7200)).alerting.page_max_age_s == 7200


@pytest.mark.parametrize(("kind", "history"), [("replay", False), ("kafka", True), ("replay", True)])
def test_file_replays_and_history_runs_page_whatever_the_age(kind: str, history: bool) -> None:
    """The embedded demo replays a file of old dates through ``monitor run``; replays and backtests report every
    alert."""
    assert MonitorApp(_settings(kind), history=history).alerting.page_max_age_s == 0


def test_a_max_page_age_shorter_than_a_live_buckets_age_when_judged_is_a_config_error_naming_the_key() -> None:
    """Found by review: 300 s against 600 s of lateness was accepted and muted every live page."""
    from monitor.config import ConfigError

    with pytest.raises(ConfigError, match=r"alerts\.max_page_age_s = 300"):
        MonitorApp(_settings("kafka", max_page_age_s=300))
    assert MonitorApp(_settings("kafka", max_page_age_s=0)).alerting.page_max_age_s == 0
