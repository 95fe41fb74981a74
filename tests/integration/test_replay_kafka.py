"""``monitor replay --kafka-topic T --from A --to B`` selects by payload event time and alerts like a file replay."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import DEFAULT_CONFIG
from monitor.durations import iso_utc
from tests.integration.streams import BUCKET_S, T0, stream
from tests.kafka_broker import create_topics, produce_round_robin, unique_name

pytestmark = pytest.mark.integration


def _iso(offset_s: int) -> str:
    return (T0 + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def _notes(path: Path) -> list[tuple[str, int, list[str]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(n["status"], n["event_time_s"], sorted(a["window_key"] for a in n["alerts"])) for n in rows]


async def _produce(bootstrap: str, topic: str, messages: list[dict[str, object]]) -> None:
    await create_topics(bootstrap, {topic: 3})
    await produce_round_robin(bootstrap, topic, [json.dumps(m).encode() for m in messages], 3)


def test_kafka_range_replay_reads_only_the_event_time_range_and_matches_file_replay(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = stream(buckets=45, surge=range(30, 33))
    topic = unique_name("history")
    asyncio.run(_produce(kafka_bootstrap, topic, messages))
    for name, value in {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "MONITOR_CLASSIFIER__KIND": "lexicon",
                        "MONITOR_WINDOWS__BUCKET_S": str(BUCKET_S)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    start_s, end_s = 0, 40 * BUCKET_S  # the last 5 buckets lie outside the range
    in_range = [m for m in messages if _iso(start_s) <= str(m["published_at"]) < _iso(end_s)]
    (tmp_path / "range.jsonl").write_text("".join(json.dumps(m) + "\n" for m in in_range))

    kafka_report, file_report = tmp_path / "kafka.jsonl", tmp_path / "file.jsonl"
    assert main(["--config", str(DEFAULT_CONFIG), "replay", "--kafka-topic", topic, "--from", _iso(start_s),
                 "--to", _iso(end_s), "--report", str(kafka_report), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"replayed {len(in_range)} messages" in printed
    # a finite Kafka range closes every bucket at the end, like a file: the last one was evaluated too
    assert f"detection evaluated until {iso_utc(int(T0.timestamp()) + end_s)}" in printed
    assert len(in_range) < len(messages)
    assert main(["--config", str(DEFAULT_CONFIG), "replay", "--input", "range.jsonl", "--report", str(file_report),
                 "--no-progress"]) == 0

    from_kafka = _notes(kafka_report)
    assert [status for status, _, _ in from_kafka] == ["firing", "resolved"]
    assert from_kafka == _notes(file_report)

