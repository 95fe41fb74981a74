"""The one clock of the dashboard and the HTTP API: event time.

Detection judges buckets, silences and alert lifecycles by the *watermark* (event time), not by the
wall clock, so during a replay, a backlog or any lag the two differ by minutes to weeks. Everything an
analyst sees is therefore stated in event time: "now" is this instance's watermark; before it has seen
data (a restart) it is the stored detection cursor (shared in Redis), and only with neither the wall
clock. The wall clock is kept to show the lag, never to choose what is shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from alerts.state import AlertStateStore

ClockSource = Literal["watermark", "detection_cursor", "wall_clock"]


@dataclass(frozen=True, slots=True)
class ClockReading:
    now_s: int
    """Event time "now" used for every range, silence and listing."""
    source: ClockSource
    watermark_s: int | None
    evaluated_until_s: int | None
    """End of the last bucket detection judged (event time)."""
    wall_s: int

    @property
    def judged_next_s(self) -> int:
        """Where detection judges next: the cursor while it trails "now" (a backlog, a cluster watermark
        held back), else "now". Silences start and end here, so the buckets judged next are covered."""
        return min(self.now_s, self.evaluated_until_s if self.evaluated_until_s is not None else self.now_s)

    @property
    def event_lag_s(self) -> int | None:
        """How far event time trails the wall clock (large during a replay or a backlog)."""
        return None if self.watermark_s is None else self.wall_s - self.watermark_s

    @property
    def detection_lag_s(self) -> int | None:
        """Wall clock minus what detection has judged: how stale the alerts may be."""
        return None if self.evaluated_until_s is None else self.wall_s - self.evaluated_until_s


def read_clock(watermark_s: int | None, evaluated_until_s: int | None, wall_s: int) -> ClockReading:
    """Pure choice of "now": the watermark, else the detection cursor, else the wall clock."""
    if watermark_s is not None:
        return ClockReading(watermark_s, "watermark", watermark_s, evaluated_until_s, wall_s)
    if evaluated_until_s is not None:
        return ClockReading(evaluated_until_s, "detection_cursor", None, evaluated_until_s, wall_s)
    return ClockReading(wall_s, "wall_clock", None, None, wall_s)


class EventClock:
    """Reads the running pipeline's watermark and the state store's cursor (see the module doc)."""

    def __init__(self, watermark: Callable[[], int | None], state: AlertStateStore,
                 wall: Callable[[], float] = time.time) -> None:
        self._watermark = watermark
        self._state = state
        self._wall = wall

    async def read(self) -> ClockReading:
        return read_clock(self._watermark(), await self._state.get_cursor(), int(self._wall()))

    async def now_s(self) -> int:
        return (await self.read()).now_s
