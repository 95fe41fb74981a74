"""``monitor alerts dead-letters|redrive`` against a real Redis: a notification a sink refused past the
retry bound is listed, re-queued, and then delivered by the running delivery loop."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from alerts.delivery import OutboxDelivery, RetryPolicy
from alerts.factory import build_outbox
from alerts.model import Notification
from alerts.redrive import alerts_command
from alerts.sinks import build_sink, sink_name
from monitor.config import Settings
from tests.integration.alerts.test_outbox_contract import notification
from tests.unit.alerts.builders import RecordingSink

pytestmark = pytest.mark.integration


class BrokenSink(RecordingSink):
    async def send(self, notification: Notification) -> None:
        raise ConnectionError("receiver down")


def _settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(windows={"store_url": redis_url, "key_prefix": f"redrive-{uuid.uuid4().hex}"},
                    alerts={"sinks": [f"file://{tmp_path / 'alerts.jsonl'}"]})


async def test_dead_lettered_notification_is_listed_redriven_and_then_delivered(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings(redis_url, tmp_path)
    name = sink_name(settings.alerts.sinks[0])
    n = notification(0)
    policy = RetryPolicy(max_attempts=2, backoff_initial_s=0.0001)
    async with build_outbox(settings, [name]) as outbox:
        await outbox.enqueue(n, 0.0)
        broken = OutboxDelivery(outbox, [BrokenSink(name)], policy)
        for _ in range(2):
            await broken.deliver_due(broken.sinks[0])
        assert await outbox.pending(name) == 0
    capsys.readouterr()  # the delivery loop's log lines

    assert await _cli(["dead-letters"], settings) == 0  # a fresh process: only Redis remembers
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["sink"], row["id"], row["attempts"], row["status"]) == (name, n.id, 1, "firing")
    assert await _cli(["redrive", "--sink", name, "--id", n.id], settings) == 0
    assert "re-queued 1" in capsys.readouterr().out
    assert await _cli(["dead-letters"], settings) == 0 and capsys.readouterr().out == ""

    sink = build_sink(settings.alerts.sinks[0], settings)
    async with build_outbox(settings, [name]) as outbox, sink:
        assert await OutboxDelivery(outbox, [sink], policy).deliver_due(sink) == 1
    delivered = [json.loads(line)["id"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert delivered == [n.id]


async def test_redrive_refuses_an_unknown_sink_and_a_memory_store(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert await _cli(["redrive", "--sink", "nope"], _settings(redis_url, tmp_path)) == 2
    assert "not a configured sink" in capsys.readouterr().out
    assert await _cli(["dead-letters"], Settings()) == 2
    assert "redis://" in capsys.readouterr().out


async def _cli(argv: list[str], settings: Settings) -> int:
    return await asyncio.to_thread(alerts_command, argv, settings)


def test_monitor_alerts_is_a_cli_command(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    assert main(["alerts", "dead-letters"]) == 2  # the default config keeps alerts in memory
    assert "redis://" in capsys.readouterr().out
