"""End to end: real Kafka broker → ``monitor run`` subprocess → real Redis windows → alert sink.

The daemon runs exactly as in production (configs/production.toml + MONITOR_* overrides), with the
lexicon classifier to keep the suite fast (the transformer path has its own tests).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from monitor.windows.redis import RedisWindowStore
from tests.integration.daemon import Daemon
from tests.integration.streams import BUCKET_S, T0, stream
from tests.kafka_broker import create_topics, produce_round_robin, unique_name

pytestmark = pytest.mark.integration

MALFORMED = [b"{not json", json.dumps({"id": "x1", "text": "no time"}).encode(),
             json.dumps({"id": "x2", "text": "bad time", "published_at": "soon"}).encode()]


class Scenario:
    def __init__(self, tmp_path: Path, kafka: str, redis_url: str) -> None:
        self.kafka, self.redis_url = kafka, redis_url
        self.news, self.comments = unique_name("news"), unique_name("comments")
        self.dlq, self.group, self.prefix = unique_name("dlq"), unique_name("grp"), unique_name("e2e")
        self.alerts_path = tmp_path / "alerts.jsonl"
        self.tmp_path = tmp_path

    def env(self) -> dict[str, str]:
        return {
            "MONITOR_KAFKA__BOOTSTRAP_SERVERS": self.kafka,
            "MONITOR_KAFKA__NEWS_TOPIC": self.news,
            "MONITOR_KAFKA__COMMENTS_TOPIC": self.comments,
            "MONITOR_KAFKA__DEAD_LETTER_TOPIC": self.dlq,
            "MONITOR_KAFKA__GROUP_ID": self.group,
            "MONITOR_KAFKA__SESSION_TIMEOUT_MS": "1000",
            "MONITOR_KAFKA__MAX_POLL_RECORDS": "50",
            "MONITOR_WINDOWS__STORE_URL": self.redis_url,
            "MONITOR_WINDOWS__KEY_PREFIX": self.prefix,
            "MONITOR_WINDOWS__BUCKET_S": str(BUCKET_S),
            "MONITOR_WINDOWS__ALLOWED_LATENESS_S": "60",
            "MONITOR_WINDOWS__IDLE_TIMEOUT_S": "2",
            "MONITOR_CLASSIFIER__KIND": "lexicon",
            "MONITOR_BATCHING__MAX_BATCH_SIZE": "32",
            "MONITOR_ALERTS__SINKS": json.dumps(["log://", f"file://{self.alerts_path}"]),
            "MONITOR_ALERTS__DELIVERY_POLL_INTERVAL_S": "0.2",
            # minutes-long test streams: the per-bucket detectors (production's multi-scale baselines need
            # days of history; they are tested in tests/integration/alerts/test_engine_multiscale_redis.py)
            "MONITOR_ALERTS__DETECTION": "bucket",
            "MONITOR_HTTP__HOST": "127.0.0.1",
            "MONITOR_HTTP__PORT": "0",
        }

    def daemon(self, name: str, **env: str) -> Daemon:
        return Daemon({**self.env(), **env}, self.tmp_path / f"{name}.log")

    async def produce(self, messages: list[dict[str, object]], raw: Sequence[bytes] = ()) -> None:
        await produce_round_robin(self.kafka, self.news, [*(json.dumps(m).encode() for m in messages), *raw], 2)

    async def volume(self) -> int:
        async with RedisWindowStore(self.redis_url, key_prefix=self.prefix, bucket_s=BUCKET_S,
                                    retention_s=10**7, top_negative_per_bucket=5) as store:
            return sum(b.volume for b in await store.buckets("all", 0, 2**40))

    async def wait_volume(self, expected: int, timeout_s: float, daemon: Daemon) -> None:
        deadline = time.monotonic() + timeout_s
        while (got := await self.volume()) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"windows hold {got} messages, expected {expected}\n{daemon.tail()}")
            daemon.assert_alive()
            await asyncio.sleep(0.2)

    def firing(self) -> list[dict[str, object]]:
        if not self.alerts_path.exists():
            return []
        notes = [json.loads(line) for line in self.alerts_path.read_text().splitlines() if line.strip()]
        return [n for n in notes if n["status"] == "firing"]


@pytest.fixture
def scenario(tmp_path: Path, kafka_bootstrap: str, redis_url: str) -> Iterator[Scenario]:
    s = Scenario(tmp_path, kafka_bootstrap, redis_url)
    asyncio.run(create_topics(kafka_bootstrap, {s.news: 2, s.comments: 1, s.dlq: 1}))
    yield s


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return str(resp.read().decode())


def _metric(port: int, name: str) -> float:
    body = _get(port, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(name) and not line.startswith("#"))


@pytest.fixture(params=["redis", "redis-cluster"])
def any_redis_scenario(request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str) -> Iterator[Scenario]:
    """The scenario on a standalone redis-server and on a real 3-master Redis Cluster."""
    url = str(request.getfixturevalue("redis_cluster_url" if request.param == "redis-cluster" else "redis_url"))
    s = Scenario(tmp_path, kafka_bootstrap, url)
    asyncio.run(create_topics(kafka_bootstrap, {s.news: 2, s.comments: 1, s.dlq: 1}))
    yield s


async def test_surge_on_kafka_fires_one_alert_with_windows_in_redis_and_bad_input_dead_lettered(
    any_redis_scenario: Scenario,
) -> None:
    scenario = any_redis_scenario
    messages = stream()
    await scenario.produce(messages, MALFORMED)
    daemon = scenario.daemon("run").start()
    try:
        port = int(daemon.wait_for_event("http_listening", 60)["port"])
        await scenario.wait_volume(len(messages), 90, daemon)
        deadline = time.monotonic() + 60
        while not any(a["window_key"] == "ticker:ACME" for n in scenario.firing() for a in n["alerts"]):
            assert time.monotonic() < deadline, f"no firing alert for ticker:ACME\n{daemon.tail()}"
            daemon.assert_alive()
            await asyncio.sleep(0.2)
        health = json.loads(await asyncio.to_thread(_get, port, "/healthz"))
        assert health["status"] == "ok"
        assert _metric(port, "finsent_messages_total") == len(messages)
        assert _metric(port, "finsent_dead_letters_total") == len(MALFORMED)
        assert _metric(port, "finsent_notifications_total") >= 1
        assert _metric(port, 'finsent_alert_deliveries_total{outcome="delivered"') >= 1
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.tail()
    assert any(e.get("event") == "monitor_stopped" for e in daemon.events())
    acme = [n for n in scenario.firing() if any(a["window_key"] == "ticker:ACME" for a in n["alerts"])]
    assert len(acme) == 1, "the surge must page exactly once"
    fired_at = acme[0]["event_time_s"]
    surge_start = int((T0 + timedelta(seconds=30 * BUCKET_S)).timestamp())
    assert surge_start < fired_at <= surge_start + 4 * BUCKET_S
    # malformed records went to the dead-letter topic with their reasons
    consumer = AIOKafkaConsumer(scenario.dlq, bootstrap_servers=scenario.kafka, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        reasons = sorted(dict(r.headers)["dlq.reason"].decode() for recs in batches.values() for r in recs)
    finally:
        await consumer.stop()
    assert reasons == ["bad_json", "bad_timestamp", "missing_field"]


async def test_a_new_group_on_a_topic_holding_old_history_counts_it_but_pages_no_incident_in_it(
    scenario: Scenario,
) -> None:
    """Found by review: a monitor started on a topic with a month of retention paged every past incident at once."""
    messages = stream()  # dated months before the wall clock, with the ACME surge
    await scenario.produce(messages)
    daemon = scenario.daemon("history", MONITOR_ALERTS__MAX_PAGE_AGE_S=str(6 * 3600)).start()
    try:
        await scenario.wait_volume(len(messages), 90, daemon)
        warning = daemon.wait_for_event("alerts_not_paged_historical", 60)
        assert "ticker:ACME" in warning["keys"]
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.tail()
    assert scenario.firing() == []


async def test_killed_mid_stream_and_restarted_counts_every_distinct_message_once(scenario: Scenario) -> None:
    messages = stream(buckets=30, surge=range(0))
    first, second = messages[: len(messages) // 2], messages[len(messages) // 2 :]
    await scenario.produce(first)
    crashed = scenario.daemon("crashed").start()
    deadline = time.monotonic() + 60
    while await scenario.volume() < 50:
        assert time.monotonic() < deadline, crashed.tail()
        crashed.assert_alive()
        await asyncio.sleep(0.05)
    crashed.kill()
    # the rest of the stream, plus upstream duplicates of already-counted messages
    await scenario.produce(second + first[:40])
    restarted = scenario.daemon("restarted").start()
    try:
        port = int(restarted.wait_for_event("http_listening", 60)["port"])
        await scenario.wait_volume(len(messages), 120, restarted)
        await asyncio.sleep(1.0)
        assert await scenario.volume() == len(messages)
        assert _metric(port, "finsent_duplicate_messages_total") >= 40
    finally:
        assert restarted.terminate() == 0, restarted.tail()


async def test_sigterm_mid_stream_drains_and_commits_so_a_restart_redelivers_nothing(scenario: Scenario) -> None:
    messages = stream(buckets=60, surge=range(0), per_bucket=50)
    await scenario.produce(messages)
    env = {"MONITOR_BATCHING__MAX_BATCH_SIZE": "8", "MONITOR_KAFKA__MAX_POLL_RECORDS": "8"}
    first = scenario.daemon("first")
    first.env.update(env)
    first.start()
    deadline = time.monotonic() + 60
    while (applied := await scenario.volume()) < 100:
        assert time.monotonic() < deadline, first.tail()
        first.assert_alive()
        await asyncio.sleep(0.05)
    assert first.terminate() == 0, first.tail()
    assert applied < len(messages), "SIGTERM must land mid-stream for this test to mean anything"
    stopped_at = await scenario.volume()
    assert stopped_at < len(messages)

    second = scenario.daemon("second")
    second.env.update(env)
    second.start()
    try:
        port = int(second.wait_for_event("http_listening", 60)["port"])
        await scenario.wait_volume(len(messages), 120, second)
        # everything the first daemon applied was committed before it exited: nothing comes back
        assert _metric(port, "finsent_duplicate_messages_total") == 0
        assert _metric(port, "finsent_messages_total") == len(messages) - stopped_at
    finally:
        assert second.terminate() == 0, second.tail()
