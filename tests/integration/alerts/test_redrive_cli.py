"""``monitor alerts dead-letters|redrive`` against a real Redis: a notification a sink refused past the
retry bound is listed, re-queued, and then delivered by the running delivery loop."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import structlog

from alerts.delivery import OutboxDelivery, RetryPolicy
from alerts.factory import build_outbox
from alerts.model import Notification
from alerts.outbox import RedisOutbox
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
    assert (row["sink"], row["id"], row["attempts"], row["status"]) == (name, n.id, 2, "firing")
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
    assert "not a configured sink" in capsys.readouterr().err
    assert await _cli(["dead-letters"], Settings()) == 2
    assert "error: monitor alerts dead-letters reads the shared outbox" in capsys.readouterr().err
    assert await _cli(["sinks"], Settings()) == 2  # it said "dead letters need ..." for sinks too (walkthrough)
    assert "error: monitor alerts sinks reads the shared outbox" in capsys.readouterr().err


async def _cli(argv: list[str], settings: Settings) -> int:
    return await asyncio.to_thread(alerts_command, argv, settings)


def test_monitor_alerts_is_a_cli_command(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    assert main(["alerts", "dead-letters"]) == 2  # the default config keeps alerts in memory
    assert "error: monitor alerts dead-letters reads the shared outbox" in capsys.readouterr().err


async def test_a_changed_sink_url_leaves_a_backlog_that_is_named_at_start_and_adopted_by_the_new_sink(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A sink's name hashes its URL, so a rotated Slack token (a new URL) used to orphan the old name's
    queue: never delivered, never dead-lettered, invisible. Real Redis, real file sinks."""
    prefix = f"adopt-{uuid.uuid4().hex}"
    old_url, new_url = f"file://{tmp_path / 'old.jsonl'}", f"file://{tmp_path / 'new.jsonl'}"
    before = Settings(windows={"store_url": redis_url, "key_prefix": prefix}, alerts={"sinks": [old_url]})
    after = Settings(windows={"store_url": redis_url, "key_prefix": prefix}, alerts={"sinks": [new_url]})
    old, new = sink_name(old_url), sink_name(new_url)
    queued, shared, dead = notification(0), notification(1), notification(2)
    async with build_outbox(before, [old]) as outbox:  # the receiver was down: a backlog, and a dead letter
        for n in (queued, dead):
            await outbox.enqueue(n, 0.0)
        await outbox.abandon(old, dead.id, 5.0)
    async with build_outbox(before, [old, new]) as outbox:  # for a while both URLs were configured
        await outbox.enqueue(shared, 0.5)
    with structlog.testing.capture_logs() as logs:
        async with build_outbox(after, [new]) as outbox:  # the URL changed; a newer alert reached the new sink
            await outbox.enqueue(notification(3), 1.0)
    [orphan] = [e for e in logs if e["event"] == "alert_outbox_orphaned"]
    assert (orphan["sink"], orphan["pending"], orphan["dead_letters"]) == (old, 2, 1)
    assert "monitor alerts adopt" in orphan["fix"]
    capsys.readouterr()

    assert await _cli(["sinks"], after) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"sink": new, "configured": True, "pending": 2}, {"sink": old, "configured": False, "held": 3}]
    assert await _cli(["adopt", "--from-sink", old, "--sink", new], after) == 0
    assert "moved 2" in capsys.readouterr().out  # the shared notification was already queued there: once
    assert await _cli(["adopt", "--from-sink", old, "--sink", new], after) == 2  # nothing left to move
    assert "holds nothing" in capsys.readouterr().err
    assert await _cli(["dead-letters", "--sink", new], after) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [dead.id]

    sink = build_sink(new_url, after)
    async with build_outbox(after, [new]) as outbox, sink:
        assert await outbox.orphaned_sinks() == {}
        assert await OutboxDelivery(outbox, [sink], RetryPolicy()).deliver_due(sink) == 3
        assert await outbox.pending(new) == 0
        assert isinstance(outbox, RedisOutbox) and await outbox.redis.hlen(outbox._key("payloads")) == 0  # no leak
    sent = [json.loads(line)["id"] for line in (tmp_path / "new.jsonl").read_text().splitlines()]
    assert sorted(sent) == sorted([queued.id, shared.id, notification(3).id])


def test_a_command_against_a_read_only_redis_fails_at_once_instead_of_waiting(tmp_path: Path) -> None:
    """The daemon waits for a Redis that refuses writes; an operator's command must not hang on one (found by the
    regression review: `monitor alerts dead-letters` against a replica retried for ever)."""
    import time

    import redis
    from redis.exceptions import ReadOnlyError

    from tests.servers import free_port, redis_server

    with redis_server(tmp_path) as url:
        redis.Redis.from_url(url).replicaof("127.0.0.1", str(free_port()))
        started = time.monotonic()
        with pytest.raises(ReadOnlyError):
            alerts_command(["redrive"], _settings(url, tmp_path))
        assert time.monotonic() - started < 10


def test_listings_work_while_redis_refuses_writes(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: `dead-letters` and `sinks` wrote at start (schema, sink names, index repair), so they failed
    with NOREPLICAS (or on a full Redis) in the incident where an operator needs them."""
    import redis

    admin = redis.Redis.from_url(redis_url)
    settings = _settings(redis_url, tmp_path)
    assert alerts_command(["sinks"], settings) == 0  # the outbox exists
    admin.config_set("min-replicas-to-write", "1")
    try:
        capsys.readouterr()
        assert alerts_command(["dead-letters"], settings) == 0
        assert alerts_command(["sinks"], settings) == 0
        assert '"configured": true' in capsys.readouterr().out
    finally:
        admin.config_set("min-replicas-to-write", "0")
