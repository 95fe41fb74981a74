"""The daemon's web side: the analyst's console (pages + JSON), the event-time clock and write auth.

``install`` adds it all to the daemon's ``HttpServer``: the alerts/silences API (monitor/web/alerts_api.py),
the console routes and the bearer-token guard for writes, and applies ``[http]``'s connection limits.
Templates and static files are package data, so an installed wheel serves the same pages with no build step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alerts.engine import AlertEngine
from monitor.config import Settings
from monitor.web.alerts_api import AlertsApi
from monitor.web.auth import bearer_auth
from monitor.web.clock import EventClock
from monitor.web.console import Console
from monitor.web.series import display_baseline_s
from monitor.web.server import HttpServer


def install(http: HttpServer, engine: AlertEngine, settings: Settings, *, watermark: Callable[[], int | None],
            recent: Sequence[object]) -> EventClock:
    """Wire the console into ``http`` (before it starts); returns the clock it uses."""
    http.max_connections = settings.http.max_connections
    http.keepalive_timeout_s = settings.http.keepalive_timeout_s
    clock = EventClock(watermark, engine.state)
    http.event_now_s = clock.now_s
    api = AlertsApi.for_engine(engine, settings, clock)
    token = settings.http.api_token or None
    baseline_s = display_baseline_s(settings.alerts.detection, settings.alerts.baseline_buckets,
                                    settings.windows.bucket_s)
    console = Console(api, clock, recent, baseline_s=baseline_s, writes_enabled=token is not None)
    http.app.middlewares.append(bearer_auth(token))
    http.add_routes([*api.routes(), *console.routes()])
    return clock
