"""``monitor replay --kafka-topic T --from A --to B`` selects by payload event time and alerts like a file replay."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

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



async def _produce_one_partition(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await create_topics(bootstrap, {topic: 1})
    await produce_round_robin(bootstrap, topic, values, 1)


async def _count_records(bootstrap: str, topic: str) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        reader.assign([tp])
        return int((await reader.end_offsets([tp]))[tp]) - int((await reader.beginning_offsets([tp]))[tp])
    finally:
        await reader.stop()


def _production_kafka_env(monkeypatch: pytest.MonkeyPatch, bootstrap: str, tmp_path: Path) -> str:
    """``source.kind = kafka`` and an existing dead-letter topic, as in production: what a replay must not touch."""
    dlq = unique_name("production-dlq")
    asyncio.run(create_topics(bootstrap, {dlq: 1}))
    for name, value in {"MONITOR_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "MONITOR_CLASSIFIER__KIND": "lexicon",
                        "MONITOR_WINDOWS__BUCKET_S": str(BUCKET_S), "MONITOR_SOURCE__KIND": "kafka",
                        "MONITOR_KAFKA__DEAD_LETTER_TOPIC": dlq}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return dlq


def test_kafka_range_replay_keeps_its_rejected_rows_in_its_own_file_and_never_writes_the_production_topic(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: with source.kind = kafka the range reader had no dead-letter sink (malformed records only
    counted in a log line) and the pipeline's late rows went to the production dead-letter topic."""
    dlq = _production_kafka_env(monkeypatch, kafka_bootstrap, tmp_path)
    messages = stream(buckets=45, surge=range(30, 33))
    late = {**messages[0], "id": "late-one"}  # dated T0, read after 45 minutes of stream: its bucket is final
    no_text = {"id": "no-text", "published_at": _iso(0)}
    values = [json.dumps(m).encode() for m in messages[:10]] + [b"{not json"]
    values += [json.dumps(m).encode() for m in [*messages[10:], no_text]]
    values += [json.dumps(messages[-3]).encode(), json.dumps(late).encode()]  # a duplicate, then a late row
    topic = unique_name("history")
    asyncio.run(_produce_one_partition(kafka_bootstrap, topic, values))

    report = tmp_path / "replay.jsonl"
    assert main(["--config", str(DEFAULT_CONFIG), "replay", "--kafka-topic", topic, "--report", str(report),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    dead_path = tmp_path / "replay.dead-letter.jsonl"
    rows = [json.loads(line) for line in dead_path.read_text().splitlines()]
    assert sorted(r["reason"] for r in rows) == ["bad_json", "late", "missing_field"]
    malformed = {r["reason"]: r["origin"] for r in rows if r["reason"] != "late"}
    assert (malformed["bad_json"]["topic"], malformed["bad_json"]["offset"]) == (topic, 10)
    assert (malformed["missing_field"]["topic"], malformed["missing_field"]["offset"]) == (topic, len(messages) + 1)
    assert asyncio.run(_count_records(kafka_bootstrap, dlq)) == 0
    assert f"({len(messages)} new, 1 duplicates, 1 late)" in printed
    assert f"3 input rows were rejected (1 of them late); each is kept with its reason in {dead_path}" in printed


def test_kafka_range_replay_of_only_malformed_records_fails_and_keeps_them(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, the reader only counted them: 0 rows read, 0 dead letters, exit 0."""
    _production_kafka_env(monkeypatch, kafka_bootstrap, tmp_path)
    topic = unique_name("junk")
    asyncio.run(_produce_one_partition(kafka_bootstrap, topic, [b"{not json", b"[1, 2]", b"\xff\xfe"]))

    report = tmp_path / "junk.jsonl"
    assert main(["--config", str(DEFAULT_CONFIG), "replay", "--kafka-topic", topic, "--report", str(report),
                 "--no-progress"]) == 1
    assert "all 3 input rows were dead-lettered" in capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "junk.dead-letter.jsonl").read_text().splitlines()]
    assert [r["origin"]["offset"] for r in rows] == [0, 1, 2]


def test_a_kafka_range_of_a_topic_that_does_not_exist_is_one_error_line_not_an_empty_success(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by review: a warning in the log, then "replayed 0 messages" and exit 0."""
    _production_kafka_env(monkeypatch, kafka_bootstrap, tmp_path)
    missing = unique_name("nosuchtopic")
    code = main(["--config", str(DEFAULT_CONFIG), "replay", "--kafka-topic", missing, "--report",
                 str(tmp_path / "r.jsonl"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"topic(s) {missing} do not exist on {kafka_bootstrap}" in err and "Traceback" not in err


def test_a_kafka_range_that_ends_before_it_starts_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(DEFAULT_CONFIG), "replay", "--kafka-topic", "news", "--from", "2026-11-04T00:00:00Z",
              "--to", "2026-11-03T00:00:00Z", "--report", str(tmp_path / "r.jsonl")])
    assert exit_.value.code == 2
    assert "--from 2026-11-04T00:00:00Z is not before --to 2026-11-03T00:00:00Z" in capsys.readouterr().err
