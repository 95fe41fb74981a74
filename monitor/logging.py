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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "apscheduler", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
