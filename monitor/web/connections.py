"""A bound on the HTTP side's open connections, so slow or idle clients never use up the process's file
descriptors (Redis, Kafka and the sinks share them).

Measured before: 250 connections that never finished their headers were all held (aiohttp's default
keep-alive timeout is 3,630 s); at the descriptor limit ``/healthz`` stopped answering and asyncio logged a
traceback per failed ``accept()`` (100 MB in 40 s). Now three things hold:

* ``HttpServer`` gives aiohttp a short ``keepalive_timeout``. aiohttp arms it when a connection opens and
  again after each response, and closes the connection if no complete request (line and headers) has
  arrived by then: it bounds both an idle keep-alive connection and a client still sending its headers.
* ``ConnectionCap`` wraps aiohttp's protocol factory and keeps at most ``limit`` connections open. A new
  connection over the limit closes the oldest *idle* one (no request in progress and nothing left to send;
  aborted: its descriptor is freed at once), so a flood of held connections cannot lock out a probe or the
  analyst, who connect last. A connection still serving a request (a ``/metrics`` scrape, a large
  ``/windows``, a console page) is never cut: when every open connection is busy, the *new* one is closed
  instead. One log line per ``LOG_EVERY_S`` counts the closed ones.
* A connection whose client stopped reading (its transport paused writing: the send buffers are full) is aborted
  after ``WRITE_STALL_S`` without draining, and counts as cuttable at the cap meanwhile. Found by review: clients
  that pipelined requests and never read stayed "busy" for ever, and ``max_connections`` of them refused every new
  connection, ``/healthz`` and the Prometheus scrape included, each pinning megabytes of kernel send buffer.
* ``AcceptErrorFilter`` turns asyncio's traceback per failed ``accept()`` (EMFILE: the descriptor limit
  reached anyway, e.g. by another part of the process) into one line per ``LOG_EVERY_S`` with a count.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import Any, cast

import structlog

from monitor.logging import LogThrottle

log = structlog.get_logger(__name__)

LOG_EVERY_S = 10.0
WRITE_STALL_S = 30.0
"""A response that has not drained below the transport's low-water mark for this long: its client is not reading."""
"""At most one ``http_connections_closed_over_limit`` / ``http_accept_failed`` line per this many seconds."""
ACCEPT_FAILED = "socket.accept() out of system resource"
"""How asyncio's accept loop reports EMFILE/ENFILE (it retries the listening socket a second later)."""
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, forwarded to, and counted by the cap until it is lost."""

    __slots__ = ("_cap", "_inner", "_stall_timer", "_transport")

    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap) -> None:
        self._inner = inner
        self._cap = cap
        self._transport: asyncio.Transport | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        """Armed while the transport is paused for writing: aborts the connection at ``cap.write_stall_s``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)
        if self not in self._cap.open:  # closed over the limit before its transport existed
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cap.open.pop(self, None)
        self._disarm()
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._stall_timer is None:
            self._stall_timer = asyncio.get_running_loop().call_later(self._cap.write_stall_s, self._stalled)
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._disarm()
        self._inner.resume_writing()

    def _disarm(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        self._cap.stalled_aborted += 1
        left_out = self._cap.stall_throttle.allow()
        if left_out is not None:
            log.warning("http_client_not_reading", waited_s=self._cap.write_stall_s, left_out_since_last=left_out,
                        why="a response did not drain for this long: its client stopped reading; connection closed")
        self.abort()

    @property
    def stalled(self) -> bool:
        """Its client is not reading: the transport paused writing and has not resumed."""
        return self._stall_timer is not None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    @property
    def busy(self) -> bool:
        """A request is in progress (read, handled or its response written), queued, or still being sent.

        ``_request_in_progress`` and ``_messages`` are aiohttp's (3.14) ``RequestHandler`` state: the flag is
        set from the handler's start until its response is finished; parsed requests wait in ``_messages``
        (pipelining). A connection still sending its headers, or waiting for its next request, is idle.
        """
        inner = self._inner
        if getattr(inner, "_request_in_progress", False) or getattr(inner, "_messages", None):
            return True
        return self._transport is not None and self._transport.get_write_buffer_size() > 0


class ConnectionCap:
    """Protocol factory for ``loop.create_server``: ``factory``'s protocols, at most ``limit`` open at once."""

    def __init__(self, factory: Callable[[], Any], limit: int, throttle: LogThrottle | None = None,
                 write_stall_s: float = WRITE_STALL_S) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.factory = factory
        self.limit = limit
        self.write_stall_s = write_stall_s
        self.stalled_aborted = 0
        self.stall_throttle = LogThrottle(LOG_EVERY_S)
        self.open: dict[_Counted, None] = {}
        """Live connections, oldest first (a dict keeps insertion order)."""
        self.closed_over_limit = 0
        self._throttle = throttle or LogThrottle(LOG_EVERY_S)

    def __call__(self) -> asyncio.Protocol:
        counted = _Counted(self.factory(), self)
        while len(self.open) >= self.limit:
            idle = (next((c for c in self.open if not c.busy), None)
                    or next((c for c in self.open if c.stalled), None))  # then one whose client is not reading
            self._closed_one()
            if idle is None:  # every connection is serving a request: refuse the newcomer, cut none
                return counted  # not in ``open``: ``connection_made`` aborts it
            del self.open[idle]
            idle.abort()
        self.open[counted] = None
        return counted

    def abort_stalled(self) -> None:
        """Abort every connection whose client is not reading (at shutdown: nothing would drain them)."""
        for counted in [c for c in self.open if c.stalled]:
            counted.abort()

    def _closed_one(self) -> None:
        self.closed_over_limit += 1
        left_out = self._throttle.allow()
        if left_out is not None:
            log.warning("http_connections_closed_over_limit", limit=self.limit, left_out_since_last=left_out,
                        fix="if these are real clients, raise http.max_connections (MONITOR_HTTP__MAX_CONNECTIONS)")


class AcceptErrorFilter(logging.Filter):
    """asyncio's ``socket.accept() out of system resource`` ERROR + traceback, one line per ``every_s``."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.throttle = LogThrottle(every_s, clock) if clock is not None else LogThrottle(every_s)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if (not isinstance(exc, OSError) or exc.errno not in _OUT_OF_RESOURCES
                or not str(record.msg).startswith(ACCEPT_FAILED)):
            return True
        left_out = self.throttle.allow()
        if left_out is None:
            return False
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = (f"http_accept_failed error={exc.strerror!r} left_out_since_last={left_out} -- new connections "
                      "wait until descriptors are free: raise the open-file limit (LimitNOFILE, ulimit -n) or "
                      "lower http.max_connections")
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


ACCEPT_ERROR_FILTER = AcceptErrorFilter()


def quiet_accept_errors() -> None:
    """Install the filter on asyncio's logger (idempotent: a filter is kept once)."""
    logging.getLogger("asyncio").addFilter(ACCEPT_ERROR_FILTER)
