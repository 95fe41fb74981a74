"""The broker freezes (SIGSTOP) between two halves of a stream: event time must not run on with the
wall clock while partitions cannot be fetched, so nothing produced after the outage is judged late."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.chaos.harness import BrokerProcess, ChaosScenario, RedisProcess, metric, port_of, wait_ready, watch_readiness
from tests.integration.streams import NEGATIVE, NEUTRAL, T0
from tests.integration.streams import reference as story_ref
from tests.kafka_broker import create_topics

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(180)]
BUCKET_S, LATENESS_S, IDLE_S, FREEZE_S = 5, 2, 3, 10


def fine_stream(n: int, spacing_s: float = 0.5) -> list[dict[str, object]]:
    """Dense event time (several messages per 5 s bucket), so any wall-clock advance shows as late data."""
    return [{"id": f"f-{i}", "source": "news",
             "text": f"{NEGATIVE if i % 5 == 0 else NEUTRAL} #{i} ref {story_ref(f'f-{i}')}",  # distinct stories
             "published_at": (T0 + timedelta(seconds=i * spacing_s)).isoformat().replace("+00:00", "Z"),
             "tickers": ["ACME"]} for i in range(n)]


async def test_broker_frozen_between_two_halves_loses_nothing_and_judges_nothing_late(
    tmp_path: Path, chaos_broker: BrokerProcess, chaos_redis: RedisProcess,
) -> None:
    messages = fine_stream(400)
    first, second = messages[:200], messages[200:]
    scenario = ChaosScenario(tmp_path, chaos_broker.bootstrap, chaos_redis.url,
                             MONITOR_WINDOWS__BUCKET_S=str(BUCKET_S),
                             MONITOR_WINDOWS__ALLOWED_LATENESS_S=str(LATENESS_S),
                             MONITOR_WINDOWS__IDLE_TIMEOUT_S=str(IDLE_S))
    await create_topics(chaos_broker.bootstrap, {scenario.news: 2, scenario.comments: 1, scenario.dlq: 1})
    await scenario.produce(first)
    daemon = scenario.start()
    try:
        port = port_of(daemon)
        await scenario.wait_volume(len(first), 60, daemon)
        chaos_broker.freeze()
        try:
            answers = await watch_readiness(port, FREEZE_S)
        finally:
            chaos_broker.thaw()
        await scenario.produce(second)
        daemon.assert_alive()
        reasons = [r for status, body in answers if status == 503 for r in body["reasons"]]
        assert any(r.startswith("kafka unreachable") for r in reasons), answers[-3:]
        await scenario.wait_volume(len(messages), 90, daemon)
        assert metric(port, "finsent_late_messages_total") == 0
        assert metric(port, "finsent_dead_letters_total") == 0
        assert (await wait_ready(port, 30))["status"] == 200
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.tail()
