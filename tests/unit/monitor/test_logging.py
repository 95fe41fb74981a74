"""Logging set-up: repeated library lines are throttled, secrets are masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from monitor.logging import LogThrottle, RepeatFilter, configure_logging


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeating_library_line_goes_out_once_then_once_per_interval_with_the_count() -> None:
    now = [0.0]
    flt = RepeatFilter(("aiokafka",), every_s=60.0, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    passed = [r for r in (record("aiokafka.conn", template, 1, f"attempt {i}") for i in range(500)) if flt.filter(r)]
    assert len(passed) == 1 and passed[0].getMessage() == "Unable connect to node with id 1: attempt 0"
    now[0] = 60.0
    late = record("aiokafka.conn", template, 1, "attempt 500")
    assert flt.filter(late)
    assert late.getMessage() == ("Unable connect to node with id 1: attempt 500 "
                                 "[499 more like this left out since the last one]")


def test_different_templates_levels_and_other_loggers_are_never_merged() -> None:
    flt = RepeatFilter(("aiokafka",), every_s=60.0, clock=lambda: 0.0)
    assert flt.filter(record("aiokafka.conn", "Unable connect to node %s", 1))
    assert flt.filter(record("aiokafka.cluster", "Unable to update metadata from %s", 1))
    assert flt.filter(record("aiokafka.conn", "Unable connect to node %s", 1, level=logging.WARNING))
    assert all(flt.filter(record("monitor.engine", "same line")) for _ in range(10))


def test_the_filter_remembers_a_bounded_number_of_templates() -> None:
    flt = RepeatFilter(("aiokafka",), max_keys=10, clock=lambda: 0.0)
    for i in range(1_000):
        flt.filter(record("aiokafka", f"template {i}"))
    assert len(flt._throttles) <= 10


def test_a_reset_throttle_lets_the_next_occurrence_through_at_once() -> None:
    throttle = LogThrottle(60.0, clock=lambda: 0.0)
    assert throttle.allow() == 0 and throttle.allow() is None
    throttle.reset()
    assert throttle.allow() == 0


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logging")
def test_the_daemons_logging_writes_one_line_for_an_aiokafka_reconnect_storm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    for i in range(200):
        logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s: %s", 111, f"refused {i}")
    logging.getLogger("aiokafka.consumer").error("Failed fetch messages from %s: %s", 111, "NodeNotReadyError")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "Unable connect to node with id 111: refused 0" in lines[0]
    assert "Failed fetch messages from 111" in lines[1]
