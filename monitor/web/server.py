"""HTTP side door: liveness, readiness, Prometheus metrics and a read-only view of windows.

``/healthz`` answers while the process runs; ``/readyz`` only once every component started, the
pipeline has not failed and no dependency is failing (503 with the reasons otherwise); ``/metrics``
is the Prometheus text format; ``/windows`` shows the buckets of one key over the ``minutes`` up to
the watermark (event time: a replay or a lag still shows the data being judged; the wall clock only
before any event). Extra routes (alerts, silences, the dashboard) are added by the app via
``add_routes``. Connections are bounded in time (``keepalive_timeout_s``: idle, or still sending headers)
and in number (``max_connections``): see monitor/web/connections.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.fatal import StartupError
from monitor.lifecycle import Service
from monitor.web.connections import WRITE_STALL_S, ConnectionCap, quiet_accept_errors
from monitor.web.errors import contain_errors, quiet_client_errors
from monitor.web.headers import install_headers
from monitor.web.host_check import allowed_hosts_only
from monitor.windows.base import WindowStore
from monitor.windows.buckets import ALL_KEY

log = structlog.get_logger(__name__)
MAX_WINDOW_BUCKETS = 2_000
KEEPALIVE_TIMEOUT_S = 15.0
"""Default of ``http.keepalive_timeout_s`` (aiohttp's own default, 3,630 s, held slow clients for an hour)."""
MAX_CONNECTIONS = 256
"""Default of ``http.max_connections``."""
LISTEN_BACKLOG = 128
LISTENER_CLOSE_TIMEOUT_S = 5.0


def bind_failure(host: str, port: int, exc: OSError) -> str:
    """What went wrong binding the HTTP port, with the setting that fixes it."""
    why = {errno.EADDRINUSE: "is in use by another process", errno.EACCES: "needs privileges (ports < 1024)",
           errno.EADDRNOTAVAIL: "is not an address of this host"}.get(exc.errno or 0, exc.strerror or str(exc))
    return (f"http {host}:{port} {why} -- set http.port / http.host (MONITOR_HTTP__PORT, MONITOR_HTTP__HOST), "
            "or http.enabled = false to run without the HTTP side")


def is_integer(text: str) -> bool:
    """An optional minus and 1 to 18 ASCII digits: ``int`` also took ``1_000`` and fullwidth digits, and numbers of
    thousands of digits (found by review)."""
    digits = text.removeprefix("-")
    return 0 < len(digits) <= 18 and digits.isascii() and digits.isdigit()


class HttpServer(Service):
    def __init__(
        self, host: str, port: int, store: WindowStore, ready: Callable[[], bool],
        event_time_s: Callable[[], int | None] = lambda: None,
        not_ready_reasons: Callable[[], list[str]] = list, public_url: str = "", allowed_hosts: Sequence[str] = (),
        max_connections: int = MAX_CONNECTIONS, keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S,
        write_stall_s: float = WRITE_STALL_S,
    ) -> None:
        self.event_time_s = event_time_s
        self.event_now_s: Callable[[], Awaitable[int]] | None = None
        """The console's event clock (monitor.web.install sets it): after a restart, before this instance saw an
        event, "now" is the stored detection cursor, as on every console page (``/windows`` used the wall clock,
        and showed nothing during a backlog or a replay; found by review)."""
        self.host = host
        self.port = port
        self.store = store
        self.ready = ready
        self.not_ready_reasons = not_ready_reasons
        self.max_connections = max_connections
        self.keepalive_timeout_s = keepalive_timeout_s
        """Both may be changed until ``start`` (monitor.web.install sets them from ``[http]``)."""
        self.write_stall_s = write_stall_s
        """How long a response may stay undrained (a client not reading) before its connection is aborted."""
        host_guard = allowed_hosts_only(host, public_url, allowed_hosts)
        self.app = web.Application(middlewares=[contain_errors(), *([host_guard] if host_guard else [])])
        install_headers(self.app)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/windows", self._windows)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.connections: ConnectionCap | None = None
        self.bound_port: int | None = None

    def add_routes(self, routes: Sequence[web.AbstractRouteDef]) -> None:
        self.app.add_routes(routes)

    async def _start(self) -> None:
        quiet_client_errors()
        quiet_accept_errors()
        # keepalive_timeout is also aiohttp's only bound on the time to send a request's headers (armed when
        # a connection opens, again after each response)
        self._runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=self.keepalive_timeout_s)
        await self._runner.setup()
        assert self._runner.server is not None
        # not web.TCPSite: the listening socket gets aiohttp's protocol factory wrapped in the connection cap
        self.connections = ConnectionCap(self._runner.server, self.max_connections, write_stall_s=self.write_stall_s)
        try:
            self._listener = await asyncio.get_running_loop().create_server(
                self.connections, self.host, self.port, backlog=LISTEN_BACKLOG)
        except OSError as exc:
            await self._runner.cleanup()
            raise StartupError(bind_failure(self.host, self.port, exc)) from exc
        sockets = self._listener.sockets
        self.bound_port = int(sockets[0].getsockname()[1]) if sockets else self.port
        log.info("http_listening", host=self.host, port=self.bound_port)

    async def _stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # stop accepting; the runner's cleanup closes the open connections
        if self.connections is not None:
            self.connections.abort_stalled()  # the cleanup waits for responses: not for those nobody reads
        if self._runner is not None:
            await self._runner.cleanup()
        if self._listener is not None:
            with contextlib.suppress(TimeoutError):  # 3.12+ waits for every connection's transport here
                await asyncio.wait_for(self._listener.wait_closed(), LISTENER_CLOSE_TIMEOUT_S)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        ok = self.ready()
        body: dict[str, object] = {"ready": ok}
        if not ok:
            body["reasons"] = self.not_ready_reasons()
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _event_now_s(self) -> int:
        if self.event_now_s is not None:
            return await self.event_now_s()
        now = self.event_time_s()
        return int(time.time()) if now is None else now

    async def _windows(self, request: web.Request) -> web.Response:
        key = request.query.get("key", ALL_KEY)
        minutes_raw, end_raw = request.query.get("minutes", "60"), request.query.get("end_s")
        if not all(map(is_integer, (minutes_raw, "0" if end_raw is None else end_raw))):
            return web.json_response({"error": "minutes and end_s must be integers (ASCII digits)"}, status=400)
        minutes = int(minutes_raw)
        end_s = int(end_raw) if end_raw is not None else await self._event_now_s()
        if minutes < 1:
            return web.json_response({"error": f"minutes must be 1 or more, not {minutes}"}, status=400)
        start_s = end_s - minutes * 60
        buckets = await self.store.buckets(key, start_s, end_s + self.store.bucket_s)
        rows = [
            {"start_s": b.start_s, "volume": b.volume, "negative": b.negative, "neutral": b.neutral,
             "positive": b.positive, "repeats": b.repeats, "neg_share": round(b.neg_share, 4),
             "mean_score": round(b.mean_score, 4)}
            for b in buckets[-MAX_WINDOW_BUCKETS:]
        ]
        return web.json_response({"key": key, "bucket_s": self.store.bucket_s, "buckets": rows,
                                  "total": len(buckets), "truncated": len(buckets) > MAX_WINDOW_BUCKETS})
