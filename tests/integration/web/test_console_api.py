"""The console's JSON and HTML endpoints and the write guard, on a running daemon (the demo, replayed).

Event time in the demo is November 2026, weeks behind the wall clock: every "recent" view here must
count back from the watermark, or it would be empty while the WFC alert fires.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from alerts.lifecycle import silenced
from tests.integration.web.demo_daemon import TOKEN, RunningDaemon, running_demo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
B = 600


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningDaemon]:
    async with running_demo(tmp_path_factory.mktemp("console")) as running:
        yield running


async def call(base: str, method: str, path: str, body: Any = None,
               token: str | None = None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s, s.request(method, base + path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def text(base: str, path: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(base + path) as r:
        return r.status, await r.text(), dict(r.headers)


async def test_overview_is_in_event_time_with_the_firing_alert_its_numbers_and_evidence(demo: RunningDaemon) -> None:
    status, body = await call(demo.base, "GET", "/api/overview")
    assert status == 200
    clock = body["clock"]
    watermark = demo.app.pipeline.watermark.value_s
    assert (clock["source"], clock["now_s"], clock["watermark_s"]) == ("watermark", watermark, watermark)
    assert clock["event_lag_s"] > 86_400 and abs(clock["wall_s"] - time.time()) < 60
    (wfc,) = [a for a in body["firing"] if a["key"] == "ticker:WFC"]
    assert wfc["neg_share"] > 0.4 and wfc["volume"] >= 15 and "spike" in wfc["detectors"]
    numeric = {f["name"] for f in wfc["fields"] if f["numeric"]}
    assert {"z_ewma", "z_robust", "cusum", "baseline_neg_share"} <= numeric
    headlines = [e["text"] for e in wfc["evidence"]]
    assert headlines and all("WFC" in h or "Wells Fargo" in h for h in headlines)
    assert len(set(headlines)) == len(headlines)
    assert {("firing", "ticker:BA"), ("resolved", "ticker:BA"), ("firing", "ticker:WFC")} <= {
        (h["status"], k) for h in body["history"] for k in h["keys"]}


async def test_busiest_keys_count_back_from_the_watermark_not_the_wall_clock(demo: RunningDaemon) -> None:
    _, body = await call(demo.base, "GET", "/api/overview")
    busiest = {k["key"]: k["volume"] for k in body["busiest"]}
    watermark = demo.app.pipeline.watermark.value_s
    assert watermark is not None
    end = watermark // B * B + B
    expected = sum(b.volume for b in await demo.app.store.buckets("all", end - 3600, end))
    assert busiest["all"] == expected > 0 and "ticker:WFC" in busiest


async def test_windows_minutes_count_back_from_the_watermark(demo: RunningDaemon) -> None:
    status, body = await call(demo.base, "GET", "/windows?key=ticker:WFC&minutes=60")
    assert status == 200 and body["buckets"], "a wall-clock hour would be empty: the demo is in Nov 2026"
    watermark = demo.app.pipeline.watermark.value_s
    assert watermark is not None
    # the hour up to the watermark, plus the (open) bucket past it, as before with the wall clock
    assert all(watermark - 3600 <= b["start_s"] < watermark + B for b in body["buckets"])
    assert (body["total"], body["truncated"]) == (len(body["buckets"]), False)


@pytest.mark.parametrize("minutes", ["1_000", "\uff11", "1" * 40, "sixty", ""])
async def test_windows_takes_only_plain_integers(demo: RunningDaemon, minutes: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(demo.base + "/windows", params={"minutes": minutes}) as r:
        assert r.status == 400 and "ASCII digits" in (await r.json())["error"]


async def test_every_answer_says_how_it_may_be_cached(demo: RunningDaemon) -> None:
    # found by review: alert and evidence data carried no Cache-Control, and console.js none either
    for path in ("/", "/alerts", "/silences", "/api/overview", "/windows", "/keys/ticker:WFC", "/no-such-page"):
        status, _, headers = await text(demo.base, path)
        assert (headers.get("Cache-Control"), headers.get("X-Content-Type-Options")) == ("no-store", "nosniff"), path
    status, _, headers = await text(demo.base, "/static/console.js")
    assert status == 200 and headers["Cache-Control"] == "no-cache" and "etag" in map(str.lower, headers)


async def test_a_silence_body_in_an_unknown_charset_is_400_not_a_server_error(demo: RunningDaemon) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json; charset=foo"}
    body = b'{"matcher": "ticker:WFC", "duration_s": 60}'
    async with aiohttp.ClientSession() as s, s.post(demo.base + "/silences", data=body, headers=headers) as r:
        assert r.status == 400 and "UTF-8 JSON" in (await r.json())["error"]


async def test_series_ends_at_the_watermark_and_sums_the_stored_buckets(demo: RunningDaemon) -> None:
    status, body = await call(demo.base, "GET", "/api/keys/ticker%3AWFC/series?range=24h")
    assert status == 200 and body["clock"] == "event_time"
    window, points = body["window"], body["points"]
    watermark = demo.app.pipeline.watermark.value_s
    assert watermark is not None
    assert window["end_s"] == watermark // B * B + B and len(points) == 144
    stored = await demo.app.store.buckets("ticker:WFC", window["start_s"], window["end_s"])
    assert sum(p["volume"] for p in points) == sum(b.volume for b in stored) > 0
    assert [m["kind"] for m in body["markers"]][-1] == "firing"
    assert points[-1]["final"] is False and points[0]["final"] is True
    week = (await call(demo.base, "GET", "/api/keys/ticker%3ABA/series?range=7d"))[1]
    assert week["window"]["step_s"] == 3600 and {"firing", "resolved"} <= {m["kind"] for m in week["markers"]}


async def test_series_with_an_unknown_range_is_400_naming_it(demo: RunningDaemon) -> None:
    status, body = await call(demo.base, "GET", "/api/keys/all/series?range=1y")
    assert status == 400 and body["field"] == "range"


async def test_writes_need_the_bearer_token(demo: RunningDaemon) -> None:
    silence = {"matcher": "ticker:NONE", "duration_s": 600}
    status, body = await call(demo.base, "POST", "/silences", silence)
    assert status == 401 and "Authorization: Bearer" in body["error"]
    assert (await call(demo.base, "POST", "/silences", silence, token=TOKEN + "x"))[0] == 401
    assert (await call(demo.base, "DELETE", "/silences/whatever"))[0] == 401
    assert (await call(demo.base, "GET", "/silences"))[0] == 200  # reads stay open
    status, created = await call(demo.base, "POST", "/silences", silence, token=TOKEN)
    assert status == 201
    assert (await call(demo.base, "DELETE", f"/silences/{created['id']}", token=TOKEN))[0] == 200


async def test_a_write_that_is_not_json_is_415_even_with_the_token(demo: RunningDaemon) -> None:
    # found by review: text/plain and form bodies with a valid token made silences (a cross-site form can send
    # those types; a proxy that adds Authorization would have opened a CSRF hole)
    body = b'{"matcher": "ticker:WFC", "duration_s": 60}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
        async with aiohttp.ClientSession() as s, s.post(demo.base + "/silences", data=body, headers=headers) as r:
            assert r.status == 415 and "application/json" in (await r.json())["error"], content_type
    assert "ticker:WFC" not in [s["matcher"] for s in (await call(demo.base, "GET", "/silences?all=1"))[1]["silences"]]


async def test_matchers_that_mute_more_than_one_kind_or_hold_invisible_characters_are_400(
        demo: RunningDaemon) -> None:
    for matcher, words in (("t*", "more than one kind of key"), ("topic*", "more than one kind of key"),
                           ("topic:\n\r\u202e", "U+000A (a control character)"),
                           ("ticker:TS\u00a0LA", "U+00A0 (a space)"), ("ticker:TS LA", "tickers have no spaces")):
        status, body = await call(demo.base, "POST", "/silences", {"matcher": matcher, "duration_s": 600}, token=TOKEN)
        assert (status, body["field"]) == (400, "matcher") and words in body["error"], (matcher, body)
        assert "--matcher" not in body["error"]
    stored = [s["matcher"] for s in (await call(demo.base, "GET", "/silences?all=1"))[1]["silences"]]
    assert not {"t*", "topic*", "topic:\n\r\u202e", "ticker:TS\u00a0LA", "ticker:TS LA"} & set(stored)
    alerts = (await call(demo.base, "GET", "/alerts?status=firing"))[1]["alerts"]
    assert [a["silenced"] for a in alerts if a["key"] == "ticker:WFC"] == [False]


async def test_silence_is_made_and_shown_in_event_time_and_mutes_the_next_evaluated_bucket(
        demo: RunningDaemon) -> None:
    status, created = await call(demo.base, "POST", "/silences",
                                 {"matcher": "ticker:WFC", "duration_s": 3600, "comment": "<b>call</b>"}, token=TOKEN)
    assert status == 201 and created["active"]
    watermark = demo.app.pipeline.watermark.value_s
    assert watermark is not None
    # event time, not wall time + 1 h: the demo's history is weeks behind the wall clock, further than the longest
    # silence, so it is a replay and an hour past the wall clock would mute the rest of it
    assert created["ends_at_s"] == watermark + 3600
    alerts = (await call(demo.base, "GET", "/alerts?status=firing"))[1]["alerts"]
    assert [a["silenced"] for a in alerts if a["key"] == "ticker:WFC"] == [True]
    # what the engine will decide for the next bucket it evaluates (its end, in event time)
    cursor = await demo.app.alerting.state.get_cursor()
    assert cursor is not None
    assert silenced("ticker:WFC", cursor + B, await demo.app.alerting.state.list_silences())
    status, page, _ = await text(demo.base, "/")
    assert "&lt;b&gt;call&lt;/b&gt;" in page and "<b>call</b>" not in page
    await call(demo.base, "DELETE", f"/silences/{created['id']}", token=TOKEN)


async def test_pages_render_alerts_chart_and_evidence_with_a_strict_csp(demo: RunningDaemon) -> None:
    status, page, headers = await text(demo.base, "/")
    assert status == 200 and "ticker:WFC" in page and "$WFC" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "<script>" not in page and "style=" not in page  # nothing inline: the CSP would block it
    status, page, _ = await text(demo.base, "/keys/ticker%3AWFC?range=6h")
    assert status == 200 and 'class="share" d="M' in page and 'class="vol"' in page and "$WFC" in page
    assert 'name="matcher" required placeholder="ticker:TSLA or topic:*" value="ticker:WFC"' in page
    assert "<title>ticker:WFC · finsent monitor</title>" in page and page.count('id="silences"') == 1
    assert (await text(demo.base, "/keys/ticker%3AWFC?range=2w"))[0] == 400
    status, page, _ = await text(demo.base, "/keys/%3Cscript%3Ex%3C%2Fscript%3E")  # no such key: a 404 page
    assert status == 404 and "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    status, page, _ = await text(demo.base, "/keys")
    assert status == 200 and "/keys/topic_ticker%3Alegal_regulation%7CWFC" in page


async def test_without_a_configured_token_the_api_is_read_only(tmp_path: Path) -> None:
    async with running_demo(tmp_path, token=None) as ro:
        status, body = await call(ro.base, "POST", "/silences", {"matcher": "ticker:WFC", "duration_s": 60},
                                  token="anything")
        assert status == 403 and "MONITOR_HTTP__API_TOKEN" in body["error"]
        assert (await call(ro.base, "DELETE", "/silences/x", token="anything"))[0] == 403
        _, page, _ = await text(ro.base, "/")
        assert 'id="silence-form"' not in page and "read-only" in page


async def test_the_key_box_goes_to_the_key_as_stored_whatever_the_case_typed(demo: RunningDaemon) -> None:
    async with aiohttp.ClientSession() as s, s.get(demo.base + "/keys?key=ticker:wfc", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/keys/ticker:WFC"
