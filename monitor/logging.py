"""structlog configuration: JSON lines in production, readable console output for humans.

Everything (including stdlib ``logging`` from aiokafka/apscheduler) goes through one renderer so
log shippers see one format. Secrets never reach the logs: ``redact_secrets`` masks known keys.
Loops that meet the same failure again and again (an outage) log through a ``LogThrottle``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

REPEAT_LOG_EVERY_S = 60.0
"""A third-party log line that keeps repeating goes out once per this long, with a count (``RepeatFilter``)."""
THROTTLED_LIBRARIES = ("aiokafka",)
"""Loggers whose repeated lines are throttled: aiokafka logs every reconnect and metadata attempt at ERROR."""
_SECRET_KEYS = ("password", "secret", "token", "sasl_password", "webhook_secret")


class LogThrottle:
    """Lets one event through per ``every_s`` and counts the ones it held back.

    Why: a loop that polls a dependency every second would otherwise write an ERROR line per poll for
    the whole of an outage; one line per ``every_s`` with the count says the same.
    """

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last_s: float | None = None
        self.held_back = 0

    def allow(self) -> int | None:
        """The number held back since the last one let through, or None to hold this one back too."""
        now = self._clock()
        if self._last_s is not None and now - self._last_s < self.every_s:
            self.held_back += 1
            return None
        self._last_s, held = now, self.held_back
        self.held_back = 0
        return held

    def reset(self) -> None:
        """The condition ended: the next occurrence is news again and goes through at once."""
        self._last_s, self.held_back = None, 0


class RepeatFilter(logging.Filter):
    """The first of each repeating library log line goes out at once, then one per ``every_s`` with a count.

    Why: aiokafka logs each reconnect, metadata and fetch attempt of an outage at ERROR. Measured with the
    daemon on tansu killed for 60 s: 4,570 lines (76 a second; "Unable connect to node ..." alone 2,315).
    Lines are keyed by logger, level and message template (``record.msg`` before its arguments), so two
    different errors are never merged; at most ``max_keys`` templates are remembered.
    """

    def __init__(self, prefixes: tuple[str, ...] = THROTTLED_LIBRARIES, every_s: float = REPEAT_LOG_EVERY_S,
                 max_keys: int = 1_000, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.every_s = every_s
        self.max_keys = max_keys
        self._clock = clock
        self._throttles: dict[tuple[str, int, str], LogThrottle] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        throttle = self._throttles.get(key)
        if throttle is None:
            if len(self._throttles) >= self.max_keys:
                self._throttles.clear()
            throttle = self._throttles[key] = LogThrottle(self.every_s, self._clock)
        left_out = throttle.allow()
        if left_out is None:
            return False
        if left_out:
            record.msg = f"{record.msg} [{left_out} more like this left out since the last one]"
        return True


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "***"
    return event


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "apscheduler", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
