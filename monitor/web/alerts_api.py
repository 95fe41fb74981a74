"""HTTP routes for alerts and silences (added via ``add_routes``; the dashboard is monitor/web/).

- ``GET /alerts``: live (pending/firing) alert states from the engine's state store, firing first; each with
  ``last_signal`` (the latest bucket), ``firing_signal`` (what fired: a firing alert's latest bucket is often a
  quiet one, with ``triggered: []``) and ``peak_signal`` (the episode's strongest bucket so far);
- ``GET /silences`` (``?all=1`` includes expired ones), ``POST /silences``, ``DELETE /silences/{id}``:
  the same operations and rules as ``monitor silences`` (alerts/silences.py does the work).

"Now" is event time (``monitor/web/clock.py``: the watermark), because that is what evaluation
compares silences with: a silence made during a replay or a backlog mutes the buckets judged next,
and ``active``/``silenced`` say what evaluation will decide, not what the wall clock suggests.
Writes need the bearer token (monitor/web/auth.py). Silences are created on the daemon's own state
store, so unlike the CLI this also works with ``memory://``.
Every list is capped: a listing says ``total`` and ``truncated`` instead of growing without bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from alerts.engine import AlertEngine
from alerts.lifecycle import AlertState, silenced
from alerts.model import AlertStatus, Silence, one_line
from alerts.silences import create_silence, expire_silence, list_silences
from alerts.state import AlertStateStore, SilenceLimitError
from consumers.schema import InvalidMessage, check_encodable
from monitor.config import Settings
from monitor.windows.base import WindowStore
from monitor.windows.buckets import key_rank

if TYPE_CHECKING:
    from monitor.web.clock import EventClock

MAX_ALERTS = 500
MAX_SILENCES = 500
MAX_TEXT_CHARS = 500
"""Longest ``comment`` / ``created_by`` accepted (they are shown in listings and the dashboard)."""
TOP_KEYS = 20
MAX_KEYS_SCANNED = 1_000
"""Most window keys the dashboard sums to rank the busiest ones (keeps one page view cheap)."""
SILENCE_FIELDS = {"matcher": str, "duration_s": int, "comment": str, "created_by": str}
FREE_TEXT_FIELDS = ("comment", "created_by")
"""Shown as one line in listings and the overview: cleaned like evidence text (``one_line``)."""
# create_silence words its errors for the CLI; the API names the JSON field instead of the flag.
_CLI_FLAGS = {"--matcher": "matcher", "the duration": "duration_s"}
LIVE_ORDER = {AlertStatus.FIRING: 0, AlertStatus.PENDING: 1}


class FieldError(ValueError):
    """A request field is missing or malformed; ``field`` names it in the 400 answer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class KeyVolume:
    key: str
    volume: int
    negative: int

    @property
    def neg_share(self) -> float:
        return self.negative / self.volume if self.volume else 0.0


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def _since_s(state: AlertState) -> int | None:
    return state.started_at_s if state.status is AlertStatus.FIRING else state.pending_since_s


def alert_json(state: AlertState, silences: Sequence[Silence], now_s: int) -> dict[str, Any]:
    return {
        "key": state.window_key,
        "dedup_key": state.dedup_key,
        "rule": state.rule,
        "status": str(state.status),
        "since_s": _since_s(state),
        "silenced": silenced(state.window_key, now_s, silences),
        # a firing episode may be unpaged: silenced, in cooldown, or from old data (alerts.max_page_age_s)
        "paged": state.notified,
        "last_signal": None if state.last_signal is None else asdict(state.last_signal),
        # why it fires: the latest bucket is often a quiet one while a firing alert waits to resolve
        "firing_signal": None if state.firing_signal is None else asdict(state.firing_signal),
        # how bad the episode got so far (its strongest bucket)
        "peak_signal": None if state.peak_signal is None else asdict(state.peak_signal),
    }


def silence_json(silence: Silence, now_s: int) -> dict[str, Any]:
    return {**asdict(silence), "active": silence.active_at(now_s)}


def parse_silence_request(body: object) -> dict[str, Any]:
    """The JSON body of ``POST /silences`` as keyword arguments, or ``FieldError``.

    Only types and sizes are checked here; the matcher and duration rules are create_silence's. ``comment`` and
    ``created_by`` lose direction controls and line breaks, as evidence text does: a U+202E reversed the rest
    of its row in the overview's silences table (found by review).
    """
    if not isinstance(body, dict):
        raise FieldError("body", "body must be a JSON object")
    unknown = sorted(set(body) - set(SILENCE_FIELDS))
    if unknown:
        raise FieldError(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    for name in ("matcher", "duration_s"):
        if name not in body:
            raise FieldError(name, f"{name} is required")
    out: dict[str, Any] = {}
    for name, kind in SILENCE_FIELDS.items():
        value = body.get(name, "")
        # bool is an int subclass: {"duration_s": true} is a client bug, not one second
        if not isinstance(value, kind) or isinstance(value, bool):
            raise FieldError(name, f"{name} must be {'an integer' if kind is int else 'a string'}")
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise FieldError(name, f"{name} must be at most {MAX_TEXT_CHARS} characters")
        try:
            check_encodable(value)
        except InvalidMessage as exc:  # a "\ud800" escape: stored, it broke every page showing the silence
            raise FieldError(name, f"{name} holds a lone surrogate (not valid UTF-8 text)") from exc
        out[name] = one_line(value) if name in FREE_TEXT_FIELDS and isinstance(value, str) else value
    return out


def _cli_error_field(message: str) -> tuple[str, str]:
    for flag, field in _CLI_FLAGS.items():
        if flag in message:
            return field, message.replace(flag, field)
    return "body", message


async def top_keys(store: WindowStore, start_s: int, end_s: int, limit: int = TOP_KEYS,
                   max_keys: int = MAX_KEYS_SCANNED, always: Sequence[str] = ()) -> tuple[list[KeyVolume], int]:
    """The ``limit`` keys with the most messages in buckets starting in ``[start_s, end_s)``.

    At most ``max_keys`` active keys are summed, ``all`` and the topics first (``key_rank``, as detection's key
    cap): cut alphabetically, a universe of thousands of tickers left every ``topic:*`` key out of the ranking
    (found by review). The active ones of ``always`` (the keys of firing alerts, at most ``max_keys``) are summed
    too: past the cap, ``ticker:WFC`` (92 messages, firing) was left out while ``ticker:A0000`` (1) was ranked
    (found by review). Read with ``buckets_many`` (bounded chunks). Returns (ranking, number of active keys).
    """
    active = await store.active_keys(start_s)
    live = set(active)
    firing = [k for k in dict.fromkeys(always) if k in live][:max_keys]
    keys = list(dict.fromkeys([*firing, *sorted(active, key=key_rank)[:max_keys]]))
    found = await store.buckets_many(keys, start_s, end_s)
    volumes = [KeyVolume(k, sum(b.volume for b in found[k]), sum(b.negative for b in found[k])) for k in keys]
    ranked = sorted((v for v in volumes if v.volume), key=lambda v: (-v.volume, v.key))
    return ranked[:limit], len(active)


class AlertsApi:
    """The routes over one alert state store and one window store (those of the running engine)."""

    def __init__(self, state: AlertStateStore, store: WindowStore, clock: EventClock, *, lookback_s: int,
                 max_silence_duration_s: int) -> None:
        self.state = state
        self.store = store
        self.lookback_s = lookback_s
        """How far back a new silence starts (same as the CLI: allowed lateness + one bucket)."""
        self.max_silence_duration_s = max_silence_duration_s
        self._clock = clock

    @classmethod
    def for_engine(cls, engine: AlertEngine, settings: Settings, clock: EventClock) -> AlertsApi:
        w = settings.windows
        return cls(engine.state, engine.store, clock, lookback_s=w.allowed_lateness_s + w.bucket_s,
                   max_silence_duration_s=settings.alerts.max_silence_duration_s)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/alerts", self._alerts),
            web.get("/silences", self._silences),
            web.post("/silences", self._create_silence),
            web.delete("/silences/{id}", self._expire_silence),
        ]

    async def _judged_next_s(self) -> int:
        """Where detection judges next (``ClockReading.judged_next_s``): every silence answer is judged there, as
        detection will judge it, not at a watermark ahead of it."""
        return (await self._clock.read()).judged_next_s

    async def live_alerts(self) -> list[AlertState]:
        """Pending and firing states, firing first, then newest first."""
        states = [s for s in (await self.state.load_states()).values() if s.status in LIVE_ORDER]
        return sorted(states, key=lambda s: (LIVE_ORDER[s.status], -(_since_s(s) or 0), s.window_key))

    async def _alerts(self, request: web.Request) -> web.Response:
        wanted = request.query.get("status")
        if wanted is not None and wanted not in ("pending", "firing"):
            return _error(400, "status must be 'pending' or 'firing'", "status")
        judged_s = await self._judged_next_s()
        states = [s for s in await self.live_alerts() if wanted is None or s.status == wanted]
        silences = await self.state.list_silences()
        return web.json_response({
            "alerts": [alert_json(s, silences, judged_s) for s in states[:MAX_ALERTS]],
            "total": len(states), "truncated": len(states) > MAX_ALERTS,
        })

    async def _silences(self, request: web.Request) -> web.Response:
        # live where detection judges next (as create and expire anchor): one ending between the cursor and the
        # watermark still mutes buckets to be judged, so it is live, not expired
        at_s = await self._judged_next_s()
        include_expired = request.query.get("all", "") in ("1", "true")
        found = await list_silences(self.state, at_s, include_expired=include_expired)
        return web.json_response({
            "silences": [silence_json(s, at_s) for s in found[:MAX_SILENCES]],
            "total": len(found), "truncated": len(found) > MAX_SILENCES,
        })

    async def _create_silence(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, RecursionError, LookupError):  # bad UTF-8 or JSON, ints past 4,300 digits, deep
            # nesting, a charset Python does not know (LookupError: a 500 with a traceback; found by review)
            return _error(400, "body must be UTF-8 JSON", "body")
        try:
            fields = parse_silence_request(body)
        except FieldError as exc:
            return _error(400, str(exc), exc.field)
        clock = await self._clock.read()
        now_s = clock.now_s
        try:
            silence = await create_silence(
                self.state, fields["matcher"], fields["duration_s"], now_s, comment=fields["comment"],
                created_by=fields["created_by"], lookback_s=self.lookback_s, judged_from_s=clock.judged_next_s,
                wall_s=clock.wall_s,
                max_duration_s=self.max_silence_duration_s,
            )
        except ValueError as exc:
            field, message = _cli_error_field(str(exc))
            return _error(400, message, field)
        except SilenceLimitError as exc:
            return _error(409, f"{exc} -- expire some silences first")
        return web.json_response(silence_json(silence, clock.judged_next_s), status=201)

    async def _expire_silence(self, request: web.Request) -> web.Response:
        silence_id = request.match_info["id"]
        ends_s = await self._judged_next_s()  # not the watermark: the buckets between are not muted
        if not await expire_silence(self.state, silence_id, ends_s):
            return _error(404, f"no silence with id {silence_id!r}", "id")
        return web.json_response({"expired": silence_id})
