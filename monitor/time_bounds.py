"""Plausible event times: the window a ``published_at`` must fall in to be trusted.

Event time drives everything downstream (watermark, bucket closing, the alert cursor), so one
message stamped 9999-12-31 would otherwise close every bucket for good. The window is
``[source.min_event_time, wall clock at ingest + source.max_future_s]``: the ceiling follows the
wall clock (producers' clocks drift by seconds, not hours), the floor is a *fixed* date, so replays
of years-old history pass while year-1 junk does not. Sources dead-letter a message outside it as
``implausible_time``; the alert engine repairs a stored cursor outside it at start.

Pure and cheap (one clock read, two comparisons); the clock is injectable so tests are exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from monitor.config import SourceSettings

DEFAULT_MAX_FUTURE_S = 3600
DEFAULT_MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
CURSOR_SLACK_S = 86_400
"""A stored cursor is repaired only this far past the ceiling (legitimate ones lie a bucket past it at most)."""


@dataclass(frozen=True, slots=True)
class EventTimeBounds:
    """At most ``max_future_s`` ahead of ``clock()`` (0 = no ceiling), not before ``min_event_time``
    (None = no floor)."""

    max_future_s: int = DEFAULT_MAX_FUTURE_S
    min_event_time: datetime | None = DEFAULT_MIN_EVENT_TIME
    clock: Callable[[], float] = time.time
    naive_zone: tzinfo = UTC
    """How a time written without an offset is read (``source.naive_time_zone``): part of what makes a
    ``published_at`` mean a moment, checked where the bounds are."""

    @classmethod
    def from_settings(cls, source: SourceSettings, clock: Callable[[], float] = time.time) -> EventTimeBounds:
        zone = UTC if source.naive_time_zone == "UTC" else ZoneInfo(source.naive_time_zone)
        return cls(source.max_future_s, source.min_event_time, clock, zone)

    def ceiling_s(self) -> float | None:
        """Latest plausible event time now (epoch seconds), or None without a ceiling."""
        return self.clock() + self.max_future_s if self.max_future_s else None

    def violation(self, event_time: datetime) -> str | None:
        """None when ``event_time`` is plausible, else what is wrong, naming the setting to change."""
        ceiling = self.ceiling_s()
        if ceiling is not None and event_time.timestamp() > ceiling:
            return (f"{event_time.isoformat()} is more than source.max_future_s={self.max_future_s} ahead of "
                    "the wall clock")
        if self.min_event_time is not None and event_time < self.min_event_time:
            return f"{event_time.isoformat()} is before source.min_event_time={self.min_event_time.isoformat()}"
        return None

    def cursor_violation(self, cursor_s: int, slack_s: int = CURSOR_SLACK_S) -> str | None:
        """None when a stored evaluation cursor (a bucket end) is plausible, else what is wrong.
        A legitimate cursor lies at most a bucket past the ceiling of when it was written, so only
        one more than ``slack_s`` past today's ceiling is repaired."""
        ceiling = self.ceiling_s()
        if ceiling is not None and cursor_s > ceiling + slack_s:
            return (f"{datetime.fromtimestamp(cursor_s, tz=UTC).isoformat()} is more than source.max_future_s="
                    f"{self.max_future_s} (+{slack_s} s) ahead of the wall clock")
        if self.min_event_time is not None and cursor_s < self.min_event_time.timestamp():
            return f"{cursor_s} is before source.min_event_time={self.min_event_time.isoformat()}"
        return None
