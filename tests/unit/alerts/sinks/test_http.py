"""The shared HTTP poster: its errors never carry the sink URL (webhook and Slack tokens live in the path), and a
request that timed out is left to the outbox instead of being sent again at once."""

from __future__ import annotations

import asyncio

import pytest

from alerts.sinks.base import SinkError
from alerts.sinks.http import HttpPoster, redirect_target

TOKEN_PATH = "/services/T000/B000/XXXXsecretTOKEN1234abcd"


async def _raw_server(answer: bytes, hits: list[int], delay_s: float = 0.0) -> tuple[asyncio.Server, int]:
    """A receiver that reads a request, waits ``delay_s`` and answers ``answer`` bytes as they are."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        hits.append(1)
        await asyncio.sleep(delay_s)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port


async def test_a_malformed_answer_is_an_error_without_the_url_and_its_token() -> None:
    """Found by review: aiohttp's ClientResponseError text ends url='...', token included, in every log line."""
    hits: list[int] = []
    server, port = await _raw_server(b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", hits)
    async with server, HttpPoster("webhook", timeout_s=2, max_attempts=1, backoff_s=0) as poster:
        with pytest.raises(SinkError) as info:
            await poster.post(f"http://127.0.0.1:{port}{TOKEN_PATH}", b"{}", {})
    assert "secretTOKEN" not in str(info.value) and "ClientResponseError" in str(info.value)


async def test_a_request_that_times_out_is_not_sent_again_in_line() -> None:
    """Found by review: a receiver answering after the timeout got each notification once per in-line attempt."""
    hits: list[int] = []
    server, port = await _raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", hits, delay_s=1.0)
    async with server, HttpPoster("slack", timeout_s=0.3, max_attempts=3, backoff_s=0) as poster:
        with pytest.raises(SinkError, match=r"no answer within 0\.3 s"):
            await poster.post(f"http://127.0.0.1:{port}/hook", b"{}", {})
    assert hits == [1]


async def test_a_dropped_connection_is_still_retried_in_line() -> None:
    hits: list[int] = []
    server, port = await _raw_server(b"", hits)  # closes without an answer
    async with server, HttpPoster("webhook", timeout_s=2, max_attempts=3, backoff_s=0) as poster:
        with pytest.raises(SinkError):
            await poster.post(f"http://127.0.0.1:{port}/hook", b"{}", {})
    assert len(hits) == 3


def test_a_redirect_to_a_letters_only_webhook_token_is_masked_in_the_error() -> None:
    shown = redirect_target("https://hooks.example/api/webhooks/a", "/api/webhooks/secrettokenvalueonlyletters")
    assert shown == "https://hooks.example/api/webhooks/***"
