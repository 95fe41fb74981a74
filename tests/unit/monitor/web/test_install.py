"""The console as ``monitor.web.install`` wires it from a config: what its charts draw against."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from alerts.engine import AlertEngine
from alerts.outbox import MemoryOutbox
from alerts.state import MemoryAlertStateStore
from monitor.config import REPO_ROOT, load_settings
from monitor.web import install
from monitor.web.server import HttpServer
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import messages

T0 = 1_793_836_800  # 2026-11-05 00:00 UTC


async def test_production_multiscale_charts_draw_a_baseline_on_every_range() -> None:
    """Found by review: multi-scale detection ignores ``baseline_buckets``, yet the console drew its baseline over
    24 x 5 min = 2 h, fewer hourly blocks than a baseline needs: no chart ever drew one, while the legend named it."""
    settings = load_settings(REPO_ROOT / "configs" / "production.toml")
    assert settings.alerts.detection == "multiscale"
    bucket_s = settings.windows.bucket_s
    store = MemoryWindowStore(bucket_s, 40 * 86_400)
    hours = range(-35 * 24, 1)
    for h in hours:  # one message in ten negative, every hour for 35 days
        await store.apply(messages(T0 + h * 3600, 1, 9, tickers=("TSLA",)))
    engine = AlertEngine(store, settings.alerts, MemoryAlertStateStore(), MemoryOutbox([]), [])
    http = HttpServer("127.0.0.1", 0, store, ready=lambda: True)
    install(http, engine, settings, watermark=lambda: T0 + 60, recent=[])
    async with TestClient(TestServer(http.app)) as client:
        for range_label in ("6h", "24h", "7d", "30d"):
            body = await (await client.get(f"/api/keys/ticker:TSLA/series?range={range_label}")).json()
            with_baseline = [p for p in body["points"] if p["baseline_share"] is not None]
            assert len(with_baseline) == len(body["points"]), (range_label, body["baseline_s"])
            assert {round(p["baseline_share"], 3) for p in with_baseline} == {0.1}
    assert body["baseline_s"] >= 86_400
