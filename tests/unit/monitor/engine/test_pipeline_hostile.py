"""The whole daemon (MonitorApp: file replay → lexicon classifier → memory windows → alerting) on
hostile streams: it finishes, counts every valid message once, and dead-letters every other one."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hypothesis import example, given, settings

from monitor.config import Settings
from monitor.engine.app import MonitorApp
from monitor.engine.batching import MicroBatcher
from monitor.engine.pipeline import Pipeline
from monitor.time_bounds import EventTimeBounds
from monitor.windows.buckets import ALL_KEY
from monitor.windows.memory import MemoryWindowStore
from tests.fakes import CollectingDeadLetter, ListSource, RecordingClassifier, msg
from tests.strategies import MAX_MESSAGE_BYTES, MAX_TEXT_CHARS, mixed_streams

FAR_FUTURE_S = 2**40


def _settings(tmp: Path, stream: Path) -> Settings:
    return Settings(
        source={"kind": "replay", "replay_paths": [stream], "dead_letter_path": tmp / "dead.jsonl",
                "max_message_bytes": MAX_MESSAGE_BYTES, "max_text_chars": MAX_TEXT_CHARS,
                # the streams' gaps are arbitrary: every valid message must count, jumps included
                # (the jump guard has its own properties in test_pipeline.py)
                "max_event_time_jump_s": 0},
        classifier={"kind": "lexicon"},
        windows={"store_url": "memory://", "bucket_s": 60, "allowed_lateness_s": 0},
        alerts={"sinks": [], "min_volume": 1, "min_baseline_buckets": 1},
        http={"enabled": False},
    )


@settings(max_examples=25)
@given(mixed_streams())
@example([(b'{"id": "v0", "text": "same", "published_at": "2026-12-05T16:02:20Z", "source": "news"}', True),
          (b'{"id": "v1", "text": "same", "published_at": "2026-12-05T16:02:20Z", "source": "news"}', True)])
async def test_hostile_stream_is_processed_to_the_end_with_every_message_counted_or_dead_lettered(
    items: list[tuple[bytes, bool]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        stream = tmp / "stream.jsonl"
        stream.write_bytes(b"".join(raw + b"\n" for raw, _ in items))
        app = MonitorApp(_settings(tmp, stream))
        started = time.time()
        stats = await app.run()
        valid = sum(ok for _, ok in items)
        assert (stats.read, stats.applied, stats.duplicates, stats.late) == (valid, valid, 0, 0)
        buckets = await app.store.buckets(ALL_KEY, 0, FAR_FUTURE_S)
        # a valid message whose text repeats an earlier one counts as a repeat, not as a second story
        assert sum(b.messages for b in buckets) == valid
        assert sum(b.repeats for b in buckets) == stats.repeats
        dead_path = tmp / "dead.jsonl"
        text = dead_path.read_text("utf-8") if dead_path.exists() else ""
        dead = [json.loads(line) for line in text.split("\n") if line]  # not splitlines(): U+0085 may be inside
        invalid_lines = [n for n, (_, ok) in enumerate(items, start=1) if not ok]
        assert [d["origin"]["line"] for d in dead] == invalid_lines
        assert all(d["reason"] and d["detail"] for d in dead)
        newest = app.pipeline.watermark.max_event_s
        if newest is not None:  # no message moved event time out of the plausible window
            bounds = EventTimeBounds()
            assert bounds.min_event_time is not None
            assert bounds.min_event_time.timestamp() <= newest <= started + bounds.max_future_s + 60


async def test_the_pipelines_own_dead_letters_never_raise_on_odd_message_contents() -> None:
    """A source other than ours may hand over a message with unencodable text or non-JSON meta: when
    it is late, dead-lettering it must not crash the daemon."""
    odd = replace(msg("odd", "text \ud800 here", 60), meta={"obj": object(), "n": 10**5_000})
    source = ListSource([[msg("a", "x", 600)], [odd]])
    dead = CollectingDeadLetter()
    store = MemoryWindowStore(bucket_s=60, retention_s=10**6)
    async with MicroBatcher(RecordingClassifier(), max_batch_size=8, max_wait_ms=1, max_queue_messages=100) as b:
        pipe = Pipeline(source, b, store, dead, None, allowed_lateness_s=0, max_batch_size=8, max_wait_ms=1,
                        max_in_flight_batches=2)
        stats = await pipe.run()
    assert stats.late == 1
    ((raw, reason, _, _),) = dead.items
    assert reason == "late" and b"text \\ud800 here" in raw
