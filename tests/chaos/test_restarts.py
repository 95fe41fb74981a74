"""The daemon is stopped (SIGTERM, and kill -9 loops) while a surge sits in buckets that are durable but
not yet closed, and restarted only when later data arrives: detection resumes at its durable cursor
and walks every bucket from there, so the notifications equal an uninterrupted run's exactly, and every
message is counted once (0 lost, 0 double-counted). The kill -9 runs keep the classifier in a worker
process (as a transformer is by default), and no worker outlives its killed daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import ChaosScenario, RedisProcess, closed_by_data_s, port_of, reference, wait_until
from tests.integration.daemon import Daemon
from tests.integration.streams import BUCKET_S, stream
from tests.kafka_broker import create_topics
from tests.processes import wait_gone

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(180)]
LATENESS_S = 15 * BUCKET_S  # the surge (buckets 30-33) is still open when day 1 has been read
SURGE_FIRST_MESSAGE = 30 * 24 + 12  # stream(): 24 messages per bucket


def two_days() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Day 1 with a negative surge; day 2 starts after a quiet gap of 60 buckets (overnight)."""
    day1 = stream(buckets=40, surge=range(30, 34))
    day2 = [m for m in stream(buckets=120, surge=range(0)) if int(str(m["id"]).split("-")[1]) >= 100]
    for m in day2:
        m["id"] = f"d2-{m['id']}"
    return day1, day2


async def _stop(daemon: Daemon, how: str) -> None:
    if how == "sigterm":
        assert daemon.terminate() == 0, daemon.tail()
    else:
        children = daemon.children()
        assert children, "the kill -9 drill runs the classifier in a worker process"
        daemon.kill()
        assert not wait_gone(children, 15), "a child process outlived the killed daemon"


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
async def test_surge_in_open_buckets_at_a_stop_is_detected_after_the_restart_exactly_as_without_one(
    tmp_path: Path, kafka_bootstrap: str, chaos_redis: RedisProcess, how: str,
) -> None:
    day1, day2 = two_days()
    worker = {"MONITOR_CLASSIFIER__WORKER": "process"} if how == "kill9" else {}
    scenario = ChaosScenario(tmp_path, kafka_bootstrap, chaos_redis.url,
                             MONITOR_WINDOWS__ALLOWED_LATENESS_S=str(LATENESS_S), **worker)
    await create_topics(kafka_bootstrap, {scenario.news: 2, scenario.comments: 1, scenario.dlq: 1})
    until = closed_by_data_s(day1 + day2, BUCKET_S, LATENESS_S)
    expected = await reference(day1 + day2, tmp_path, BUCKET_S, LATENESS_S, until)
    assert any(n[1] == "firing" for n in expected) and any(n[1] == "resolved" for n in expected)

    await scenario.produce(day1)
    daemon = scenario.start()
    if how == "kill9":  # one extra crash right inside the surge, before day 1 is read
        await wait_until(lambda: _volume_at_least(scenario, SURGE_FIRST_MESSAGE), 60, "the surge", daemon)
        await _stop(daemon, how)
        daemon = scenario.start()
    await scenario.wait_volume(len(day1), 90, daemon)
    await _stop(daemon, how)
    cursor = await scenario.cursor()
    assert cursor is None or cursor <= 30 * BUCKET_S + _t0(), "the surge must be open at the stop"

    await scenario.produce(day2)
    daemon = scenario.start()
    try:
        port_of(daemon)
        await scenario.wait_volume(len(day1) + len(day2), 90, daemon)
        await scenario.wait_cursor(until, 60, daemon)
        got = await scenario.wait_notifications(expected, until, 20)
    finally:
        assert daemon.terminate() == 0, daemon.tail()
    assert got == expected
    assert await scenario.volume() == len(day1) + len(day2)


def _t0() -> int:
    from tests.integration.streams import T0

    return int(T0.timestamp())


async def _volume_at_least(scenario: ChaosScenario, n: int) -> bool:
    return await scenario.volume() >= n
