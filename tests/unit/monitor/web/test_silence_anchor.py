"""Silences made or expired over HTTP cover the buckets detection judges *next* (from the stored cursor),
even while this instance's watermark runs ahead of it (a backlog caught up in passes, a cluster watermark
held back by another instance): anchored to the watermark, the next hour of judged buckets went unmuted."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from alerts.lifecycle import AlertState, silenced
from alerts.model import AlertStatus, Silence
from alerts.state import MemoryAlertStateStore
from monitor.web.alerts_api import AlertsApi
from monitor.web.clock import EventClock
from monitor.windows.memory import MemoryWindowStore

B = 300
CURSOR = 1_700_006_400
WATERMARK = CURSOR + 3_600


async def _client(state: MemoryAlertStateStore) -> TestClient:  # type: ignore[type-arg]
    api = AlertsApi(state, MemoryWindowStore(B, 86_400), EventClock(lambda: WATERMARK, state),
                    lookback_s=B, max_silence_duration_s=86_400)
    app = web.Application()
    app.add_routes(api.routes())
    return TestClient(TestServer(app))


def _silence(body: dict[str, object]) -> Silence:
    return Silence(**{k: body[k] for k in ("id", "matcher", "starts_at_s", "ends_at_s", "comment", "created_by")})  # type: ignore[arg-type]


async def test_a_silence_covers_the_buckets_judged_next_and_lasts_its_duration_past_the_watermark() -> None:
    state = MemoryAlertStateStore()
    await state.commit([], [], CURSOR)
    async with await _client(state) as client:
        reply = await client.post("/silences", json={"matcher": "ticker:TSLA", "duration_s": 7_200})
        made = _silence(await reply.json())
    assert all(silenced("ticker:TSLA", CURSOR + n * B, [made]) for n in (1, 6, 12))
    assert made.ends_at_s == WATERMARK + 7_200  # history years behind the wall clock: event time


async def test_a_silence_made_during_a_backlog_ends_its_duration_past_the_wall_clock() -> None:
    """Found by review: anchored to a cursor hours behind (a backlog after downtime), a "2h" silence ended in event
    time the daemon passed within minutes: it muted nothing."""
    state = MemoryAlertStateStore()
    cursor = int(time.time()) - 6 * 3_600
    await state.commit([], [], cursor)
    api = AlertsApi(state, MemoryWindowStore(B, 86_400), EventClock(lambda: cursor + 600, state),
                    lookback_s=B, max_silence_duration_s=86_400)
    app = web.Application()
    app.add_routes(api.routes())
    async with TestClient(TestServer(app)) as client:
        made = _silence(await (await client.post("/silences", json={"matcher": "ticker:TSLA",
                                                                    "duration_s": 7_200})).json())
    assert abs(made.ends_at_s - (time.time() + 7_200)) < 60 and made.starts_at_s <= cursor


async def test_expiring_ends_the_silence_where_detection_judges_next() -> None:
    state = MemoryAlertStateStore()
    await state.commit([], [], CURSOR)
    async with await _client(state) as client:
        made = await (await client.post("/silences", json={"matcher": "ticker:TSLA", "duration_s": 7_200})).json()
        assert (await client.delete(f"/silences/{made['id']}")).status == 200
    [ended] = await state.list_silences()
    assert ended.ends_at_s == CURSOR and not silenced("ticker:TSLA", CURSOR + B, [ended])


async def test_creating_a_silence_keeps_one_that_ends_between_the_cursor_and_the_watermark() -> None:
    """Found by review: POST /silences pruned at the watermark, deleting a silence that still mutes the buckets
    detection judges next (ticker:TSLA paged half an hour into its silence)."""
    state = MemoryAlertStateStore()
    await state.commit([], [], CURSOR)
    desk = Silence(id="s1", matcher="ticker:TSLA", starts_at_s=CURSOR - 3_600, ends_at_s=CURSOR + 1_800)
    await state.add_silence(desk, CURSOR)
    async with await _client(state) as client:
        assert (await client.post("/silences", json={"matcher": "ticker:AAPL", "duration_s": 3_600})).status == 201
    left = await state.list_silences()
    assert desk in left and silenced("ticker:TSLA", CURSOR + B, left)


async def test_a_silence_ending_between_the_cursor_and_the_watermark_is_listed_live_and_active() -> None:
    state = MemoryAlertStateStore()
    await state.commit([], [], CURSOR)
    await state.add_silence(Silence(id="s1", matcher="ticker:TSLA", starts_at_s=CURSOR - 3_600,
                                    ends_at_s=CURSOR + 1_800), CURSOR)
    async with await _client(state) as client:
        listed = (await (await client.get("/silences")).json())["silences"]
    assert [(s["id"], s["active"]) for s in listed] == [("s1", True)]


async def test_every_view_judges_a_silence_where_detection_does_while_the_cursor_trails() -> None:
    """Found by the regression review: GET /silences listed s1 active, while GET /alerts, the console's overview
    and its key page (still at the watermark) said TSLA was not silenced and showed no silence at all."""
    from monitor.web.console import Console
    from tests.unit.alerts.builders import signal

    state = MemoryAlertStateStore()
    firing = AlertState(dedup_key="r:ticker:TSLA", rule="r", window_key="ticker:TSLA", status=AlertStatus.FIRING,
                        started_at_s=CURSOR - 1_200, last_signal=signal("ticker:TSLA", CURSOR, True))
    await state.commit([firing], [], CURSOR)
    await state.add_silence(Silence(id="s1", matcher="ticker:TSLA", starts_at_s=CURSOR - 3_600,
                                    ends_at_s=CURSOR + 1_800), CURSOR)
    clock = EventClock(lambda: WATERMARK, state)
    api = AlertsApi(state, MemoryWindowStore(B, 86_400), clock, lookback_s=B, max_silence_duration_s=86_400)
    app = web.Application()
    app.add_routes([*api.routes(), *Console(api, clock, [], baseline_s=86_400, writes_enabled=False).routes()])
    async with TestClient(TestServer(app)) as client:
        alerts = (await (await client.get("/alerts")).json())["alerts"]
        overview = await (await client.get("/api/overview")).json()
        key_page = await (await client.get("/keys/ticker:TSLA")).text()
    assert [(a["key"], a["silenced"]) for a in alerts] == [("ticker:TSLA", True)]
    assert [(s["id"], s["active"]) for s in overview["silences"]] == [("s1", True)]
    assert [a["silenced"] for a in overview["firing"]] == [True]
    assert 'class="pill silenced"' in key_page
