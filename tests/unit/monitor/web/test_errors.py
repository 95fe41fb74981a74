"""What the HTTP side answers and logs when a request cannot be served (monitor/web/errors.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from monitor.logging import LogThrottle
from monitor.web.errors import RETRY_AFTER_S, contain_errors, quiet_client_errors

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def raising(exc: BaseException) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        raise exc

    return handler


@pytest_asyncio.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[TestClient[web.Request, web.Application]]]]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(handler: Handler, throttle: LogThrottle | None = None) -> TestClient[web.Request, web.Application]:
        app = web.Application(middlewares=[contain_errors(throttle)])
        app.router.add_get("/x", handler)
        app.router.add_static("/static", tmp_path)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def test_an_unreachable_dependency_is_a_503_in_json_with_retry_after_for_api_clients(serve) -> None:  # type: ignore[no-untyped-def]
    client = await serve(raising(RedisConnectionError("Error 111 connecting to 127.0.0.1:6379")))
    resp = await client.get("/x")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == str(RETRY_AFTER_S)
    body = await resp.json()
    assert body["retry_after_s"] == RETRY_AFTER_S
    assert "unreachable" in body["error"] and "Error 111 connecting to 127.0.0.1:6379" in body["error"]


async def test_a_browser_gets_a_page_that_retries_by_itself_with_the_reason_escaped(serve) -> None:  # type: ignore[no-untyped-def]
    client = await serve(raising(TimeoutError("<script>alert(1)</script> timed out")))
    resp = await client.get("/x", headers={"Accept": "text/html,application/xhtml+xml"})
    page = await resp.text()
    assert resp.status == 503 and resp.content_type == "text/html"
    assert f'<meta http-equiv="refresh" content="{RETRY_AFTER_S}">' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; timed out" in page and "<script>" not in page


async def test_a_bug_is_a_json_500_and_one_log_line_with_the_exception(serve) -> None:  # type: ignore[no-untyped-def]
    client = await serve(raising(KeyError("oops")))
    with capture_logs() as logs:
        resp = await client.get("/x?a=1")
    assert resp.status == 500
    assert "http_handler_failed" in (await resp.json())["error"]
    (entry,) = [e for e in logs if e["event"] == "http_handler_failed"]
    assert entry["path"] == "/x" and isinstance(entry["exc_info"], KeyError)


async def test_http_errors_a_handler_raises_keep_their_status(serve) -> None:  # type: ignore[no-untyped-def]
    client = await serve(raising(web.HTTPBadRequest(text="bad range")))
    resp = await client.get("/x")
    assert (resp.status, await resp.text()) == (400, "bad range")
    assert (await client.get("/nowhere")).status == 404


async def test_a_static_name_the_filesystem_refuses_is_a_404(serve) -> None:  # type: ignore[no-untyped-def]
    client = await serve(raising(AssertionError("not called")))
    assert (await client.get("/static/" + "9" * 5000)).status == 404  # ENAMETOOLONG: was a bare 500
    assert (await client.get("/static/missing.css")).status == 404


async def test_an_outage_logs_one_line_per_interval_with_the_count_left_out(serve) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    client = await serve(raising(RedisConnectionError("down")), LogThrottle(30.0, clock))
    with capture_logs() as logs:
        for _ in range(3):
            assert (await client.get("/x")).status == 503
        clock.now_s += 30.0
        assert (await client.get("/x")).status == 503
    lines = [e for e in logs if e["event"] == "http_dependency_unavailable"]
    assert [e["left_out_since_last"] for e in lines] == [0, 2]
    assert lines[0]["error"] == "ConnectionError: down" and lines[0]["log_level"] == "warning"


def test_the_throttle_lets_one_through_per_interval_and_counts_the_rest() -> None:
    clock = FakeClock()
    throttle = LogThrottle(10.0, clock)
    assert [throttle.allow(), throttle.allow(), throttle.allow()] == [0, None, None]
    clock.now_s += 9.9
    assert throttle.allow() is None
    clock.now_s += 0.1
    assert throttle.allow() == 3
    assert throttle.allow() is None


async def _send_raw(serve, caplog: pytest.LogCaptureFixture, raw: bytes) -> list[logging.LogRecord]:  # type: ignore[no-untyped-def]
    """Send ``raw`` to a served app, check the 400, and return aiohttp's server log records."""
    quiet_client_errors()
    client = await serve(raising(AssertionError("not called")))
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(raw)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] == b"400"
    return [r for r in caplog.records if r.name == "aiohttp.server"]


async def test_a_malformed_request_is_one_info_line_not_an_error_with_a_traceback(  # type: ignore[no-untyped-def]
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    records = await _send_raw(serve, caplog, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)]
    message = records[0].getMessage()
    assert message.startswith("http_bad_request status=400 reason=") and "Got more than 8190 bytes" in message
    assert len(message) < 300


async def test_a_malformed_header_carrying_the_token_is_logged_without_it(  # type: ignore[no-untyped-def]
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by review: aiohttp's reason quotes the bad header line, so a token read with a stray CR was logged."""
    [record] = await _send_raw(
        serve, caplog, b"POST /silences HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer 0123456789abcdef-SECRET\r\r\n\r\n")
    assert record.getMessage().startswith("http_bad_request status=400") and "SECRET" not in record.getMessage()


def test_the_pure_python_parsers_reason_quoting_the_header_value_is_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiohttp without its C extension (AIOHTTP_NO_EXTENSIONS, PyPy) puts the value on the first line."""
    from aiohttp.http_exceptions import InvalidHeader

    caplog.set_level(logging.INFO, logger="aiohttp.server")

    from monitor.web.errors import CLIENT_ERROR_FILTER

    exc = InvalidHeader(b"Bearer 0123456789abcdef-SECRET\r")
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (),
                               (type(exc), exc, None))
    assert CLIENT_ERROR_FILTER.filter(record)
    assert "SECRET" not in record.getMessage() and "Invalid HTTP header" in record.getMessage()
