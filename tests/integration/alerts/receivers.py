"""Real local receivers for sink tests: an aiohttp web server that records requests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    status: int


@dataclass
class Recorder:
    """Answers with ``statuses`` in turn (the last one repeats) and records every request."""

    statuses: list[int] = field(default_factory=lambda: [200])
    check: Callable[[bytes, dict[str, str]], bool] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every answer (e.g. ``Retry-After``)."""
    requests: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        status = self.statuses[min(len(self.requests), len(self.statuses) - 1)]
        if self.check is not None and not self.check(body, headers):
            status = 401
        self.requests.append(Received(body, headers, status))
        return web.Response(status=status, headers=self.headers)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status == 200]


@asynccontextmanager
async def http_receiver(recorder: Recorder) -> AsyncIterator[str]:
    """Serve ``recorder`` on 127.0.0.1 (free port); yields the base URL."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", recorder.handle)
    async with serving(app) as base:
        yield base


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (free port); yields the base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
