"""A host clock behind the publishers' (most messages dated past it) delays every bucket close and alert by
the difference, since event time may not run ahead of the clock: the daemon says so, at most every
ten minutes, with how far ahead the messages are and what to check."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from monitor.config import load_settings
from monitor.engine.app import MonitorApp
from monitor.windows.memory import MemoryWindowStore
from tests.fakes import RecordingClassifier


def _app() -> MonitorApp:
    settings = load_settings(classifier={"kind": "lexicon"}, http={"enabled": False}, alerts={"sinks": []})
    return MonitorApp(settings, classifier=RecordingClassifier(), store=MemoryWindowStore(60, 3600))


def _skewed(app: MonitorApp, ahead_s: int, messages: int, on_time: int = 0) -> list[dict[str, object]]:
    now = int(time.time())
    for i in range(messages):
        app.pipeline.watermark.observe(now + ahead_s + i)
    for i in range(on_time):
        app.pipeline.watermark.observe(now - 60 + i)
    with capture_logs() as logs:
        app._check_clock_skew()
    return [e for e in logs if e["event"] == "event_time_ahead_of_clock"]


def test_most_messages_dated_past_the_host_clock_are_reported_with_how_far_and_the_fix() -> None:
    app = _app()
    [warning] = _skewed(app, ahead_s=900, messages=20, on_time=5)
    assert warning["log_level"] == "warning" and warning["ahead"] == 20 and warning["messages"] == 25
    assert 900 <= int(warning["most_ahead_s"]) <= 925  # type: ignore[call-overload]
    assert "timedatectl" in str(warning["fix"])
    assert _skewed(app, ahead_s=900, messages=20) == [], "once per SKEW_LOG_EVERY_S"


def test_a_few_fast_publishers_among_on_time_messages_are_not_a_clock_problem() -> None:
    assert _skewed(_app(), ahead_s=900, messages=2, on_time=20) == []
