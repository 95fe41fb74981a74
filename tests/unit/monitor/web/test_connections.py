"""Slow and idle HTTP clients cannot hold the daemon's file descriptors (monitor/web/connections.py).

Measured before: 250 connections that never finished their headers were held for aiohttp's default
keep-alive of 3,630 s; at the descriptor limit /healthz stopped answering and asyncio logged a traceback
per failed accept() (100 MB in 40 s).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from structlog.testing import capture_logs

from monitor.config import Settings
from monitor.web.connections import ACCEPT_ERROR_FILTER, AcceptErrorFilter
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore

HALF_SENT = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: "
"""A request whose headers never end (slowloris)."""


def _server(**limits: float) -> HttpServer:
    return HttpServer("127.0.0.1", 0, MemoryWindowStore(60, 3600), lambda: True, **limits)  # type: ignore[arg-type]


async def _half_sent(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HALF_SENT)
    await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within_s) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_the_defaults_bound_connections_in_time_and_number() -> None:
    http = Settings().http
    assert (http.keepalive_timeout_s, http.max_connections) == (15.0, 256)
    assert (_server().keepalive_timeout_s, _server().max_connections) == (15.0, 256)


async def test_a_client_that_never_finishes_its_headers_is_closed_after_the_keepalive_timeout() -> None:
    async with _server(keepalive_timeout_s=0.5) as http:
        assert http.bound_port
        started = time.monotonic()
        reader, writer = await _half_sent(http.bound_port)
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", http.bound_port)  # sends nothing
        assert await _closed_by_server(reader, 5.0)
        assert await _closed_by_server(idle_reader, 5.0)
        assert time.monotonic() - started < 3.0
        for w in (writer, idle_writer):
            w.close()


async def test_connections_over_the_cap_close_the_oldest_and_healthz_still_answers() -> None:
    async with _server(max_connections=4) as http:
        assert http.bound_port and http.connections is not None
        held = [await _half_sent(http.bound_port) for _ in range(10)]
        await asyncio.sleep(0.2)
        assert len(http.connections.open) == 4
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{http.bound_port}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            assert resp.status == 200
        closed = [await _closed_by_server(r, 0.5) for r, _ in held]
        assert closed[:7] == [True] * 7  # the six over the cap, and one more for /healthz: the oldest first
        assert not any(closed[7:])  # the newest are still served (until the keep-alive timeout)
        assert http.connections.closed_over_limit == 7 and len(http.connections.open) <= 4
        for _, w in held:
            w.close()


async def _slow_stream(request: web.Request) -> web.StreamResponse:
    """A large body going out slowly (a big /windows, a /metrics scrape, a console page to a slow reader)."""
    resp = web.StreamResponse()
    await resp.prepare(request)
    for _ in range(10):
        await resp.write(b"x" * 1000)
        await asyncio.sleep(0.05)
    await resp.write_eof()
    return resp


def test_the_request_handler_still_has_the_state_the_cap_reads_to_tell_a_busy_connection() -> None:
    # aiohttp internals (3.14): if an upgrade renames them, every connection looks idle again
    assert {"_request_in_progress", "_messages"} <= set(RequestHandler.__slots__)


async def _fetch_slow(session: aiohttp.ClientSession, port: int) -> int:
    """GET /slow to the end; how many bytes arrived."""
    async with session.get(f"http://127.0.0.1:{port}/slow", timeout=aiohttp.ClientTimeout(total=10)) as resp:
        return len(await resp.read())


async def test_a_response_in_flight_survives_new_connections_over_the_cap() -> None:
    http = _server(max_connections=4)
    http.add_routes([web.get("/slow", _slow_stream)])
    async with http, aiohttp.ClientSession() as session:
        assert http.bound_port and http.connections is not None

        in_flight = asyncio.create_task(_fetch_slow(session, http.bound_port))
        await asyncio.sleep(0.15)  # its response is being sent
        held = [await asyncio.open_connection("127.0.0.1", http.bound_port) for _ in range(6)]
        await asyncio.sleep(0.1)
        assert await in_flight == 10_000  # before: aborted (ClientPayloadError: payload is not completed)
        closed = [await _closed_by_server(r, 0.3) for r, _ in held]
        assert closed == [True] * 3 + [False] * 3  # the oldest idle ones went instead
        assert http.connections.closed_over_limit == 3
        for _, w in held:
            w.close()


async def test_when_every_connection_is_busy_the_new_one_is_closed_not_a_response_in_flight() -> None:
    http = _server(max_connections=2)
    http.add_routes([web.get("/slow", _slow_stream)])
    async with http, aiohttp.ClientSession() as session:
        assert http.bound_port and http.connections is not None

        in_flight = [asyncio.create_task(_fetch_slow(session, http.bound_port)) for _ in range(2)]
        await asyncio.sleep(0.15)
        reader, writer = await asyncio.open_connection("127.0.0.1", http.bound_port)
        assert await _closed_by_server(reader, 1.0)  # the newcomer is refused
        assert await asyncio.gather(*in_flight) == [10_000, 10_000]
        assert http.connections.closed_over_limit == 1
        writer.close()


async def test_closing_over_the_cap_logs_one_line_per_interval_with_the_count() -> None:
    async with _server(max_connections=1) as http:
        assert http.bound_port
        with capture_logs() as logs:
            held = [await _half_sent(http.bound_port) for _ in range(20)]
            await asyncio.sleep(0.2)
        lines = [e for e in logs if e["event"] == "http_connections_closed_over_limit"]
        assert len(lines) == 1 and lines[0]["limit"] == 1 and "MONITOR_HTTP__MAX_CONNECTIONS" in lines[0]["fix"]
        for _, w in held:
            w.close()


async def test_an_accept_out_of_descriptors_is_one_line_per_interval_not_a_traceback_each(
        caplog: pytest.LogCaptureFixture) -> None:
    async with _server():
        assert ACCEPT_ERROR_FILTER in logging.getLogger("asyncio").filters  # installed by the server's start
    now = [1000.0]
    quiet = AcceptErrorFilter(every_s=10.0, clock=lambda: now[0])
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.removeFilter(ACCEPT_ERROR_FILTER)
    asyncio_log.addFilter(quiet)
    loop = asyncio.get_running_loop()
    emfile = OSError(errno.EMFILE, "Too many open files")
    try:
        caplog.set_level(logging.WARNING, logger="asyncio")
        for _ in range(500):  # what asyncio's accept loop reports, through its own default handler
            loop.call_exception_handler({"message": "socket.accept() out of system resource", "exception": emfile})
        now[0] += 10.0
        loop.call_exception_handler({"message": "socket.accept() out of system resource", "exception": emfile})
        loop.call_exception_handler({"message": "something else", "exception": ValueError("kept")})
    finally:
        asyncio_log.removeFilter(quiet)
        asyncio_log.addFilter(ACCEPT_ERROR_FILTER)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert [(r.levelno, r.exc_info is None) for r in records[:2]] == [(logging.WARNING, True)] * 2
    assert "left_out_since_last=0" in records[0].getMessage()
    assert "left_out_since_last=499" in records[1].getMessage() and "LimitNOFILE" in records[1].getMessage()
    assert len(records) == 3 and records[2].exc_info is not None  # any other loop error is left alone


BIG = b"x" * 8_000_000
"""More than the loopback's send and receive buffers hold: a client that does not read stalls the response."""


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=BIG)


def _not_reading(port: int) -> socket.socket:
    """A client that asks for a large response (pipelined, twice) and never reads it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2)
    return sock


async def _healthz(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return resp.status


async def test_clients_that_never_read_their_responses_cannot_lock_healthz_out_at_the_cap() -> None:
    """Found by review: such a connection counted as busy for ever, and max_connections of them refused every new
    connection, /healthz and the Prometheus scrape included."""
    http = _server(max_connections=4, write_stall_s=60.0)
    http.add_routes([web.get("/big", _big)])
    async with http:
        assert http.bound_port and http.connections is not None
        held = [_not_reading(http.bound_port) for _ in range(4)]
        await asyncio.sleep(0.5)
        assert all(c.busy and c.stalled for c in http.connections.open)
        assert await _healthz(http.bound_port) == 200
        assert http.connections.closed_over_limit == 1, "one non-reading connection was cut to make room"
        for sock in held:
            sock.close()


async def test_a_client_that_stops_reading_is_closed_after_the_write_stall_and_a_reading_one_is_served() -> None:
    http = _server(write_stall_s=0.5)
    http.add_routes([web.get("/big", _big)])
    async with http, aiohttp.ClientSession() as session:
        assert http.bound_port and http.connections is not None
        with capture_logs() as logs:
            held = _not_reading(http.bound_port)
            async with session.get(f"http://127.0.0.1:{http.bound_port}/big",
                                   timeout=aiohttp.ClientTimeout(total=10)) as resp:
                assert len(await resp.read()) == len(BIG), "a client that reads is never cut"
            await asyncio.sleep(1.5)  # three times the stall
        assert http.connections.stalled_aborted == 1
        assert [e["waited_s"] for e in logs if e["event"] == "http_client_not_reading"] == [0.5]
        held.close()


async def test_stopping_does_not_wait_for_responses_nobody_reads() -> None:
    http = _server(write_stall_s=60.0)
    http.add_routes([web.get("/big", _big)])
    async with http:
        assert http.bound_port
        held = [_not_reading(http.bound_port) for _ in range(2)]
        await asyncio.sleep(0.5)
        started = time.monotonic()
    assert time.monotonic() - started < 5.0  # before: the runner's cleanup waited for them (60 s)
    for sock in held:
        sock.close()
