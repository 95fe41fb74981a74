from __future__ import annotations

from alerts.state import MemoryAlertStateStore
from monitor.web.clock import EventClock, read_clock

WALL = 1_796_000_000
WATERMARK = 1_793_893_000


def test_now_is_the_watermark_and_the_wall_clock_only_measures_lag() -> None:
    r = read_clock(WATERMARK, WATERMARK - 400, WALL)
    assert (r.now_s, r.source) == (WATERMARK, "watermark")
    assert r.event_lag_s == WALL - WATERMARK and r.detection_lag_s == WALL - WATERMARK + 400


def test_without_a_watermark_now_is_the_stored_detection_cursor_then_the_wall_clock() -> None:
    assert (read_clock(None, 1_000, WALL).now_s, read_clock(None, 1_000, WALL).source) == (1_000, "detection_cursor")
    wall = read_clock(None, None, WALL)
    assert (wall.now_s, wall.source, wall.event_lag_s, wall.detection_lag_s) == (WALL, "wall_clock", None, None)


async def test_event_clock_reads_the_pipeline_watermark_and_the_state_cursor() -> None:
    state = MemoryAlertStateStore()
    marks: list[int | None] = [None]
    clock = EventClock(lambda: marks[0], state, wall=lambda: float(WALL))
    assert await clock.now_s() == WALL
    await state.commit([], [], 5_000)
    assert await clock.now_s() == 5_000
    marks[0] = WATERMARK
    reading = await clock.read()
    assert (reading.now_s, reading.evaluated_until_s) == (WATERMARK, 5_000)
