"""The daemon's HTTP side when a request cannot be served, on a running daemon (the demo, replayed).

Hostile query and path values never get a server error; a Redis outage is a 503 that names the error
(for a browser, a page that reloads itself) until Redis is back, and the console then serves again.
Before monitor/web/errors.py both were aiohttp's bare "500 Server got itself in trouble" plus a traceback
in the log per request, and the console's refresh stopped on that page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.chaos.harness import RedisProcess, running
from tests.integration.web.demo_daemon import RunningDaemon, running_demo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROUTES = (
    "/windows?key={v}", "/windows?minutes={v}", "/windows?end_s={v}", "/windows?minutes={v}&end_s={v}",
    "/alerts?status={v}", "/silences?all={v}", "/?range={v}", "/keys?key={v}", "/keys?range={v}", "/keys/{v}",
    "/keys/{v}?range={v}", "/api/keys?key={v}", "/api/keys?range={v}", "/api/keys/{v}/series",
    "/api/keys/ticker:WFC/series?range={v}", "/static/{v}",
)
EDGES = ("", "-1", "0", "99999999999999999999", "-99999999999999999999", "9" * 5000, "nan", "1e9", "\x00", "..",
         "%", "{}", "ticker:WFC", "all", "24h", "a" * 3000)
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningDaemon]:
    async with running_demo(tmp_path_factory.mktemp("hostile-http")) as daemon:
        yield daemon


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.text(), dict(r.headers)


@settings(max_examples=80, deadline=None)
@given(route=st.sampled_from(ROUTES), value=st.sampled_from(EDGES) | st.text(max_size=200))
async def test_no_query_or_path_value_makes_a_route_answer_with_a_server_error(
    demo: RunningDaemon, route: str, value: str
) -> None:
    path = route.format(v=quote(value, safe=""))
    status, body, _ = await get(demo.base + path)
    assert status < 500, (path[:200], status, body[:300])


async def test_every_edge_value_on_every_route_is_answered_without_a_server_error(demo: RunningDaemon) -> None:
    failures = []
    for route in ROUTES:
        for value in EDGES:
            status, body, _ = await get(demo.base + route.format(v=quote(value, safe="")))
            if status >= 500:
                failures.append((route, value[:20], status, body[:200]))
    assert failures == []
    assert demo.app.ready()


async def test_a_redis_outage_is_a_503_that_says_so_and_the_console_serves_again_when_redis_is_back(
    tmp_path: Path,
) -> None:
    (tmp_path / "demo").mkdir()
    with running(RedisProcess(tmp_path).start()) as redis:
        assert isinstance(redis, RedisProcess)
        async with running_demo(tmp_path / "demo", store_url=redis.url) as demo:
            status, page, headers = await get(demo.base + "/", HTML)
            assert status == 200 and "ticker:WFC" in page
            redis.stop()

            status, page, headers = await get(demo.base + "/", HTML)
            assert status == 503 and headers["Retry-After"] == "10"
            assert '<meta http-equiv="refresh" content="10">' in page and "ConnectionError" in page
            status, body, headers = await get(demo.base + "/api/overview")
            assert status == 503 and headers["Content-Type"].startswith("application/json")
            assert "a dependency is unreachable: ConnectionError" in body

            redis.start()
            for _ in range(150):  # the client reconnects on its next call; allow it a few tries
                status, page, _ = await get(demo.base + "/", HTML)
                if status == 200:
                    break
                await asyncio.sleep(0.2)
            assert status == 200 and "ticker:WFC" in page
