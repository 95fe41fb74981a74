"""Redis freezes (SIGSTOP), restarts and fills up (maxmemory, noeviction) under a running daemon: it stays
up, reports not-ready with the reason while Redis is away or full, resumes by itself, and ends with exact
windows and the reference alerts. Before a full Redis counted as transient, the daemon exited on the first
refused write ("OutOfMemoryError ... check that redis-server is up and reachable") and, restarted by a
supervisor, exited again at the same message."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.chaos.harness import (
    ChaosScenario,
    RedisProcess,
    metric,
    port_of,
    wait_ready,
    watch_readiness,
)
from tests.integration.streams import BUCKET_S, stream

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(180)]
LATENESS_S = 60


async def _drill(tmp_path: Path, kafka: str, redis: RedisProcess, fault: str, outage_s: float = 5.0,
                 one_assignment: bool = False, **env: str) -> None:
    messages = stream()
    scenario = ChaosScenario(tmp_path, kafka, redis.url, **env)
    until, expected = await scenario.prepare(messages, BUCKET_S, LATENESS_S)
    assert any(n[1] == "firing" for n in expected)

    daemon = scenario.start()
    try:
        port = port_of(daemon)
        await scenario.wait_mid_stream(daemon, len(messages))
        if fault == "freeze":
            redis.freeze()
            answers = await watch_readiness(port, outage_s)
            redis.thaw()
        elif fault == "full":
            await redis.set_maxmemory("1")
            answers = await watch_readiness(port, 5.0)
            await redis.set_maxmemory("0")
        else:
            redis.stop()
            answers = await watch_readiness(port, 5.0)
            redis.start()
        daemon.assert_alive()
        not_ready = [body for status, body in answers if status == 503]
        assert not_ready, f"/readyz stayed ready while Redis was {fault}: {answers[-3:]}"
        assert any("window_store unreachable" in r or "detection unreachable" in r
                   for body in not_ready for r in body["reasons"]), not_ready[-1]
        if fault == "full":
            assert any("OutOfMemoryError" in r and "raise it or lower windows.retention_s" in r
                       for body in not_ready for r in body["reasons"]), not_ready[-1]
        await scenario.wait_volume(len(messages), 90, daemon)
        await scenario.wait_cursor(until, 60, daemon)
        ready = await wait_ready(port, 30)
        assert ready["status"] == 200, ready
        assert metric(port, "finsent_ready") == 1
        assert metric(port, "finsent_late_messages_total") == 0
        assert metric(port, 'finsent_dependency_retries_total{component="window_store"}') >= 1
        got = await scenario.wait_notifications(expected, until, 20)
        assert got == expected
        assert await scenario.volume() == len(messages)
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.tail()
    if one_assignment:  # a consumer that left its group is assigned its partitions again after the outage
        assert daemon.log_path.read_text(encoding="utf-8").count("partitions_assigned") == 1, daemon.tail(60)



async def test_redis_frozen_for_5_s_mid_stream_pauses_the_daemon_which_resumes_with_exact_windows(
    tmp_path: Path, kafka_bootstrap: str, chaos_redis: RedisProcess,
) -> None:
    await _drill(tmp_path, kafka_bootstrap, chaos_redis, "freeze")


async def test_redis_restarted_mid_stream_the_daemon_stays_up_and_ends_with_exact_windows(
    tmp_path: Path, kafka_bootstrap: str, chaos_redis: RedisProcess,
) -> None:
    await _drill(tmp_path, kafka_bootstrap, chaos_redis, "restart")


async def test_redis_at_its_maxmemory_mid_stream_the_daemon_waits_says_why_and_resumes_when_there_is_room(
    tmp_path: Path, kafka_bootstrap: str, chaos_redis: RedisProcess,
) -> None:
    await _drill(tmp_path, kafka_bootstrap, chaos_redis, "full")


async def test_a_redis_outage_longer_than_the_poll_interval_keeps_the_consumer_in_its_group(
    tmp_path: Path, kafka_bootstrap: str, chaos_redis: RedisProcess,
) -> None:
    """Kafka gives a consumer's partitions away when it does not poll for max_poll_interval_ms (5 min by
    default; 2 s here, against an 8 s outage): the daemon must keep polling, paused, while it waits."""
    await _drill(tmp_path, kafka_bootstrap, chaos_redis, "freeze", outage_s=8.0, one_assignment=True,
                 MONITOR_KAFKA__MAX_POLL_INTERVAL_MS="2000")


async def test_sigterm_while_redis_is_down_exits_within_shutdown_timeout_and_a_restart_loses_nothing(
    tmp_path: Path, kafka_bootstrap: str, chaos_redis: RedisProcess,
) -> None:
    """A stop cannot drain into a dead Redis: it gives up after ``shutdown_timeout_s`` with one line, exit 1,
    and what was not committed is read again by the next daemon (exact windows, the reference alerts)."""
    messages = stream()
    scenario = ChaosScenario(tmp_path, kafka_bootstrap, chaos_redis.url, MONITOR_SHUTDOWN_TIMEOUT_S="3")
    until, expected = await scenario.prepare(messages, BUCKET_S, LATENESS_S)

    daemon = scenario.start()
    try:
        await scenario.wait_mid_stream(daemon, len(messages))
        chaos_redis.stop()
        await asyncio.sleep(1.0)
        started = time.monotonic()
        code = daemon.terminate(timeout_s=30)
        took_s = time.monotonic() - started
    finally:
        chaos_redis.start()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()
    assert code == 1, daemon.tail()
    assert took_s < 3 + 10, f"stopped after {took_s:.1f} s\n{daemon.tail()}"
    last = daemon.tail(1)
    assert "shutdown_timeout_s" in last and "read again" in last, daemon.tail()

    again = scenario.start()
    try:
        await scenario.assert_recovered(again, len(messages), until, expected)
    finally:
        assert again.terminate() == 0, again.tail()
