"""What a running daemon says about itself on /metrics: build info while it exists, readiness while it runs."""

from __future__ import annotations

import asyncio
import json
import platform
from pathlib import Path

from monitor import __version__, metrics
from monitor.config import Settings
from monitor.engine.app import MonitorApp


async def test_build_info_names_version_model_runtime_and_ready_is_1_only_while_running(tmp_path: Path) -> None:
    stream = tmp_path / "s.jsonl"
    rows = [{"id": i, "source": "news", "text": "Shares slump", "published_at": 1_793_715_000 + i} for i in range(3)]
    stream.write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = Settings(source={"replay_paths": [stream], "dead_letter_path": tmp_path / "dl.jsonl",
                                "replay_speed": 1.0},
                        classifier={"kind": "lexicon"}, alerts={"sinks": []}, http={"enabled": False})
    app = MonitorApp(settings)
    labels = {"version": __version__, "model": "lexicon", "runtime": "torch", "python": platform.python_version()}
    assert metrics.prometheus_client_value("finsent_build_info", **labels) == 1
    seen: set[float | None] = set()

    async def watch() -> None:
        while True:
            seen.add(metrics.prometheus_client_value("finsent_ready"))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    stats = await app.run()
    watcher.cancel()
    assert stats.applied == 3
    assert 1.0 in seen and metrics.prometheus_client_value("finsent_ready") == 0
