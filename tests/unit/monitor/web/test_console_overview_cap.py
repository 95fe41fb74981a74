"""The overview shows at most ``MAX_ALERT_CARDS`` alerts and counts the rest: 2,000 live alerts made a 4 MB
page (and a 3 MB ``/api/overview``) that held the event loop for a second at every tab's 30 s refresh."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from alerts.lifecycle import AlertState
from alerts.model import AlertStatus
from alerts.state import MemoryAlertStateStore
from monitor.web.alerts_api import MAX_KEYS_SCANNED, AlertsApi, top_keys
from monitor.web.clock import EventClock
from monitor.web.console import MAX_ALERT_CARDS, Console
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore
from tests.contract.messages import classified
from tests.unit.alerts.builders import signal

NOW = 1_790_000_100
FIRING, PENDING = 300, 20


async def _client() -> TestClient:  # type: ignore[type-arg]
    store, state = MemoryWindowStore(300, 86_400), MemoryAlertStateStore()
    states = [AlertState(dedup_key=f"r:ticker:T{i}", rule="r", window_key=f"ticker:T{i}",
                         status=AlertStatus.FIRING if i < FIRING else AlertStatus.PENDING,
                         started_at_s=NOW - 1_200, pending_since_s=NOW - 600,
                         last_signal=signal(f"ticker:T{i}", NOW, True))
              for i in range(FIRING + PENDING)]
    await state.commit(states, [], NOW)
    clock = EventClock(lambda: NOW, state)
    http = HttpServer("127.0.0.1", 0, store, ready=lambda: True, event_time_s=lambda: NOW)
    api = AlertsApi(state, store, clock, lookback_s=600, max_silence_duration_s=86_400)
    http.add_routes([*api.routes(), *Console(api, clock, [], baseline_s=86_400, writes_enabled=False).routes()])
    return TestClient(TestServer(http.app))


async def test_the_overview_shows_the_first_alerts_and_counts_the_rest() -> None:
    async with await _client() as client:
        body = await (await client.get("/api/overview")).json()
        assert (body["firing_total"], body["pending_total"], body["truncated"]) == (FIRING, PENDING, True)
        assert len(body["firing"]) == MAX_ALERT_CARDS and body["pending"] == []  # firing first
        page = await (await client.get("/")).text()
        assert f"<title>{FIRING} firing · finsent monitor</title>" in page
        assert f"{FIRING - MAX_ALERT_CARDS} more firing" in page and f"{PENDING} more pending" in page
        assert page.count('href="/keys/ticker%3AT') < 3 * MAX_ALERT_CARDS
        assert len(page) < 1_000_000


async def test_busiest_keys_rank_all_and_the_topics_however_many_tickers_are_active() -> None:
    """Found by review: the ranking summed the alphabetically first 1,000 keys, so with thousands of tickers no
    ``topic:*`` key was ever ranked."""
    store = MemoryWindowStore(300, 86_400)
    messages = [classified(f"m{i}", at_s=NOW - 1_000 + i % 600, tickers=[f"T{i:04d}"]) for i in range(1_500)]
    await store.apply(messages)
    ranked, active = await top_keys(store, NOW - 3_600, NOW)
    assert active > MAX_KEYS_SCANNED
    assert [k.key for k in ranked[:2]] == ["all", "topic:earnings"]
    assert ranked[0].volume == 1_500


async def test_windows_after_a_restart_ends_at_the_detection_cursor_not_the_wall_clock() -> None:
    """Found by review: before this instance saw an event, ``/windows`` used the wall clock, and showed nothing
    during a backlog or a replay while every console page used the stored detection cursor."""
    store, state = MemoryWindowStore(300, 86_400), MemoryAlertStateStore()
    await store.apply([classified("m", at_s=NOW - 100)])
    await state.commit([], [], NOW)
    http = HttpServer("127.0.0.1", 0, store, ready=lambda: True)  # no watermark yet: a restart
    http.event_now_s = EventClock(lambda: None, state).now_s
    async with TestClient(TestServer(http.app)) as client:
        body = await (await client.get("/windows?key=all&minutes=30")).json()
    assert [b["volume"] for b in body["buckets"]] == [1]


async def test_windows_refuses_a_range_of_no_minutes_instead_of_answering_another_one() -> None:
    http = HttpServer("127.0.0.1", 0, MemoryWindowStore(300, 86_400), ready=lambda: True)
    async with TestClient(TestServer(http.app)) as client:
        response = await client.get("/windows?minutes=-5")
        assert response.status == 400 and "minutes must be 1 or more" in (await response.json())["error"]
