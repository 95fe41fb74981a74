"""Hostile streams through the whole daemon into a real Redis: odd ids (NUL, braces, any script) and odd
text land in Redis keys and evidence; every valid message is counted once, every other one dead-lettered."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings

from monitor.config import Settings
from monitor.engine.app import MonitorApp
from monitor.windows.buckets import ALL_KEY
from tests.kafka_broker import unique_name
from tests.strategies import MAX_MESSAGE_BYTES, MAX_TEXT_CHARS, mixed_streams

pytestmark = pytest.mark.integration


@settings(max_examples=8)
@given(items=mixed_streams(max_size=20))
async def test_hostile_stream_into_redis_counts_every_valid_message_once(
    redis_url: str, items: list[tuple[bytes, bool]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        stream = tmp / "stream.jsonl"
        stream.write_bytes(b"".join(raw + b"\n" for raw, _ in items))
        app = MonitorApp(Settings(
            source={"kind": "replay", "replay_paths": [stream], "dead_letter_path": tmp / "dead.jsonl",
                    "max_message_bytes": MAX_MESSAGE_BYTES, "max_text_chars": MAX_TEXT_CHARS,
                    # arbitrary gaps: every valid message must count (the jump guard's own tests are in
                    # tests/unit/monitor/engine/test_pipeline_jumps.py)
                    "max_event_time_jump_s": 0},
            classifier={"kind": "lexicon"},
            windows={"store_url": redis_url, "key_prefix": unique_name("hostile"), "bucket_s": 60,
                     "allowed_lateness_s": 0},
            alerts={"sinks": [], "min_volume": 1, "min_baseline_buckets": 1},
            http={"enabled": False},
        ))
        stats = await app.run()
        valid = sum(ok for _, ok in items)
        assert (stats.applied, stats.duplicates, stats.late) == (valid, 0, 0)
        async with app.store:  # stopped by run(): reopen to read what Redis holds
            assert sum(b.volume for b in await app.store.buckets(ALL_KEY, 0, 2**40)) == valid
        dead_path = tmp / "dead.jsonl"
        dead = [json.loads(line) for line in dead_path.read_text("utf-8").split("\n") if line]
        assert [d["origin"]["line"] for d in dead] == [n for n, (_, ok) in enumerate(items, start=1) if not ok]
