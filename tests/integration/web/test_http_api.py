"""The daemon's HTTP API on a running MonitorApp (Kafka source on tansu, Redis windows and alert state).

Alerts are made by writing a spike into the app's own window store at recent wall-clock times and
calling its engine's ``evaluate``. No record goes through Kafka, so the app has no watermark and its
event-time "now" is the detection cursor that ``evaluate`` stored (the wall clock before that).
Writes carry the bearer token the app is configured with.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from alerts.model import AlertStatus
from alerts.silences import list_silences
from monitor.config import Settings
from monitor.engine.app import MonitorApp
from tests.kafka_broker import create_topics, unique_name
from tests.unit.alerts.builders import messages

pytestmark = pytest.mark.integration

B = 300
VOLUME = 40
TOKEN = "http-api-test-token"


@dataclass
class Api:
    app: MonitorApp
    base: str
    session: aiohttp.ClientSession

    async def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=body) as resp:
            return resp.status, await resp.json()


@contextlib.asynccontextmanager
async def running_app(kafka: str, redis_url: str, **alerts: Any) -> AsyncIterator[Api]:
    news, comments, dlq = unique_name("news"), unique_name("comments"), unique_name("dlq")
    await create_topics(kafka, {news: 1, comments: 1, dlq: 1})
    settings = Settings(
        source={"kind": "kafka"},
        kafka={"bootstrap_servers": kafka, "news_topic": news, "comments_topic": comments,
               "dead_letter_topic": dlq, "group_id": unique_name("grp"),
               "session_timeout_ms": 1000},
        classifier={"kind": "lexicon"},
        windows={"store_url": redis_url, "key_prefix": unique_name("http"), "bucket_s": B},
        alerts={"sinks": [], "seasonal_days": 0, "repeat_interval_s": 0, "max_page_age_s": 0, **alerts},
        http={"host": "127.0.0.1", "port": 0, "api_token": TOKEN},
    )
    app = MonitorApp(settings)
    task = asyncio.create_task(app.run())
    try:
        deadline = time.monotonic() + 30
        while not app.ready():
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "MonitorApp did not become ready"
            await asyncio.sleep(0.05)
        assert app.http is not None and app.http.bound_port
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            yield Api(app, f"http://127.0.0.1:{app.http.bound_port}", session)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def api(kafka_bootstrap: str, redis_url: str) -> AsyncIterator[Api]:
    async with running_app(kafka_bootstrap, redis_url) as running:
        yield running


async def fire_tsla_spike(app: MonitorApp) -> int:
    """30 quiet buckets then a 70%-negative one for TSLA earnings, ending at the current bucket start."""
    end_s = int(time.time()) // B * B
    start_s = end_s - 31 * B
    for i in range(31):
        negative = round(0.7 * VOLUME) if i == 30 else round(0.1 * VOLUME) + i % 3 - 1
        await app.store.apply(messages(start_s + i * B, negative, VOLUME - negative))
    notifications = await app.alerting.evaluate(end_s)
    assert [n.status for n in notifications] == [AlertStatus.FIRING]
    return end_s


async def test_silence_created_over_http_is_listed_then_expired_by_id(api: Api) -> None:
    before = int(time.time())
    status, created = await api.json("POST", "/silences", {
        "matcher": "ticker:TSLA", "duration_s": 3600, "comment": "earnings call", "created_by": "ops"})
    assert status == 201, created
    assert (created["matcher"], created["comment"], created["created_by"], created["active"]) == (
        "ticker:TSLA", "earnings call", "ops", True)
    assert created["starts_at_s"] <= before - 600 - B  # same lookback as the CLI
    assert before + 3600 <= created["ends_at_s"] <= int(time.time()) + 3600
    # stored in the engine's own state store, where evaluation reads silences
    stored = await list_silences(api.app.alerting.state, int(time.time()))
    assert [s.id for s in stored] == [created["id"]]

    status, listed = await api.json("GET", "/silences")
    assert status == 200 and [s["id"] for s in listed["silences"]] == [created["id"]]
    assert (listed["total"], listed["truncated"]) == (1, False)

    status, expired = await api.json("DELETE", f"/silences/{created['id']}")
    assert (status, expired) == (200, {"expired": created["id"]})
    assert (await api.json("GET", "/silences"))[1]["silences"] == []
    status, everything = await api.json("GET", "/silences?all=1")
    assert [(s["id"], s["active"]) for s in everything["silences"]] == [(created["id"], False)]


INVALID_SILENCES: list[tuple[Any, str]] = [
    ({"duration_s": 60}, "matcher"),
    ({"matcher": "ticker:TSLA"}, "duration_s"),
    ({"matcher": "*", "duration_s": 60}, "matcher"),
    ({"matcher": "   ", "duration_s": 60}, "matcher"),
    ({"matcher": "t*", "duration_s": 60}, "matcher"),  # every ticker, topic and pair key
    ({"matcher": "topic*", "duration_s": 60}, "matcher"),
    ({"matcher": "topic:\n\r\u202e", "duration_s": 60}, "matcher"),
    ({"matcher": "ticker:TS LA", "duration_s": 60}, "matcher"),
    ({"matcher": 7, "duration_s": 60}, "matcher"),
    ({"matcher": "ticker:TSLA", "duration_s": 0}, "duration_s"),
    ({"matcher": "ticker:TSLA", "duration_s": 8 * 86_400}, "duration_s"),
    ({"matcher": "ticker:TSLA", "duration_s": "60"}, "duration_s"),
    ({"matcher": "ticker:TSLA", "duration_s": True}, "duration_s"),
    ({"matcher": "ticker:TSLA", "duration_s": 60.5}, "duration_s"),
    ({"matcher": "ticker:TSLA", "duration_s": 60, "comment": "x" * 501}, "comment"),
    ({"matcher": "ticker:TSLA", "duration_s": 60, "created_by": None}, "created_by"),
    ({"matcher": "ticker:TSLA", "duration_s": 60, "comment": "on it \ud800"}, "comment"),  # stored, it broke /
    ({"matcher": "ticker:TSLA", "duration_s": 60, "until": 5}, "until"),
    (["ticker:TSLA", 60], "body"),
]


async def test_invalid_silence_request_is_400_naming_the_field(api: Api) -> None:
    # one app for every case: starting one costs a Kafka group join
    for body, field in INVALID_SILENCES:
        status, answer = await api.json("POST", "/silences", body)
        assert status == 400, (body, answer)
        assert answer["field"] == field and field in answer["error"], (body, answer)
    assert (await api.json("GET", "/silences?all=1"))[1]["silences"] == []


async def test_silence_body_that_is_not_json_is_400(api: Api) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # RecursionError in the parser
    huge = b'{"matcher": "ticker:TSLA", "duration_s": ' + b"9" * 5_000 + b"}"  # past the int-digit limit
    for body in (b"matcher=ticker:TSLA", deep, huge, b"\xff\xfe{}"):
        async with api.session.post(api.base + "/silences", data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400, body[:40]
            assert (await resp.json())["field"] == "body"


async def test_silence_over_the_configured_limit_is_409(kafka_bootstrap: str, redis_url: str) -> None:
    async with running_app(kafka_bootstrap, redis_url, max_silences=1) as api:
        first = {"matcher": "ticker:TSLA", "duration_s": 60}
        assert (await api.json("POST", "/silences", first))[0] == 201
        status, answer = await api.json("POST", "/silences", {"matcher": "ticker:AAPL", "duration_s": 60})
        assert status == 409 and "max 1" in answer["error"]


async def test_expiring_an_unknown_silence_is_404(api: Api) -> None:
    status, answer = await api.json("DELETE", "/silences/nope")
    assert status == 404 and "nope" in answer["error"]


async def test_spike_through_the_engine_shows_as_firing_alert_and_silence_marks_it(api: Api) -> None:
    assert (await api.json("GET", "/alerts"))[1] == {"alerts": [], "total": 0, "truncated": False}
    end_s = await fire_tsla_spike(api.app)

    status, body = await api.json("GET", "/alerts")
    assert status == 200
    by_key = {a["key"]: a for a in body["alerts"]}
    tsla = by_key["ticker:TSLA"]
    assert (tsla["status"], tsla["since_s"], tsla["silenced"]) == ("firing", end_s, False)
    signal = tsla["last_signal"]
    assert signal["bucket_end_s"] == end_s and signal["volume"] == VOLUME
    assert signal["neg_share"] > 0.5 and signal["baseline_neg_share"] < 0.2 and signal["triggered"]
    assert "ticker:AAPL" not in by_key and body["total"] == len(body["alerts"])
    assert [a["status"] for a in body["alerts"]] == ["firing"] * len(body["alerts"])
    assert (await api.json("GET", "/alerts?status=pending"))[1]["alerts"] == []

    await api.json("POST", "/silences", {"matcher": "ticker:TSLA", "duration_s": 600})
    by_key = {a["key"]: a for a in (await api.json("GET", "/alerts?status=firing"))[1]["alerts"]}
    # a ticker silence also covers the (topic, ticker) key, as in evaluation
    assert by_key["ticker:TSLA"]["silenced"] and by_key["topic_ticker:earnings|TSLA"]["silenced"]
    assert not by_key["topic:earnings"]["silenced"]


async def test_alerts_with_unknown_status_filter_is_400(api: Api) -> None:
    status, answer = await api.json("GET", "/alerts?status=resolved")
    assert status == 400 and answer["field"] == "status"


async def test_overview_lists_firing_alerts_silences_and_busiest_keys_html_escaped(api: Api) -> None:
    end_s = await fire_tsla_spike(api.app)
    await api.app.store.apply(messages(end_s - 2 * B, 1, 9, topic="macro", tickers=("AAPL",)))
    await api.json("POST", "/silences", {"matcher": "topic:macro", "duration_s": 600,
                                         "comment": "<script>alert(1)</script>"})
    status, overview = await api.json("GET", "/api/overview")
    assert status == 200 and overview["clock"]["now_s"] == end_s  # the stored detection cursor
    assert "ticker:TSLA" in {a["key"] for a in overview["firing"]}
    # the event-time hour up to end_s: its empty open bucket, the spike and 10 quiet ones; busiest first
    tsla = ["ticker:TSLA", "topic:earnings", "topic_ticker:earnings|TSLA"]
    aapl = ["ticker:AAPL", "topic:macro", "topic_ticker:macro|AAPL"]
    assert [(k["key"], k["volume"]) for k in overview["busiest"]] == [("all", 11 * VOLUME + 10)] + [
        (k, 11 * VOLUME) for k in tsla] + [(k, 10) for k in aapl]
    async with api.session.get(api.base + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert 'href="/keys/ticker%3ATSLA"' in page and "70%" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "http://" not in page and "https://" not in page  # no external assets


async def test_metrics_is_prometheus_text_and_readyz_is_200_while_running(api: Api) -> None:
    async with api.session.get(api.base + "/metrics") as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        text = await resp.text()
    assert "# TYPE " in text and "# HELP " in text
    assert await api.json("GET", "/readyz") == (200, {"ready": True})
    assert await api.json("GET", "/healthz") == (200, {"status": "ok"})
