"""The analyst's console: server-rendered pages (Jinja2 + inline SVG) and the JSON they are built from.

Pages: ``GET /`` (overview: firing/pending alerts with their numbers and evidence, history, clock,
busiest keys, silences) and ``GET /keys/{key}?range=24h`` (chart, alerts, evidence of one key).
JSON: ``GET /api/overview``, ``GET /api/keys`` and ``GET /api/keys/{key}/series?range=24h``.
One clock: event time (``monitor/web/clock.py``); no wall-clock range anywhere.
Pages carry a strict Content-Security-Policy (scripts only from ``/static``), escape everything
(autoescape), and keep no token: the silence form sends the one the analyst types, per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from alerts.detectors import window_start_s
from alerts.evidence import collect_evidence
from alerts.lifecycle import AlertState
from alerts.model import AlertStatus, Silence
from alerts.silences import list_silences
from consumers.schema import normalise_ticker
from monitor.web.alerts_api import AlertsApi, top_keys
from monitor.web.chart import Sparkline, build_chart, build_sparkline
from monitor.web.clock import ClockReading, EventClock
from monitor.web.series import RANGES_S, RangeError, build_series, markers_in, parse_range, series_window
from monitor.web.views import (
    AlertView,
    alert_view,
    distinct_evidence,
    fmt_duration,
    fmt_time,
    history_rows,
    key_markers,
    signal_fields,
    why_signal,
)
from monitor.windows.buckets import ALL_KEY, KEY_KINDS, align_s, key_path

PACKAGE = "monitor.web"
MAX_ALERT_CARDS = 50
"""Alerts shown (with evidence) per overview, firing first: 2,000 live alerts made a 4 MB page that held
the event loop for a second at every 30 s refresh; the rest are counted and listed by ``/alerts``."""
EVIDENCE_PER_ALERT = 3
EVIDENCE_PER_KEY = 8
EVIDENCE_FETCHED = 40
"""Raw evidence items read before de-duplication (syndicated copies crowd the top)."""
HISTORY_ROWS = 25
BUSIEST_WINDOW_S = 3600
SPARKLINE_RANGE = "6h"
MAX_KEYS_LISTED = 500
FETCH_CONCURRENCY = 8
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
}
"""On template pages; every answer also gets monitor/web/headers.py's (nosniff, no-referrer, Cache-Control)."""


key_url = key_path


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader(PACKAGE, "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time=fmt_time, duration=fmt_duration, key_url=key_url,
                       pct=lambda v, digits=0: "-" if v is None else f"{v:.{digits}%}")
    return env


def static_dir() -> Path:
    return Path(str(files(PACKAGE).joinpath("static")))


def _episode_range(state: AlertState, bucket_s: int) -> tuple[int, int] | None:
    """Buckets of the current episode (firing: since it fired, from the start of the window it fired on, as the
    notification's evidence is; pending: the last bucket). The multi-scale window before the firing bucket was
    left out, so the card's headlines were never the ones the desk was sent (found by review)."""
    sig = state.last_signal
    if sig is None:
        return None
    if state.status is AlertStatus.FIRING and state.started_at_s is not None:
        trigger = why_signal(state)
        # since it fired: a reminder replaces the firing signal, whose window then starts long after the episode did
        start_s = min(window_start_s(trigger), state.started_at_s - bucket_s) if trigger is not None else (
            state.started_at_s - bucket_s)
        return min(start_s, sig.bucket_start_s), sig.bucket_end_s
    return sig.bucket_start_s, sig.bucket_end_s


class Console:
    """Routes of the console over the running engine's stores, its clock and its recent notifications."""

    def __init__(self, api: AlertsApi, clock: EventClock, recent: Sequence[object], *, baseline_s: int,
                 writes_enabled: bool) -> None:
        self.api = api
        self.clock = clock
        self.recent = recent
        self.baseline_s = baseline_s
        self.writes_enabled = writes_enabled
        self.env = _templates()

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self._overview_page),
            web.get("/keys", self._keys_page),
            web.get("/keys/{key}", self._key_page),
            web.get("/api/overview", self._overview_json),
            web.get("/api/keys", self._keys_json),
            web.get("/api/keys/{key}/series", self._series_json),
            web.static("/static", static_dir(), append_version=False),
        ]

    def _html(self, template: str, **context: Any) -> web.Response:
        text = self.env.get_template(template).render(writes_enabled=self.writes_enabled, **context)
        return web.Response(text=text, content_type="text/html", headers=SECURITY_HEADERS)

    # -- overview ---------------------------------------------------------------------------------

    async def _alert_views(self, states: Sequence[AlertState], now_s: int,
                           silences: Sequence[Silence]) -> list[AlertView]:
        b = self.api.store.bucket_s
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def view(state: AlertState) -> AlertView:
            span = _episode_range(state, b)
            if span is None:
                return alert_view(state, now_s, silences)
            async with gate:
                raw = await collect_evidence(self.api.store, state.window_key, *span, EVIDENCE_FETCHED)
            return alert_view(state, now_s, silences, distinct_evidence(raw, EVIDENCE_PER_ALERT))

        return list(await asyncio.gather(*(view(s) for s in states[:MAX_ALERT_CARDS])))

    async def _sparklines(self, states: Sequence[AlertState],
                          all_states: Sequence[AlertState]) -> dict[str, Sparkline]:
        """The last 6 h of event time of each live alert's key (the first ``MAX_ALERT_CARDS``)."""
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(key: str) -> tuple[str, Sparkline]:
            async with gate:
                data = await self.key_series(key, SPARKLINE_RANGE, all_states)
            return key, build_sparkline(data["points"], data["window"], data["markers"])

        keys = list(dict.fromkeys(s.window_key for s in states[:MAX_ALERT_CARDS]))
        return dict(await asyncio.gather(*(one(k) for k in keys)))

    def busiest_range(self, now_s: int) -> tuple[int, int]:
        """Bucket starts of the event-time hour up to ``now_s``, the bucket holding it included."""
        b = self.api.store.bucket_s
        end = align_s(now_s, b) + b
        return min(end - b, end - BUSIEST_WINDOW_S), end

    async def overview(self) -> dict[str, Any]:
        clock = await self.clock.read()
        live = await self.api.live_alerts()
        # silences as detection judges them next (the cursor may trail "now"), like GET /silences
        silences = await list_silences(self.api.state, clock.judged_next_s)
        alerts = await self._alert_views(live, clock.judged_next_s, silences)
        all_states = list((await self.api.state.load_states()).values())
        busiest, active = await top_keys(self.api.store, *self.busiest_range(clock.now_s))
        return {
            "clock": clock,
            "firing": [a for a in alerts if a.status == AlertStatus.FIRING],
            "pending": [a for a in alerts if a.status == AlertStatus.PENDING],
            "firing_total": sum(s.status == AlertStatus.FIRING for s in live),
            "pending_total": sum(s.status == AlertStatus.PENDING for s in live),
            "history": history_rows(self.recent, HISTORY_ROWS, states=all_states),
            "silences": [(s, s.active_at(clock.judged_next_s)) for s in silences],
            "busiest": busiest, "active_keys": active, "busiest_window_s": BUSIEST_WINDOW_S,
            "live_states": live, "all_states": all_states,
        }

    async def _overview_page(self, _: web.Request) -> web.Response:
        data = await self.overview()
        sparklines = await self._sparklines(data["live_states"], data["all_states"])
        return self._html("overview.html", **data, sparklines=sparklines)

    async def _overview_json(self, _: web.Request) -> web.Response:
        data = await self.overview()
        clock: ClockReading = data["clock"]
        return web.json_response({
            "clock": {**asdict(clock), "event_lag_s": clock.event_lag_s, "detection_lag_s": clock.detection_lag_s},
            "firing": [asdict(a) for a in data["firing"]],
            "pending": [asdict(a) for a in data["pending"]],
            "firing_total": data["firing_total"], "pending_total": data["pending_total"],
            "truncated": len(data["firing"]) + len(data["pending"]) < data["firing_total"] + data["pending_total"],
            "history": [asdict(h) for h in data["history"]],
            "silences": [{**asdict(s), "active": active} for s, active in data["silences"]],
            "busiest": [{"key": k.key, "volume": k.volume, "negative": k.negative} for k in data["busiest"]],
        })

    # -- keys ---------------------------------------------------------------------------------------

    async def key_series(self, key: str, range_label: str | None,
                         states: Sequence[AlertState] | None = None) -> dict[str, Any]:
        """Points, markers and alert states of ``key`` over the range ending at event-time now."""
        label, range_s = parse_range(range_label)
        clock = await self.clock.read()
        window = series_window(clock.now_s, range_s, self.api.store.bucket_s)
        buckets = await self.api.store.buckets(key, window.start_s - self.baseline_s, window.end_s)
        points = build_series(buckets, window, self.baseline_s)
        if states is None:
            states = list((await self.api.state.load_states()).values())
        states = [s for s in states if s.window_key == key]
        markers = markers_in(key_markers(key, states, self.recent), window)
        return {"key": key, "range": label, "clock": clock, "window": window, "points": points,
                "markers": markers, "states": states}

    async def _series_json(self, request: web.Request) -> web.Response:
        try:
            data = await self.key_series(request.match_info["key"], request.query.get("range"))
        except RangeError as exc:
            return web.json_response({"error": str(exc), "field": "range"}, status=400)
        return web.json_response({
            "key": data["key"], "range": data["range"], "clock": "event_time",
            "now_s": data["clock"].now_s, "window": asdict(data["window"]),
            "baseline_s": self.baseline_s,
            "points": [asdict(p) for p in data["points"]],
            "markers": [asdict(m) for m in data["markers"]],
        })

    async def _key_page(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        try:
            data = await self.key_series(key, request.query.get("range"))
        except RangeError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        window = data["window"]
        raw = await collect_evidence(self.api.store, key, window.start_s, window.end_s, EVIDENCE_FETCHED)
        judged_s = data["clock"].judged_next_s
        silences = await list_silences(self.api.state, judged_s)
        alerts = [alert_view(s, judged_s, silences) for s in data["states"]
                  if s.status in (AlertStatus.FIRING, AlertStatus.PENDING)]
        points = data["points"]
        return self._html(
            "key.html", **data, ranges=list(RANGES_S), chart=build_chart(points, window, data["markers"]),
            evidence=distinct_evidence(raw, EVIDENCE_PER_KEY), alerts=alerts, baseline_s=self.baseline_s,
            history=history_rows(self.recent, HISTORY_ROWS, key=key, states=data["states"]),
            totals={"volume": sum(p.volume for p in points), "negative": sum(p.negative for p in points)},
            latest=next((p for p in reversed(points) if p.volume), None),
            last_signal_fields=signal_fields(why_signal(data["states"][0])) if data["states"] else [],
        )

    async def _keys_page(self, request: web.Request) -> web.Response:
        wanted = request.query.get("key", "").strip()
        if wanted:
            raise web.HTTPFound(key_url(typed_key(wanted)))
        clock = await self.clock.read()
        keys = await self.api.store.active_keys(clock.now_s - RANGES_S["24h"])
        return self._html("keys.html", clock=clock, keys=keys[:MAX_KEYS_LISTED], total=len(keys))

    async def _keys_json(self, request: web.Request) -> web.Response:
        try:
            _, range_s = parse_range(request.query.get("range"))
        except RangeError as exc:
            return web.json_response({"error": str(exc), "field": "range"}, status=400)
        now_s = await self.clock.now_s()
        keys = await self.api.store.active_keys(now_s - range_s)
        return web.json_response({"keys": keys[:MAX_KEYS_LISTED], "total": len(keys),
                                  "truncated": len(keys) > MAX_KEYS_LISTED, "since_s": now_s - range_s})


def typed_key(wanted: str) -> str:
    """The window key meant by what was typed in the console's key box: ``wfc``, ``$WFC`` and ``ticker:wfc``
    are ``ticker:WFC`` (tickers are stored upper case; ``ticker:wfc`` showed an empty page saying "No messages",
    while ``POST /silences`` already answered "did you mean ticker:WFC?"; found by review)."""
    if wanted == ALL_KEY:
        return wanted
    kind = next((k for k in KEY_KINDS if wanted.startswith(k)), None)
    if kind is None:
        return f"ticker:{normalise_ticker(wanted)}" if normalise_ticker(wanted) else wanted
    rest = wanted[len(kind):]
    if kind == "ticker:":
        return kind + (normalise_ticker(rest) or rest)
    if kind == "topic_ticker:" and "|" in rest:
        topic, symbol = rest.rsplit("|", 1)
        return f"{kind}{topic}|{normalise_ticker(symbol) or symbol}"
    return wanted


__all__ = ["Console", "key_url", "typed_key"]
