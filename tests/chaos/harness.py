"""Fault drills against the real daemon: restartable/freezable Redis and broker processes, a daemon
scenario (Kafka in, Redis windows, a file sink), and the reference an uninterrupted run produces.

Shared by the CI chaos suite (tests/chaos/test_*.py, short) and ``make chaos`` (scripts/chaos.py, long).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from alerts.state import RedisAlertStateStore
from monitor.config import Settings, load_settings
from monitor.retry import Dependencies, retrying
from tests.integration.daemon import Daemon
from tests.integration.test_daemon_e2e import Scenario
from tests.kafka_broker import create_topics, tansu_binary, wait_for_metadata
from tests.servers import free_port, require_binary, wait_for_port

Summary = tuple[str, str, int]
"""A notification as compared between runs: (id, status, event time)."""


class Proc:
    """A server subprocess that can be frozen (SIGSTOP: a hung host) and thawed."""

    proc: subprocess.Popen[bytes] | None = None

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class RedisProcess(Proc):
    """redis-server on a fixed port with an fsync-always AOF, so a stop + start keeps every write."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("redis-server", "install it: apt-get install -y redis-server")
        self.workdir = workdir
        self.port = free_port()

    @property
    def url(self) -> str:
        # a short socket timeout: a frozen Redis is noticed (and reported on /readyz) within a second
        return f"redis://127.0.0.1:{self.port}/0?socket_timeout=1"

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 10.0, self.proc)
        return self

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    async def set_maxmemory(self, limit: str) -> None:
        """``CONFIG SET maxmemory``: "1" makes this (noeviction) Redis refuse every write, "0" lifts it."""
        admin = aioredis.Redis.from_url(self.url)
        try:
            await admin.config_set("maxmemory", limit)
        finally:
            await admin.aclose()


class BrokerProcess(Proc):
    """tansu (in-memory storage: a stop loses the log, so broker outages are drilled as freezes)."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> BrokerProcess:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, 10.0, self.proc)
        wait_for_metadata(self.port, 10.0, self.proc)
        return self


@contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


REFERENCE_DETECTION = "bucket"
"""Detector family of both the drilled daemon and its uninterrupted reference run."""


class ChaosScenario(Scenario):
    """The e2e scenario (topics, group, prefix, file sink) with per-drill overrides."""

    def __init__(self, tmp_path: Path, kafka: str, redis_url: str, **env: str) -> None:
        super().__init__(tmp_path, kafka, redis_url)
        # the drills compare against the per-bucket reference run (`reference`): the short synthetic
        # stream is too young for production's multi-scale baselines
        self.overrides = {"MONITOR_KAFKA__MAX_POLL_RECORDS": "8", "MONITOR_BATCHING__MAX_BATCH_SIZE": "8",
                          "MONITOR_KAFKA__MAX_BUFFERED_RECORDS": "200",
                          "MONITOR_ALERTS__DETECTION": REFERENCE_DETECTION, **env}
        self.runs = 0

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.overrides}

    async def prepare(self, messages: list[dict[str, object]], bucket_s: int, lateness_s: int,
                      news_partitions: int = 2) -> tuple[int, list[Summary]]:
        """Create the topics, produce ``messages``, and return ``(until_s, expected)``: the newest boundary
        the data closes and the notifications an uninterrupted run gives up to it."""
        await create_topics(self.kafka, {self.news: news_partitions, self.comments: 1, self.dlq: 1})
        await self.produce(messages)
        until = closed_by_data_s(messages, bucket_s, lateness_s)
        return until, await reference(messages, self.tmp_path, bucket_s, lateness_s, until)

    async def wait_mid_stream(self, daemon: Daemon, total: int, at_least: int = 150) -> None:
        """Until the daemon has windowed ``at_least`` messages and not all ``total``: where a fault should hit."""
        deadline = time.monotonic() + 60
        while (got := await self.volume()) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"the stream did not start: {got} messages after 60 s\n{daemon.tail()}")
            daemon.assert_alive()
            await asyncio.sleep(0.2)
        assert got < total, "the fault must come mid-stream"

    async def assert_recovered(self, daemon: Daemon, total: int, until_s: int, expected: list[Summary]) -> None:
        """The drill's end state: every message windowed once, detection through ``until_s``, ready again,
        nothing judged late, and exactly the uninterrupted run's notifications."""
        port = port_of(daemon)
        await self.wait_volume(total, 120, daemon)
        await self.wait_cursor(until_s, 60, daemon)
        assert (await wait_ready(port, 30))["status"] == 200
        assert metric(port, "finsent_late_messages_total") == 0
        assert await self.wait_notifications(expected, until_s, 20) == expected
        assert await self.volume() == total

    async def volume(self) -> int:
        """Messages in the windows; waits out the drill's own Redis outages."""
        return await retrying("chaos-check", super().volume, dependencies=Dependencies())

    def start(self) -> Daemon:
        self.runs += 1
        return self.daemon(f"run{self.runs}").start()

    def notifications(self) -> list[Summary]:
        """Distinct notifications the file sink received (at-least-once: a resend is one notification)."""
        if not self.alerts_path.exists():
            return []
        notes = [json.loads(line) for line in self.alerts_path.read_text().splitlines() if line.strip()]
        return sorted({(n["id"], n["status"], n["event_time_s"]) for n in notes})

    def deliveries(self) -> int:
        return len(self.alerts_path.read_text().splitlines()) if self.alerts_path.exists() else 0

    async def cursor(self) -> int | None:
        async def read() -> int | None:
            async with RedisAlertStateStore(self.redis_url, f"{self.prefix}:alerts") as state:
                return await state.get_cursor()

        return await retrying("chaos-check", read, dependencies=Dependencies())

    async def wait_cursor(self, until_s: int, timeout_s: float, daemon: Daemon) -> None:
        deadline = time.monotonic() + timeout_s
        while (cursor := await self.cursor()) is None or cursor < until_s:
            if time.monotonic() > deadline:
                raise AssertionError(f"detection at {cursor}, expected >= {until_s}\n{daemon.tail()}")
            daemon.assert_alive()
            await asyncio.sleep(0.2)

    async def wait_notifications(self, expected: list[Summary], until_s: int, timeout_s: float) -> list[Summary]:
        deadline = time.monotonic() + timeout_s
        while (got := [n for n in self.notifications() if n[2] <= until_s]) != expected:
            if time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.2)
        return got


def port_of(daemon: Daemon, timeout_s: float = 60) -> int:
    return int(daemon.wait_for_event("http_listening", timeout_s)["port"])


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(name) and not line.startswith("#"))


async def watch_readiness(port: int, seconds: float) -> list[tuple[int, dict[str, Any]]]:
    """Poll /readyz for ``seconds``; returns every answer (from a thread: the daemon is a subprocess)."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers.append(await asyncio.to_thread(readyz, port))
        await asyncio.sleep(0.2)
    return answers


async def wait_ready(port: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = await asyncio.to_thread(readyz, port)
        if status == 200 or time.monotonic() > deadline:
            return {"status": status, **body}
        await asyncio.sleep(0.2)


async def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, daemon: Daemon) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{daemon.tail()}")
        daemon.assert_alive()
        await asyncio.sleep(0.05)


def reference_settings(path: Path, bucket_s: int, lateness_s: int) -> Settings:
    return load_settings(
        classifier={"kind": "lexicon"}, source={"kind": "replay", "replay_paths": [str(path)]},
        windows={"store_url": "memory://", "bucket_s": bucket_s, "allowed_lateness_s": lateness_s},
        alerts={"sinks": [], "detection": REFERENCE_DETECTION}, http={"enabled": False},
    )


async def reference(messages: list[dict[str, object]], workdir: Path, bucket_s: int, lateness_s: int,
                    until_s: int) -> list[Summary]:
    """Notifications of an uninterrupted run over the same stream (in-process file replay)."""
    from monitor.backtest.runner import RecordingEvaluator
    from monitor.engine.app import MonitorApp

    path = workdir / "reference.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    app = MonitorApp(reference_settings(path, bucket_s, lateness_s))
    recorder = RecordingEvaluator(app.alerting)
    app.pipeline.evaluator = recorder
    await app.run()
    return sorted({(n.id, str(n.status), n.event_time_s) for n in recorder.notifications
                   if n.event_time_s <= until_s})


def closed_by_data_s(messages: list[dict[str, object]], bucket_s: int, lateness_s: int) -> int:
    """The newest bucket boundary the stream's own data closes (no wall-clock advance needed)."""
    from consumers.schema import parse_event_time

    last = max(int(parse_event_time(m["published_at"]).timestamp()) for m in messages)
    return (last - lateness_s) - (last - lateness_s) % bucket_s
