"""Two daemons in one consumer group share the work, and the surge still pages exactly once:
detection runs on one leader up to the cluster-wide durable watermark (monitor/cluster.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.app import MonitorApp
from monitor.config import ConfigError, Settings, load_settings
from monitor.windows.redis import RedisWindowStore
from tests.integration.streams import BUCKET_S, stream
from tests.kafka_broker import create_topics, produce_round_robin, unique_name

pytestmark = pytest.mark.integration


def _settings(kafka: str, redis_url: str, news: str, group: str, prefix: str, alerts_path: Path) -> Settings:
    return load_settings(
        source={"kind": "kafka"},
        kafka={"bootstrap_servers": kafka, "news_topic": news, "comments_topic": f"{news}-comments",
               "group_id": group, "session_timeout_ms": 1000, "max_poll_records": 40,
               "dead_letter_topic": f"{news}-dlq"},
        classifier={"kind": "lexicon"},
        windows={"store_url": redis_url, "key_prefix": prefix, "bucket_s": BUCKET_S, "allowed_lateness_s": 60,
                 "idle_timeout_s": 1.0},
        alerts={"sinks": [f"file://{alerts_path}"], "cluster_mode": True, "leader_lease_s": 2.0,
                "sweep_interval_s": 0.2, "delivery_poll_interval_s": 0.1},
        http={"enabled": False},
    )


async def _wait(
    predicate: Callable[[], bool], timeout_s: float, what: str, apps: list[MonitorApp],
    tasks: list[asyncio.Task[object]],
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        for t in tasks:
            assert not t.done(), t.exception()
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {[a.pipeline.stats for a in apps]}"
        await asyncio.sleep(0.1)


async def test_two_instances_split_the_partitions_and_the_surge_pages_exactly_once(
    tmp_path: Path, kafka_bootstrap: str, redis_url: str
) -> None:
    news, group, prefix = unique_name("news"), unique_name("grp"), unique_name("cluster")
    await create_topics(kafka_bootstrap, {news: 4, f"{news}-comments": 1, f"{news}-dlq": 1})
    alerts_path = tmp_path / "alerts.jsonl"
    settings = _settings(kafka_bootstrap, redis_url, news, group, prefix, alerts_path)
    apps = [MonitorApp(settings), MonitorApp(settings)]
    tasks: list[asyncio.Task[object]] = [asyncio.create_task(a.run()) for a in apps]  # type: ignore[misc]

    def lanes(app: MonitorApp) -> frozenset[object]:
        return app.source.lanes() if app.source.started else frozenset()  # type: ignore[attr-defined]

    try:
        await _wait(lambda: all(lanes(a) for a in apps) and sum(len(lanes(a)) for a in apps) == 5, 60,
                    "both instances to own partitions", apps, tasks)
        messages = stream(buckets=40, surge=range(30, 33))
        # let every partition go idle first, then a 40-minute backlog lands on the news partitions
        # at once (the comments partition stays empty): lagging partitions must wake up and hold
        # the watermark, so nothing is judged late although one partition is fetched first
        await asyncio.sleep(1.5)
        await produce_round_robin(kafka_bootstrap, news, [json.dumps(m).encode() for m in messages], 4)
        await _wait(lambda: sum(a.pipeline.stats.read for a in apps) == len(messages), 60, "all messages", apps,
                    tasks)

        def acme_firing() -> list[dict[str, object]]:
            if not alerts_path.exists():
                return []
            notes = [json.loads(line) for line in alerts_path.read_text().splitlines()]
            return [n for n in notes if n["status"] == "firing"
                    and any(a["window_key"] == "ticker:ACME" for a in n["alerts"])]  # type: ignore[attr-defined]

        await _wait(lambda: bool(acme_firing()), 60, "the ACME alert", apps, tasks)
        await asyncio.sleep(1.5)  # a duplicate from the other instance would arrive now
    finally:
        for a in apps:
            a.request_stop()
        await asyncio.gather(*tasks)

    assert all(a.pipeline.stats.read > 0 for a in apps), "the consumer group split the partitions"
    assert [a.pipeline.stats.late for a in apps] == [0, 0]
    assert sum(a.pipeline.is_leader for a in apps) <= 1
    assert len(acme_firing()) == 1
    async with RedisWindowStore(redis_url, key_prefix=prefix, bucket_s=BUCKET_S, retention_s=10**7,
                                top_negative_per_bucket=5) as store:
        assert sum(b.volume for b in await store.buckets("all", 0, 2**40)) == len(messages)


def test_cluster_mode_without_kafka_and_redis_is_a_config_error() -> None:
    settings = load_settings(alerts={"cluster_mode": True})
    with pytest.raises(ConfigError, match="cluster_mode"):
        MonitorApp(settings)
