"""A fatal error as one line: what failed and which setting to look at; the traceback goes to the
debug log only (``MONITOR_LOG__LEVEL=DEBUG``), never as a wall of text on an operator's terminal.

Errors raised inside the pipeline's task group arrive wrapped in an ``ExceptionGroup``: the first
real error inside it is the one reported.
"""

from __future__ import annotations

import asyncio

import structlog
from redis.exceptions import ResponseError

log = structlog.get_logger(__name__)

MAX_LINE_CHARS = 600
# (module prefix of the exception's class, setting, environment variable, what to check)
BACKEND_HINTS = (
    ("redis.", "windows.store_url", "MONITOR_WINDOWS__STORE_URL", "check that redis-server is up and reachable"),
    ("aiokafka.", "kafka.bootstrap_servers", "MONITOR_KAFKA__BOOTSTRAP_SERVERS",
     "check that the Kafka broker is up and reachable"),
)


class StartupError(Exception):
    """A start-up failure whose message already names the setting and the fix: printed as it is."""


class ShutdownIncompleteError(Exception):
    """A stop that could not drain within ``shutdown_timeout_s`` (a dependency down): printed as it is, exit 1."""


def root_cause(exc: BaseException) -> BaseException:
    """The first error in (nested) exception groups that is not a cancellation, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup):
        real = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (real or list(exc.exceptions))[0]
    return exc


def one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_LINE_CHARS else flat[: MAX_LINE_CHARS - 3] + "..."


def fatal_line(exc: BaseException, command: str) -> str:
    """``monitor <command> failed: <what>`` plus the setting to check when the backend is known."""
    cause = root_cause(exc)
    what = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    if isinstance(cause, ResponseError):  # Redis answered, and said no: not a reachability problem
        return one_line(f"monitor {command} failed: windows.store_url: Redis refused a command ({what}) -- "
                        "check its maxmemory, the ACL user's permissions (scripts, keys) and its version "
                        "(>= 7.0)")
    module = type(cause).__module__ + "."
    for prefix, setting, env, check in BACKEND_HINTS:
        if module.startswith(prefix):
            return one_line(f"monitor {command} failed: {setting}: {what} -- {check} (or set {env})")
    if isinstance(cause, OSError) and cause.filename is not None:
        return one_line(f"monitor {command} failed: {cause.strerror or what} ({cause.filename}) -- check the paths "
                        "in the configuration (source.*, alerts.sinks file://, classifier.*)")
    return one_line(f"monitor {command} failed: {what} -- set MONITOR_LOG__LEVEL=DEBUG for the traceback")


def report_fatal(exc: BaseException, command: str) -> str:
    """Log the traceback at debug level and return the line to print."""
    log.debug("fatal_error_traceback", command=command, exc_info=exc)
    return fatal_line(exc, command)
