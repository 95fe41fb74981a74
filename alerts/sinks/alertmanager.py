"""alertmanager+http(s)://host:9093 -- Prometheus Alertmanager's ``POST /api/v2/alerts``.

One Alertmanager alert per alert item: labels ``alertname``, ``key``, ``ticker``, ``topic`` (empty
ones left out, as Alertmanager drops them anyway), ``severity``; annotations ``summary``, ``numbers``,
``evidence``; ``startsAt`` = the episode start (event time, but never after now: event time may lead the
wall clock by up to ``source.max_future_s``, and Alertmanager refuses an ``endsAt`` before ``startsAt``
with a 400); ``generatorURL`` = the key's dashboard page under ``http.public_url``.

Alertmanager forgets an alert that is not re-posted (like Prometheus does every evaluation), so a
firing alert carries ``endsAt = now + ends_after_s`` and is re-posted every ``refresh_interval_s``
while it fires: the outbox delivery loop calls ``refresh`` with the alerts the durable state store
says are firing and announced (see alerts/delivery.py; this survives restarts and leader handovers,
unlike a list kept inside the sink, and follows silences: a muted episode is not re-posted).
A dead daemon's alerts thus resolve by themselves ``ends_after_s`` later. A resolved notice posts
``endsAt = now``. Many alerts go out in chunks of ``POST_CHUNK``, ``POST_CONCURRENCY`` at a time; every chunk
is posted even when one fails (a chunk left out would resolve its alerts early), and the failures are raised
together after.
Credentials (``user:password@``) become a Basic auth header and never reach logs; they come from the
environment only (monitor/config.py refuses them in a config file).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from alerts.detectors import Signal
from alerts.lifecycle import AlertState
from alerts.model import AlertItem, AlertStatus, Notification, clock, evidence_line, signal_lines
from alerts.sinks.base import SinkError
from alerts.sinks.http import HttpPoster
from monitor.lifecycle import Service
from monitor.windows.buckets import EvidenceItem, key_path

ALERTNAME = "FinsentNegativeSentiment"
API_PATH = "/api/v2/alerts"
POST_CHUNK = 200
"""Alerts per POST when re-posting many (keeps each request small)."""
POST_CONCURRENCY = 8
"""Chunks posted at once. One after another, a loaded Alertmanager answering in 9 s (inside the 10 s sink
timeout) fit 3 chunks in the 35 s a send or refresh may take: the 4th onward of 800 firing alerts was never
re-posted, refresh after refresh, and Alertmanager resolved them while they fired (found by review)."""
ANNOTATIONS_KEPT = 10_000
"""Last full annotations (with evidence) kept per alert for the re-posts; oldest dropped first."""


def key_labels(window_key: str) -> dict[str, str]:
    """``ticker:TSLA`` -> ticker; ``topic:earnings`` -> topic; ``topic_ticker:earnings|TSLA`` -> both."""
    kind, _, value = window_key.partition(":")
    if kind == "ticker":
        return {"ticker": value}
    if kind == "topic":
        return {"topic": value}
    if kind == "topic_ticker" and "|" in value:
        topic, ticker = value.rsplit("|", 1)
        return {"topic": topic, "ticker": ticker}
    return {}


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat().replace("+00:00", "Z")


def numbers(signal: Signal, ref_s: float | None = None) -> str:
    """The same numbers Slack and email show (``signal_lines``); they used to leave out the multi-scale findings
    (count vs expected, p-value), so production alerts in Alertmanager carried no "why" (found by review)."""
    return "\n".join(signal_lines(signal, ref_s))


def evidence_text(evidence: Sequence[EvidenceItem], ref_s: float | None = None) -> str:
    """One line per message (``evidence_line``: its time, and its text on one line, so it cannot forge a line)."""
    return "\n".join(evidence_line(ev, ref_s) + (f" <{ev.url}>" if ev.url else "") for ev in evidence)


class AlertmanagerSink(Service):
    def __init__(
        self, url: str, name: str, poster: HttpPoster, *, public_url: str, severity: str = "warning",
        refresh_interval_s: float = 60.0, ends_after_s: float = 240.0, clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(url.removeprefix("alertmanager+"))
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.url = base + API_PATH
        self.name = name
        self.refresh_interval_s = float(refresh_interval_s)
        self.ends_after_s = ends_after_s
        self._public_url = public_url.rstrip("/")
        self._severity = severity
        self._poster = poster
        self._clock = clock
        self._headers = {"Content-Type": "application/json"}
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._annotations: OrderedDict[str, dict[str, str]] = OrderedDict()

    async def _stop(self) -> None:
        await self._poster.stop()

    def readiness_probe(self) -> tuple[str, dict[str, str]]:
        """URL and headers (credentials included) of Alertmanager's ``/-/ready``, for ``monitor check``."""
        auth = {k: v for k, v in self._headers.items() if k == "Authorization"}
        return self.url.removesuffix(API_PATH) + "/-/ready", auth

    def generator_url(self, window_key: str) -> str:
        return self._public_url + key_path(window_key)

    def labels(self, window_key: str) -> dict[str, str]:
        return {"alertname": ALERTNAME, "key": window_key, **key_labels(window_key), "severity": self._severity}

    def _alert(self, window_key: str, started_at_s: int, annotations: dict[str, str], now_s: float,
               ends_at_s: float) -> dict[str, Any]:
        starts_at_s = min(started_at_s, now_s)  # an event time ahead of the wall clock: not after now
        return {
            "labels": self.labels(window_key),
            "annotations": annotations,
            "startsAt": iso(starts_at_s),
            "endsAt": iso(max(ends_at_s, starts_at_s)),
            "generatorURL": self.generator_url(window_key),
        }

    def _annotate(self, item: AlertItem, event_time_s: int) -> dict[str, str]:
        """The summary says since when it fires (a reminder as such) or, resolved, the episode and why it is
        resolved; the numbers are always what fired, not a RESOLVED notice's quiet bucket."""
        head = "on" if item.status is AlertStatus.RESOLVED else "spike:"
        notes = {"summary": f"negative sentiment {head} {item.window_key}, {item.state_line(event_time_s)}",
                 "numbers": numbers(item.why, event_time_s)}
        if item.evidence:
            notes["evidence"] = evidence_text(item.evidence, event_time_s)
        return notes

    def payload(self, notification: Notification) -> list[dict[str, Any]]:
        now_s = self._clock()
        alerts = []
        for item in notification.alerts:
            notes = self._annotate(item, notification.event_time_s)
            if item.status is AlertStatus.RESOLVED:
                self._annotations.pop(item.dedup_key, None)
                ends_at_s = now_s
            else:
                self._remember(item.dedup_key, notes)
                ends_at_s = now_s + self.ends_after_s
            alerts.append(self._alert(item.window_key, item.started_at_s, notes, now_s, ends_at_s))
        return alerts

    def _remember(self, dedup_key: str, notes: dict[str, str]) -> None:
        self._annotations[dedup_key] = notes
        self._annotations.move_to_end(dedup_key)
        while len(self._annotations) > ANNOTATIONS_KEPT:
            self._annotations.popitem(last=False)

    async def _post(self, alerts: list[dict[str, Any]]) -> None:
        """Post every chunk, then raise one ``SinkError`` for those that failed: stopping at the first
        failure left the later chunks' alerts un-posted, and Alertmanager resolved them early."""
        failures: list[SinkError] = []
        chunks = range(0, len(alerts), POST_CHUNK)
        slots = asyncio.Semaphore(POST_CONCURRENCY)

        async def post(start: int) -> None:
            async with slots:
                try:
                    await self._poster.post(self.url, json.dumps(alerts[start : start + POST_CHUNK]).encode(),
                                            self._headers)
                except SinkError as exc:
                    failures.append(exc)

        await asyncio.gather(*(post(start) for start in chunks))
        if failures:
            waits = [f.retry_after_s for f in failures if f.retry_after_s is not None]
            raise SinkError(f"{len(failures)} of {len(chunks)} chunks of {len(alerts)} alerts failed, first: "
                            f"{failures[0]}", retry_after_s=max(waits, default=None),
                            refused=any(f.refused for f in failures))

    async def send(self, notification: Notification) -> None:
        await self._post(self.payload(notification))

    async def refresh(self, firing: Sequence[AlertState]) -> None:
        """Re-post every firing, announced alert so Alertmanager keeps it active (see module doc)."""
        now_s = self._clock()
        alerts = []
        for state in firing:
            if state.status is not AlertStatus.FIRING or not state.notified or state.last_signal is None:
                continue
            started_at_s = state.started_at_s if state.started_at_s is not None else state.updated_at_s
            notes = self._annotations.get(state.dedup_key) or {
                "summary": f"negative sentiment spike: {state.window_key}, firing since {clock(started_at_s)} UTC",
                "numbers": numbers(state.firing_signal or state.last_signal),
            }
            alerts.append(self._alert(state.window_key, started_at_s, notes, now_s, now_s + self.ends_after_s))
        if alerts:
            await self._post(alerts)
