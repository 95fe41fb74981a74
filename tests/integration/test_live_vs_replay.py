"""The same stream gives the same alerts live (Kafka, 3 partitions, per-partition watermarks) and
replayed from a file: event time end to end, nothing depends on batching or wall time."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from alerts.model import Notification
from monitor.backtest.runner import RecordingEvaluator
from monitor.config import Settings, load_settings
from monitor.engine.app import MonitorApp
from tests.integration.streams import BUCKET_S, stream
from tests.kafka_broker import create_topics, produce_round_robin, unique_name

pytestmark = pytest.mark.integration


def _settings(**sections: dict[str, object]) -> Settings:
    base: dict[str, dict[str, object]] = {
        "classifier": {"kind": "lexicon"},
        "windows": {"store_url": "memory://", "bucket_s": BUCKET_S, "allowed_lateness_s": 60, "idle_timeout_s": 0.5},
        # max_page_age_s 0: the stream is dated in the past, and live must page it as a replay does
        "alerts": {"sinks": [], "sweep_interval_s": 0.2, "max_page_age_s": 0},
        "http": {"enabled": False},
        "batching": {"max_batch_size": 16, "max_wait_ms": 5},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_settings(**base)


def _summary(notes: list[Notification], until_s: int) -> list[tuple[str, str, int, tuple[str, ...]]]:
    return [(n.id, str(n.status), n.event_time_s, tuple(a.window_key for a in n.alerts))
            for n in notes if n.event_time_s <= until_s]


async def _run_live(settings: Settings, total: int, until_s: int) -> list[Notification]:
    app = MonitorApp(settings)
    recorder = RecordingEvaluator(app.alerting)
    app.pipeline.evaluator = recorder
    task = asyncio.create_task(app.run())
    deadline = time.monotonic() + 90
    while app.pipeline.stats.read < total or (app.pipeline.watermark.closed_until_s or 0) < until_s:
        assert time.monotonic() < deadline, f"live run stuck: {app.pipeline.stats}"
        assert not task.done(), task.exception()
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the idle tick's evaluation travels behind the last batch
    app.request_stop()
    await task
    return recorder.notifications


async def _run_replay(settings: Settings) -> list[Notification]:
    app = MonitorApp(settings)
    recorder = RecordingEvaluator(app.alerting)
    app.pipeline.evaluator = recorder
    await app.run()
    return recorder.notifications


async def test_live_kafka_run_and_file_replay_fire_identical_alerts(tmp_path: Path, kafka_bootstrap: str) -> None:
    messages = stream(buckets=40, surge=range(30, 33))
    news, comments, dlq = unique_name("news"), unique_name("comments"), unique_name("dlq")
    await create_topics(kafka_bootstrap, {news: 3, comments: 1, dlq: 1})
    await produce_round_robin(kafka_bootstrap, news, [json.dumps(m).encode() for m in messages], 3)
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    end_s = _end_of_data(messages)

    live = await _run_live(_settings(
        source={"kind": "kafka"},
        kafka={"bootstrap_servers": kafka_bootstrap, "news_topic": news, "comments_topic": comments,
               "group_id": unique_name("live"), "session_timeout_ms": 1000, "max_poll_records": 37,
               "dead_letter_topic": dlq},
    ), len(messages), end_s)
    replayed = await _run_replay(_settings(source={"kind": "replay", "replay_paths": [str(path)]}))

    assert any(n.status == "firing" for n in replayed), "the surge must fire"
    assert _summary(live, end_s) == _summary(replayed, end_s)


def _end_of_data(messages: list[dict[str, object]]) -> int:
    from consumers.schema import parse_event_time

    last = max(int(parse_event_time(m["published_at"]).timestamp()) for m in messages)
    return last - last % BUCKET_S + BUCKET_S
