"""The console's key pages and listings with many keys: every key reachable a page at a time, topics first, and
a key that names nothing answered 404 with the keys it may have meant (found by review: all answered 200)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from alerts.lifecycle import AlertState
from alerts.model import AlertStatus
from alerts.state import MemoryAlertStateStore
from monitor.web.alerts_api import MAX_KEYS_SCANNED, AlertsApi, top_keys
from monitor.web.clock import EventClock
from monitor.web.console import MAX_KEYS_COMPARED, MAX_KEYS_LISTED, Console, suggest_keys
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore
from tests.contract.messages import classified
from tests.unit.alerts.builders import signal

NOW = 1_790_000_100
FLOOD = 1_500


async def _store() -> MemoryWindowStore:
    """92 messages on ticker:WFC (topic legal_regulation), one on each of 1,500 one-off tickers (topic earnings)."""
    store = MemoryWindowStore(300, 86_400)
    await store.apply([classified(f"w{i}", at_s=NOW - 1_000 + i, tickers=["WFC"], topic="legal_regulation")
                       for i in range(92)])
    await store.apply([classified(f"f{i}", at_s=NOW - 1_000 + i % 600, tickers=[f"A{i:04d}"]) for i in range(FLOOD)])
    return store


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    store, state = await _store(), MemoryAlertStateStore()
    quiet = AlertState(dedup_key="r:ticker:OLD", rule="r", window_key="ticker:OLD", status=AlertStatus.RESOLVED,
                       last_signal=signal("ticker:OLD", NOW - 86_000, False))
    firing = AlertState(dedup_key="r:ticker:WFC", rule="r", window_key="ticker:WFC", status=AlertStatus.FIRING,
                        started_at_s=NOW - 600, last_signal=signal("ticker:WFC", NOW, True))
    await state.commit([quiet, firing], [], NOW)
    clock = EventClock(lambda: NOW, state)
    http = HttpServer("127.0.0.1", 0, store, ready=lambda: True, event_time_s=lambda: NOW)
    api = AlertsApi(state, store, clock, lookback_s=600, max_silence_duration_s=86_400)
    http.add_routes([*api.routes(), *Console(api, clock, [], baseline_s=86_400, writes_enabled=False).routes()])
    async with TestClient(TestServer(http.app)) as test_client:
        yield test_client


async def test_the_key_list_comes_topics_first_and_pages_on_with_offset(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/api/keys")).json()
    total = 1 + 2 + 2 * (FLOOD + 1)  # all, 2 topics, then a ticker and a topic x ticker key per ticker
    assert (body["total"], body["truncated"], body["next_offset"]) == (total, True, MAX_KEYS_LISTED)
    assert body["keys"][:3] == ["all", "topic:earnings", "topic:legal_regulation"]
    second = await (await client.get(f"/api/keys?offset={body['next_offset']}")).json()
    assert second["keys"] and not set(second["keys"]) & set(body["keys"])
    seen, offset = [], 0
    while offset is not None:
        page = await (await client.get(f"/api/keys?offset={offset}")).json()
        seen += page["keys"]
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == total and "ticker:WFC" in seen


async def test_the_key_list_filters_by_a_prefix_in_any_case(client: TestClient) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/api/keys?prefix=TICKER:w")).json()
    assert (body["keys"], body["total"], body["truncated"]) == (["ticker:WFC"], 1, False)
    topics = await (await client.get("/api/keys?prefix=topic:")).json()
    assert topics["keys"] == ["topic:earnings", "topic:legal_regulation"]
    assert (await client.get("/api/keys?offset=-1")).status == 400
    assert (await (await client.get("/api/keys?offset=x")).json())["field"] == "offset"


async def test_the_keys_page_links_the_next_and_previous_pages(client: TestClient) -> None:  # type: ignore[type-arg]
    page = await (await client.get("/keys")).text()
    assert "topic:legal_regulation" in page and f'href="/keys?offset={MAX_KEYS_LISTED}"' in page
    assert 'rel="prev"' not in page
    second = await (await client.get(f"/keys?offset={MAX_KEYS_LISTED}")).text()
    assert 'rel="prev" href="/keys"' in second and f"{MAX_KEYS_LISTED + 1}&ndash;" in second
    filtered = await (await client.get("/keys?prefix=ticker%3AW")).text()
    assert 'href="/keys/ticker%3AWFC"' in filtered and 'rel="next"' not in filtered


async def test_previous_from_past_the_end_links_the_last_page_there_is(client: TestClient) -> None:  # type: ignore[type-arg]
    """Found by review: ``?offset=100000`` linked "previous" to ``?offset=99500``, empty again."""
    total = 1 + 2 + 2 * (FLOOD + 1)
    last = (total - 1) // MAX_KEYS_LISTED * MAX_KEYS_LISTED
    page = await (await client.get("/keys?offset=100000")).text()
    assert f'rel="prev" href="/keys?offset={last}"' in page
    assert f"{last + 1}&ndash;{total} of {total}" in await (await client.get(f"/keys?offset={last}")).text()
    empty = await (await client.get("/keys?prefix=nothing%3A&offset=500")).text()
    assert 'rel="prev" href="/keys?prefix=nothing%3A"' in empty


def test_a_close_key_is_suggested_past_a_thousand_keys_of_the_same_first_letter() -> None:
    """Found by review: only the first 1,000 keys of the kind and first letter, alphabetically, were compared, so
    1,200 ``topic_ticker:macro|T...`` keys hid ``topic_ticker:markets|WFC`` from ``markets|WFCC``."""
    macro = [f"topic_ticker:macro|T{i:04d}" for i in range(MAX_KEYS_COMPARED + 200)]
    known = sorted(["all", "topic:markets", "ticker:WFC", "topic_ticker:markets|WFC", *macro])
    assert suggest_keys("topic_ticker:markets|WFCC", known) == ["topic_ticker:markets|WFC"]
    tickers = [f"ticker:W{i:04d}" for i in range(MAX_KEYS_COMPARED + 200)]
    assert suggest_keys("ticker:WXYZQ", ["ticker:WXYZ", *tickers]) == ["ticker:WXYZ"]


async def test_an_unknown_key_is_a_404_naming_the_key_it_may_have_meant(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/api/keys/ticker:wfc/series")
    body = await response.json()
    assert response.status == 404 and body["field"] == "key" and body["did_you_mean"][0] == "ticker:WFC"
    assert (await client.get("/api/keys/ticker:NOPE/series")).status == 404
    response = await client.get("/keys/ticker:WFX")
    page = await response.text()
    assert response.status == 404 and "No such key" in page and 'href="/keys/ticker%3AWFC"' in page
    for path in ("/keys/a%2Fb", "/keys/%00", "/keys/ALL"):
        assert (await client.get(path)).status == 404, path
    assert "did_you_mean" not in await (await client.get("/api/keys/ticker:WFC/series")).json()


async def test_a_key_with_an_alert_state_or_all_is_served_without_data(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/keys/ticker:OLD")).status == 200
    assert (await client.get("/api/keys/ticker:OLD/series")).status == 200
    assert (await client.get("/keys/all?range=6h")).status == 200


async def test_an_unknown_api_route_is_a_json_404(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/api/nope")
    assert response.status == 404 and "no API route" in (await response.json())["error"]


async def test_the_key_box_prefers_a_topic_with_data_and_maps_all(client: TestClient) -> None:  # type: ignore[type-arg]
    async def goes_to(typed: str) -> str:
        response = await client.get("/keys", params={"key": typed}, allow_redirects=False)
        assert response.status == 302, typed
        return unquote(response.headers["Location"])

    assert await goes_to("earnings") == "/keys/topic:earnings"
    assert await goes_to("Legal_Regulation") == "/keys/topic:legal_regulation"
    assert await goes_to("TOPIC:earnings") == "/keys/topic:earnings"
    assert await goes_to("ALL") == "/keys/all"
    assert await goes_to("wfc") == "/keys/ticker:WFC"


async def test_busiest_keys_rank_the_keys_of_firing_alerts_past_the_key_cap(client: TestClient) -> None:  # type: ignore[type-arg]
    """Found by review: with 1,500 one-off tickers the ranking summed the first 1,000 keys by name and left
    ``ticker:WFC`` (92 messages, firing) out while ``ticker:A0000`` (1 message) was listed."""
    busiest = (await (await client.get("/api/overview")).json())["busiest"]
    assert {"key": "ticker:WFC", "volume": 92, "negative": 92} in busiest
    store = await _store()
    ranked, active = await top_keys(store, NOW - 3_600, NOW, always=["ticker:WFC", "ticker:GONE"])
    assert active > MAX_KEYS_SCANNED
    assert ("ticker:WFC", 92) in [(k.key, k.volume) for k in ranked]
