"""``monitor check`` against real servers: what it reports about Redis, Kafka, the model and files."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from monitor import cli
from monitor.cluster.solo import InstanceLease
from monitor.config import Settings, load_settings
from monitor.preflight import Finding, check_instance, check_kafka, check_redis, check_sinks, check_writable
from tests.chaos.harness import RedisProcess, running
from tests.kafka_broker import create_topics, unique_name
from tests.servers import alertmanager_server, free_port, redis_server

pytestmark = pytest.mark.integration


def statuses(found: list[Finding]) -> list[str]:
    return [f.status for f in found]


async def test_a_redis_without_persistence_and_with_an_evicting_policy_gets_a_warning_for_each(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path) as url:  # --save "" --appendonly no: no persistence at all
        found = await check_redis(url)
        assert statuses(found) == ["ok", "warn"] and "set appendonly yes" in found[1].detail
        admin = aioredis.Redis.from_url(url)
        await admin.config_set("maxmemory-policy", "allkeys-lru")
        await admin.aclose()
        found = await check_redis(url)
    assert statuses(found) == ["ok", "warn", "warn"]
    assert found[1].detail.startswith("maxmemory-policy allkeys-lru: Redis may evict windows")


async def test_a_redis_with_an_append_only_file_and_noeviction_is_all_ok(tmp_path: Path) -> None:
    with running(RedisProcess(tmp_path).start()) as redis:
        assert isinstance(redis, RedisProcess)
        found = await check_redis(redis.url)
    assert statuses(found) == ["ok"] and "answers" in found[0].detail


async def test_a_read_only_replica_fails_naming_its_primary_and_the_fix(tmp_path: Path) -> None:
    """Found by review: "ok redis", exit 0, while the daemon's /readyz said ReadOnlyError."""
    with redis_server(tmp_path) as url:
        admin = aioredis.Redis.from_url(url)
        primary = free_port()  # nothing listens there: the replica stays one, unsynced
        await admin.execute_command("REPLICAOF", "127.0.0.1", str(primary))
        try:
            found = await check_redis(url)
        finally:
            await admin.execute_command("REPLICAOF", "NO", "ONE")
            await admin.aclose()
    failed = [f.detail for f in found if f.status == "FAIL"]
    assert failed == [f"a replica of 127.0.0.1:{primary}: it refuses the daemon's writes (or, with "
                      "replica-read-only no, loses them at its next sync) -- point windows.store_url at the primary"]


async def test_a_redis_full_to_its_maxmemory_under_noeviction_fails_and_one_nearly_full_warns(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        admin = aioredis.Redis.from_url(url, decode_responses=True)
        used = int((await admin.info("memory"))["used_memory"])
        await admin.config_set("maxmemory", str(used - 100_000))
        full = await check_redis(url)
        used = int((await admin.info("memory"))["used_memory"])  # after a check: its own use counted
        await admin.config_set("maxmemory", str(int(used / 0.95)))
        nearly = await check_redis(url)
        await admin.config_set("maxmemory", "0")
        await admin.aclose()
    assert "FAIL" in statuses(full)
    (failed,) = [f.detail for f in full if f.status == "FAIL"]
    assert "(noeviction): Redis refuses every write -- Redis is at its maxmemory: raise it" in failed
    assert "FAIL" not in statuses(nearly)
    assert any("used of maxmemory" in f.detail and f.status == "warn" for f in nearly)


async def test_a_redis_that_cannot_persist_fails_with_the_fix_not_a_reachability_hint(tmp_path: Path) -> None:
    """Redis refuses writes (and PING) with MISCONF after a failed save; check said to look at host and port."""
    data = tmp_path / "data"
    data.mkdir()
    with redis_server(data, "--save", "3600 1") as url:
        admin = aioredis.Redis.from_url(url, decode_responses=True)
        data.rmdir()  # the background save cannot create its file
        await admin.bgsave()
        for _ in range(100):
            if (await admin.info("persistence"))["rdb_last_bgsave_status"] == "err":
                break
            await asyncio.sleep(0.05)
        (finding,) = await check_redis(url)
        await admin.config_set("save", "")  # else its shutdown save fails too, and it refuses to stop
        await admin.aclose()
    assert finding.status == "FAIL" and "MISCONF" in finding.detail
    assert finding.detail.endswith("free the disk or fix its dir (the Redis log says which)")


async def test_an_unreachable_redis_fails_naming_what_to_check() -> None:
    (finding,) = await check_redis(f"redis://:secret@127.0.0.1:{free_port()}/0", timeout_s=1)
    assert finding.status == "FAIL" and "windows.store_url" in finding.detail
    assert "secret" not in finding.detail  # the URL is shown redacted


async def test_the_daemon_holding_the_prefix_is_named_and_a_free_prefix_says_so(redis_url: str) -> None:
    settings = load_settings(windows={"store_url": redis_url, "key_prefix": "check-instance"})
    assert (await check_instance(settings)).detail == "prefix 'check-instance': no daemon holds it now"
    async with InstanceLease(redis_url, "check-instance", lease_s=5, wait_s=0, on_lost=print):
        finding = await check_instance(settings)
    assert finding.status == "ok"
    assert finding.detail.startswith(f"prefix 'check-instance': held by host {socket.gethostname()} pid {os.getpid()} ")


async def test_a_healthy_redis_cluster_is_ok_and_its_prefix_holder_is_read_through_the_cluster(
    redis_cluster_url: str,
) -> None:
    found = await check_redis(redis_cluster_url)
    assert statuses(found) == ["ok", "warn"] and "Redis Cluster node" in found[0].detail  # warn: no persistence
    settings = load_settings(windows={"store_url": redis_cluster_url, "key_prefix": "check-cluster"})
    async with InstanceLease(redis_cluster_url, "check-cluster", lease_s=5, wait_s=0, on_lost=print):
        finding = await check_instance(settings)
    assert finding.status == "ok" and "held by host" in finding.detail


async def test_missing_topics_fail_by_setting_and_existing_ones_report_their_partitions(kafka_bootstrap: str) -> None:
    news, comments, dlq = unique_name("news"), unique_name("comments"), unique_name("dlq")
    settings = Settings(source={"kind": "kafka"}, kafka={"bootstrap_servers": kafka_bootstrap, "news_topic": news,
                                                         "comments_topic": comments, "dead_letter_topic": dlq})
    found = await check_kafka(settings)
    assert statuses(found) == ["ok", "FAIL", "FAIL", "FAIL"]
    assert found[1].detail == f"kafka.news_topic {news!r} does not exist on {kafka_bootstrap} -- create it, or " \
                              "point kafka.news_topic (MONITOR_KAFKA__NEWS_TOPIC) at the right topic"
    await create_topics(kafka_bootstrap, {news: 3, comments: 1, dlq: 1})
    found = await check_kafka(settings)
    assert statuses(found) == ["ok"] * 4 and found[1].detail == f"kafka.news_topic {news!r}: 3 partition(s)"


async def test_an_unreachable_broker_fails_in_seconds_naming_the_setting() -> None:
    settings = Settings(source={"kind": "kafka"}, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    (finding,) = await check_kafka(settings, timeout_s=1)
    assert finding.status == "FAIL" and "MONITOR_KAFKA__BOOTSTRAP_SERVERS" in finding.detail


def test_a_path_below_a_file_or_naming_a_directory_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    assert check_writable("dead letters", tmp_path / "new" / "dl.jsonl", "source.dead_letter_path").status == "ok"
    below = check_writable("dead letters", tmp_path / "file" / "dl.jsonl", "source.dead_letter_path")
    assert below.status == "FAIL" and "is a file, not a directory" in below.detail
    assert check_writable("alert sink", tmp_path / "dir", "alerts.sinks").status == "FAIL"


def test_check_on_the_embedded_default_passes_and_says_so_line_by_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert [line.split()[:2] for line in lines] == [["ok", "classifier"], ["ok", "input"], ["ok", "dead"],
                                                    ["ok", "alert"]]
    assert "0 failed" in out.err


def test_check_fails_an_input_file_that_is_not_there(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Found by a new-user walkthrough: check passed, and the run then failed on the missing file."""
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    monkeypatch.setenv("MONITOR_SOURCE__REPLAY_PATHS", f'["{tmp_path / "nope.jsonl"}", "{tmp_path}"]')
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  input" in out and "nope.jsonl: not found -- fix source.replay_paths" in out
    assert "not a file" in out


def test_check_exits_1_when_a_dependency_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_WINDOWS__STORE_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("MONITOR_CLASSIFIER__KIND", "lexicon")
    assert cli.main(["check"]) == 1
    assert capsys.readouterr().out.startswith("FAIL  redis")


async def test_a_ready_alertmanager_is_ok_a_missing_one_fails_and_a_webhook_is_not_tried(tmp_path: Path) -> None:
    dead = f"alertmanager+http://127.0.0.1:{free_port()}"
    with alertmanager_server(tmp_path, "http://127.0.0.1:9/unused") as url:
        settings = Settings(alerts={"sinks": [f"alertmanager+{url}", dead, "webhook+https://hooks.example/T0K3N",
                                              "log://"], "webhook_secret": "s3cret"})
        found = await check_sinks(settings)
    assert statuses(found) == ["ok", "FAIL", "skip"]
    assert found[0].detail.endswith("Alertmanager is ready") and "alerts.sinks" in found[1].detail
    assert "not tried" in found[2].detail


async def test_a_refused_acl_is_reported_as_a_permission_not_as_an_unreachable_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka.errors import TopicAuthorizationFailedError

    import consumers.kafka_client

    async def refused(*_: object) -> dict[str, int]:
        raise TopicAuthorizationFailedError("news")

    monkeypatch.setattr(consumers.kafka_client, "topic_partitions", refused)
    (finding,) = await check_kafka(Settings(source={"kind": "kafka"}))
    assert finding.status == "FAIL" and "ACL" in finding.detail and "up and reachable" not in finding.detail


async def test_a_redis_short_of_replicas_fails_with_the_fix(redis_url: str) -> None:
    """Found by review: min-replicas-to-write with no replica refuses every write (NOREPLICAS), and check said ok."""
    admin = aioredis.Redis.from_url(redis_url)
    await admin.config_set("min-replicas-to-write", "1")
    try:
        found = await check_redis(redis_url)
    finally:
        await admin.config_set("min-replicas-to-write", "0")
        await admin.aclose()
    [refused] = [f for f in found if f.status == "FAIL"]
    assert "NOREPLICAS" in refused.detail and "min-replicas-to-write" in refused.detail


def test_a_writable_path_on_a_full_filesystem_fails_and_a_nearly_full_one_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: a full disk said "writable", and the run stopped at its first dead letter."""
    real = os.statvfs(tmp_path)

    def shaped(free_blocks: int) -> os.statvfs_result:
        fields = list(real)
        fields[4] = free_blocks  # f_bavail
        return os.statvfs_result(fields)

    for free_blocks, status in ((0, "FAIL"), (1, "warn")):
        monkeypatch.setattr("monitor.preflight.os.statvfs", lambda _path, n=free_blocks: shaped(n))
        found = check_writable("dead letters", tmp_path / "dl.jsonl", "source.dead_letter_path")
        assert found.status == status, found


def test_a_writable_path_on_a_filesystem_that_reports_no_blocks_is_ok() -> None:
    """Found by the regression review: /proc/self/fd/1 (a container's stdout) reports no blocks, not a full disk."""
    assert check_writable("dead letters", Path("/proc/self/fd/1"), "source.dead_letter_path").status == "ok"
