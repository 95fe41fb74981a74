"""A running daemon for the console tests: MonitorApp replaying the bundled demo, then staying up.

The demo stream is cut in the middle of its Wells Fargo surge, so when the replay has been read the
WFC alert is firing, BA and NVDA have fired and resolved, and event time (Nov 2026) is far from the
wall clock: exactly the situation where a wall-clock dashboard showed nothing. The source holds the
stream open after the last record (as a live source does), so buckets stay open and the HTTP API
keeps serving until the test stops the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumers.deadletter import build_dead_letter
from consumers.replay import FileReplaySource
from monitor.config import REPO_ROOT, Settings
from monitor.engine.app import MonitorApp
from monitor.types import SourceRecord

DEMO = REPO_ROOT / "data" / "demo_stream.jsonl"
CUT_AT = "2026-11-05T16:08:00Z"
"""Replay the demo up to here (ISO strings in the demo sort like times): WFC fires at 15:50 and resolves at 16:10."""
TOKEN = "test-token-5f3a-0c9e"


class HoldOpenSource(FileReplaySource):
    """The real file source, except that it waits (like an idle Kafka topic) after the last record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drained = asyncio.Event()

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        async for batch in super().batches(max_records, timeout_ms):
            yield batch
        self.drained.set()
        await asyncio.Event().wait()  # cancelled by the pipeline's stop

    async def commit(self, records: Sequence[SourceRecord]) -> None:
        await super().commit(records)


def _before(line: str, cut_at: str) -> bool:
    """Keep a line published before ``cut_at``; the demo's malformed lines are kept (dead-lettered)."""
    try:
        return str(json.loads(line).get("published_at", "")) < cut_at
    except (json.JSONDecodeError, AttributeError):
        return True


def cut_demo(target: Path, cut_at: str = CUT_AT) -> Path:
    lines = [line for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip() and _before(line, cut_at)]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


@dataclass
class RunningDaemon:
    app: MonitorApp
    base: str
    source: HoldOpenSource


def demo_settings(tmp: Path, token: str | None, store_url: str = "memory://") -> Settings:
    return Settings(
        source={"kind": "replay", "replay_paths": [str(cut_demo(tmp / "demo-cut.jsonl"))],
                "dead_letter_path": str(tmp / "dead-letter.jsonl")},
        classifier={"kind": "lexicon"},
        windows={"store_url": store_url, "bucket_s": 600, "allowed_lateness_s": 600},
        alerts={"sinks": [], "baseline_buckets": 144, "min_volume": 15, "z_threshold": 3.0,
                "min_neg_share": 0.4, "cooldown_s": 1800, "resolve_after_buckets": 2},
        http={"enabled": True, "host": "127.0.0.1", "port": 0, "api_token": token},
        log={"level": "WARNING", "format": "console"},
    )


@contextlib.asynccontextmanager
async def running_demo(tmp: Path, token: str | None = TOKEN, timeout_s: float = 90.0,
                       store_url: str = "memory://") -> AsyncIterator[RunningDaemon]:
    settings = demo_settings(tmp, token, store_url)
    dead_letter = build_dead_letter(settings)
    source = HoldOpenSource(settings.source.replay_paths, dead_letter, max_message_bytes=64_000,
                            max_text_chars=10_000)
    app = MonitorApp(settings, source=source)
    await dead_letter.start()  # the source's own dead-letter file (the app starts its own)
    task = asyncio.create_task(app.run())
    try:
        deadline = time.monotonic() + timeout_s
        while not (source.drained.is_set() and app.ready()):
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "the demo replay did not finish in time"
            await asyncio.sleep(0.05)
        # the last batch is durable and judged once the detection cursor reaches the watermark's bucket
        closed = app.pipeline.watermark.closed_until_s
        while await app.alerting.state.get_cursor() != closed:
            assert time.monotonic() < deadline, "detection did not catch up with the watermark"
            await asyncio.sleep(0.05)
        assert app.http is not None and app.http.bound_port
        yield RunningDaemon(app, f"http://127.0.0.1:{app.http.bound_port}", source)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
        await dead_letter.stop()
