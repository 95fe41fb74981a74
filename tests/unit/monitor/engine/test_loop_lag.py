"""The event loop's lateness is measured while the daemon runs, and a stall long enough to delay heartbeats
and leases is logged (at most once a minute, counting the stalls it stands for)."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from monitor import metrics
from monitor.engine.loop_lag import LoopLagProbe


def lag_count() -> float:
    return metrics.prometheus_client_value("finsent_event_loop_lag_seconds_count") or 0.0


async def test_a_callback_that_blocks_the_loop_shows_as_lag_and_a_stall_line() -> None:
    before = lag_count()
    with capture_logs() as logs:
        async with LoopLagProbe(interval_s=0.02, stall_s=0.3) as probe:
            await asyncio.sleep(0.1)
            time.sleep(0.5)  # noqa: ASYNC251 -- the point: a callback holding the loop
            await asyncio.sleep(0.1)
    assert probe.worst_s >= 0.45
    assert lag_count() - before >= 3
    [stall] = [e for e in logs if e["event"] == "event_loop_stalled"]
    assert stall["log_level"] == "warning" and stall["lag_s"] >= 0.45 and stall["stalls"] == 1


def test_stalls_in_quick_succession_are_logged_once_and_counted_in_the_next_line() -> None:
    now = [1_000.0]
    probe = LoopLagProbe(stall_s=1.0, clock=lambda: now[0])
    with capture_logs() as logs:
        probe.observe(2.0)
        for _ in range(4):
            now[0] += 5
            probe.observe(1.5)
        probe.observe(0.1)  # not a stall
        now[0] += 60
        probe.observe(3.0)
    stalls = [e for e in logs if e["event"] == "event_loop_stalled"]
    assert [(e["lag_s"], e["stalls"]) for e in stalls] == [(2.0, 1), (3.0, 5)]
    assert probe.worst_s == 3.0


async def test_a_stopped_probe_leaves_no_task_behind() -> None:
    probe = LoopLagProbe(interval_s=0.01)
    async with probe:
        await asyncio.sleep(0.03)
    assert probe._task is None
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "loop-lag-probe"]
