"""The analyst's console: server-rendered pages (Jinja2 + inline SVG) and the JSON they are built from.

Pages: ``GET /`` (overview: firing/pending alerts with their numbers and evidence, history, clock,
busiest keys, silences) and ``GET /keys/{key}?range=24h`` (chart, alerts, evidence of one key).
JSON: ``GET /api/overview``, ``GET /api/keys`` and ``GET /api/keys/{key}/series?range=24h``.
``/keys`` and ``/api/keys`` list keys in ``key_rank`` order (all, topics, tickers, topic x ticker), a page at a
time (``?prefix=``, any case, and ``?offset=``). A key with no data within the store's retention and no alert
state is a 404 naming the keys it may have meant; so is any other ``/api/`` path (JSON).
One clock: event time (``monitor/web/clock.py``); no wall-clock range anywhere.
Pages carry a strict Content-Security-Policy (scripts only from ``/static``), escape everything
(autoescape), and keep no token: the silence form sends the one the analyst types, per request.
"""

from __future__ import annotations

import asyncio
import difflib
import heapq
from collections.abc import Sequence
from dataclasses import asdict
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
from monitor.web.server import is_integer
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
from monitor.windows.buckets import ALL_KEY, KEY_KINDS, align_s, key_path, key_rank

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
"""Keys per page of ``/keys`` and ``/api/keys`` (``?offset=`` pages on)."""
MAX_SUGGESTIONS = 5
MAX_KEYS_COMPARED = 1_000
"""Most keys of one kind a 404 compares spellings with (difflib: about 3 ms per 1,000)."""
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
            web.get("/api/{path:.*}", self._no_api_route),  # after the others: only what none of them serves
            web.static("/static", static_dir(), append_version=False),
        ]

    def _html(self, template: str, status: int = 200, **context: Any) -> web.Response:
        text = self.env.get_template(template).render(writes_enabled=self.writes_enabled, **context)
        return web.Response(text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS)

    async def _no_api_route(self, request: web.Request) -> web.Response:
        """A JSON 404, as every other ``/api/`` answer is JSON (aiohttp's own 404 is plain text)."""
        return web.json_response({"error": f"no API route {request.path[:200]!r}: see /api/overview, /api/keys, "
                                           "/api/keys/{key}/series"}, status=404)

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
        firing_keys = [s.window_key for s in live if s.status is AlertStatus.FIRING]
        busiest, active = await top_keys(self.api.store, *self.busiest_range(clock.now_s), always=firing_keys)
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

    async def has_data(self, key: str) -> bool:
        """Whether the store holds a bucket of ``key`` within its retention (``all`` always exists)."""
        if key == ALL_KEY:
            return True
        now_s, retention_s = await self.clock.now_s(), self.api.store.retention_s
        return bool(await self.api.store.buckets(key, now_s - retention_s, now_s + retention_s))

    async def _is_known(self, data: dict[str, Any]) -> bool:
        """A key page or series is served for a key with data or an alert state: any other one (a typo,
        ``ticker:NOPE``, ``a/b``) answered 200 with an empty chart, as if the key were just quiet (found by review)."""
        return bool(data["states"]) or any(p.volume for p in data["points"]) or await self.has_data(data["key"])

    async def suggestions(self, key: str) -> list[str]:
        """Keys with data within the retention that ``key`` may have meant (``suggest_keys``)."""
        now_s = await self.clock.now_s()
        return suggest_keys(key, await self.api.store.active_keys(now_s - self.api.store.retention_s))

    def _unknown(self, key: str) -> str:
        return (f"no data for {key!r} within the {fmt_duration(self.api.store.retention_s)} kept and no alert: "
                "GET /api/keys lists the keys")

    async def _series_json(self, request: web.Request) -> web.Response:
        try:
            data = await self.key_series(request.match_info["key"], request.query.get("range"))
        except RangeError as exc:
            return web.json_response({"error": str(exc), "field": "range"}, status=400)
        if not await self._is_known(data):
            return web.json_response({"error": self._unknown(data["key"]), "field": "key",
                                      "did_you_mean": await self.suggestions(data["key"])}, status=404)
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
        if not await self._is_known(data):
            listing = await self._key_listing("", 0)
            listing.update(missing=key, missing_why=self._unknown(key), suggestions=await self.suggestions(key))
            return self._html("keys.html", status=404, **listing)
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

    async def _key_listing(self, prefix: str, offset: int) -> dict[str, Any]:
        """One page of the keys with data in the 24 h of event time up to now, for ``keys.html``."""
        clock = await self.clock.read()
        keys, total = page_of_keys(await self.api.store.active_keys(clock.now_s - RANGES_S["24h"]), prefix, offset)
        return {"clock": clock, "keys": keys, "total": total, "offset": offset, "prefix": prefix,
                "previous_url": _listing_url(prefix, previous_offset(offset, total)) if offset else None,
                "next_url": _listing_url(prefix, offset + len(keys)) if offset + len(keys) < total else None,
                "missing": None, "missing_why": "", "suggestions": []}

    async def _keys_page(self, request: web.Request) -> web.Response:
        wanted = request.query.get("key", "").strip()
        if wanted:
            raise web.HTTPFound(key_url(await self._typed_key(wanted)))
        try:
            offset = _offset(request.query.get("offset"))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        return self._html("keys.html", **await self._key_listing(request.query.get("prefix", "").strip(), offset))

    async def _typed_key(self, wanted: str) -> str:
        """The first of ``typed_keys(wanted)`` with data (``earnings`` is ``topic:earnings``, not a ticker nobody
        trades), else the last, which ``typed_key`` names."""
        candidates = typed_keys(wanted)
        for key in candidates[:-1]:
            if await self.has_data(key):
                return key
        return candidates[-1]

    async def _keys_json(self, request: web.Request) -> web.Response:
        try:
            _, range_s = parse_range(request.query.get("range"))
        except RangeError as exc:
            return web.json_response({"error": str(exc), "field": "range"}, status=400)
        try:
            offset = _offset(request.query.get("offset"))
        except ValueError as exc:
            return web.json_response({"error": str(exc), "field": "offset"}, status=400)
        prefix = request.query.get("prefix", "").strip()
        now_s = await self.clock.now_s()
        keys, total = page_of_keys(await self.api.store.active_keys(now_s - range_s), prefix, offset)
        more = offset + len(keys) < total
        return web.json_response({"keys": keys, "total": total, "offset": offset, "prefix": prefix,
                                  "truncated": more, "next_offset": offset + len(keys) if more else None,
                                  "since_s": now_s - range_s})


def _offset(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not is_integer(raw) or int(raw) < 0:
        raise ValueError(f"offset must be an integer 0 or more (ASCII digits), not {raw[:40]!r}")
    return int(raw)


def previous_offset(offset: int, total: int) -> int:
    """Where a page's "previous" link goes: the page before, or from past the end the last page there is
    (``?offset=100000`` linked to ``?offset=99500``, empty again: found by review)."""
    if offset >= total:
        return max(0, total - 1) // MAX_KEYS_LISTED * MAX_KEYS_LISTED
    return max(0, offset - MAX_KEYS_LISTED)


def _listing_url(prefix: str, offset: int) -> str:
    query = {k: v for k, v in (("prefix", prefix), ("offset", str(offset) if offset else "")) if v}
    return "/keys" + (f"?{urlencode(query)}" if query else "")


def page_of_keys(keys: Sequence[str], prefix: str, offset: int) -> tuple[list[str], int]:
    """The ``MAX_KEYS_LISTED`` keys from ``offset`` of those starting with ``prefix`` (any case), in ``key_rank``
    order, and how many start with it. Cut alphabetically, 3,000 tickers left every topic (and ``ticker:WFC``)
    out of the list, with no way to page on (found by review)."""
    folded = prefix.lower()
    matching = sorted((k for k in keys if k.lower().startswith(folded)), key=key_rank)
    return matching[offset:offset + MAX_KEYS_LISTED], len(matching)


def suggest_keys(wanted: str, known: Sequence[str], limit: int = MAX_SUGGESTIONS) -> list[str]:
    """Keys of ``known`` that ``wanted`` may have meant: what the key box makes of it (``typed_keys``), a key
    equal to it but for case, then the closest spellings of its name among keys of its kind whose name starts
    with the same character (``compared_keys``)."""
    have = set(known)
    guessed = typed_key(wanted)
    kind = next((k for k in KEY_KINDS if guessed.startswith(k)), "")
    name = guessed[len(kind):].lower()
    by_name = {k[len(kind):].lower(): k for k in compared_keys(name, kind, known)}
    close = difflib.get_close_matches(name, list(by_name), n=limit, cutoff=0.6)
    found = [*(k for k in typed_keys(wanted) if k in have), *(k for k in known if k.lower() == wanted.lower()),
             *(by_name[c] for c in close)]
    return list(dict.fromkeys(k for k in found if k != wanted))[:limit]


def compared_keys(name: str, kind: str, known: Sequence[str]) -> list[str]:
    """The keys of ``kind`` whose name starts with ``name``'s first character that a 404 compares spellings with:
    the ``MAX_KEYS_COMPARED`` sharing the longest start with ``name`` (the typed topic of a topic x ticker key),
    then the nearest in length. The first 1,000 alphabetically left ``topic_ticker:markets|WFC`` out behind 1,200
    ``topic_ticker:macro|T...`` keys, so ``markets|WFCC`` had no suggestion (found by review)."""
    same_kind = [k for k in known if k.startswith(kind) and k[len(kind):len(kind) + 1].lower() == name[:1]]

    def closeness(key: str) -> tuple[int, int, str]:
        other, shared = key[len(kind):].lower(), 0
        for x, y in zip(name, other, strict=False):
            if x != y:
                break
            shared += 1
        return -shared, abs(len(other) - len(name)), key

    return heapq.nsmallest(MAX_KEYS_COMPARED, same_kind, key=closeness)


def typed_keys(wanted: str) -> list[str]:
    """The window keys what was typed in the console's key box may mean, the one to go to when none has data
    last: ``wfc``, ``$WFC`` and ``ticker:wfc`` are ``ticker:WFC`` (tickers are stored upper case); a bare word is
    also a topic (``earnings``: ``topic:earnings``, which the console prefers when it has data); the kind prefix
    is matched in any case and a topic is lower-cased (``Topic:Earnings``, ``topic_ticker:General_News|wfc``);
    ``ALL`` is ``all``. ``TOPIC:earnings`` went to ``ticker:TOPIC:EARNINGS`` and ``earnings`` to
    ``ticker:EARNINGS`` (found by review)."""
    if wanted.lower() == ALL_KEY:
        return [ALL_KEY]
    kind = next((k for k in KEY_KINDS if wanted.lower().startswith(k)), None)
    if kind is None:
        symbol = normalise_ticker(wanted)
        topics = [] if wanted.startswith("$") else [f"topic:{wanted}", f"topic:{wanted.lower()}"]
        return list(dict.fromkeys([*topics, f"ticker:{symbol}" if symbol else wanted]))
    rest = wanted[len(kind):]
    if kind == "ticker:":
        return [kind + (normalise_ticker(rest) or rest)]
    topic, bar, symbol = rest.rpartition("|") if kind == "topic_ticker:" and "|" in rest else (rest, "", "")
    symbol = normalise_ticker(symbol) or symbol
    return list(dict.fromkeys([f"{kind}{topic}{bar}{symbol}", f"{kind}{topic.lower()}{bar}{symbol}"]))


def typed_key(wanted: str) -> str:
    """The key the console's key box goes to for ``wanted`` when none of ``typed_keys`` has data."""
    return typed_keys(wanted)[-1]


__all__ = ["Console", "key_url", "page_of_keys", "suggest_keys", "typed_key", "typed_keys"]
