"""Without cluster mode, one daemon per Redis prefix: a second one waits for the first, then refuses in
one line (monitor/cluster/solo.py), against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from monitor.cluster.solo import InstanceConflictError, InstanceLease, pid_namespace
from monitor.config import REPO_ROOT
from monitor.redis_connect import connect

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """Each test on a standalone redis-server and on a real 3-master Redis Cluster."""
    return str(request.getfixturevalue("redis_cluster_url")) if request.param == "redis-cluster" else redis_url
MONITOR_RUN = [sys.executable, "-m", "monitor.cli", "run"]


def lease(url: str, prefix: str, *, wait_s: float = 0.0, lost: list[str] | None = None) -> InstanceLease:
    """Renewed every second: a loaded CI host must not let it lapse where the test needs it held."""
    return InstanceLease(url, prefix, lease_s=3.0, wait_s=wait_s,
                         on_lost=(lost if lost is not None else []).append)


async def test_a_second_instance_on_the_same_prefix_is_refused_with_the_holder_and_the_fix(redis_url: str) -> None:
    prefix = f"solo-{uuid.uuid4().hex[:8]}"
    async with lease(redis_url, prefix):
        with pytest.raises(InstanceConflictError) as info:
            await lease(redis_url, prefix, wait_s=1.5).start()
        text = str(info.value)
        assert f"host {socket.gethostname()} pid {os.getpid()}" in text
        assert f"Redis prefix {prefix!r}" in text and "alerts.cluster_mode = true" in text
        async with lease(redis_url, f"{prefix}-other"):  # another prefix is another daemon's business
            pass


async def test_a_waiting_instance_takes_over_as_soon_as_the_holder_stops(redis_url: str) -> None:
    prefix = f"solo-{uuid.uuid4().hex[:8]}"
    first = lease(redis_url, prefix)
    await first.start()
    second = lease(redis_url, prefix, wait_s=10.0)
    waiting = asyncio.create_task(second.start())
    await asyncio.sleep(4.0)  # longer than the lease: the first renews it, the second keeps waiting
    assert not waiting.done()
    began = time.monotonic()
    await first.stop()
    await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - began < 2.0
    await second.stop()


async def test_a_holder_on_this_host_whose_process_is_gone_is_taken_over_at_once(redis_url: str) -> None:
    prefix = f"solo-{uuid.uuid4().hex[:8]}"
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    token = json.dumps({"host": socket.gethostname(), "pid": dead.pid, "pidns": pid_namespace(), "started_at": "x",
                        "id": "dead"})
    client = await connect(redis_url, decode_responses=True)
    try:
        await client.set(f"{{{prefix}}}:instance", token, px=60_000)  # a kill -9 left a minute of lease
        began = time.monotonic()
        async with lease(redis_url, prefix, wait_s=0.0) as taken:
            assert time.monotonic() - began < 1.0
            assert await client.get(f"{{{prefix}}}:instance") == taken.token
    finally:
        await client.aclose()


async def test_an_instance_whose_lease_was_taken_is_told_so(redis_url: str) -> None:
    prefix = f"solo-{uuid.uuid4().hex[:8]}"
    lost: list[str] = []
    told = asyncio.Event()
    client = await connect(redis_url, decode_responses=True)
    try:
        async with InstanceLease(redis_url, prefix, lease_s=1.0, wait_s=0.0,
                                 on_lost=lambda holder: (lost.append(holder), told.set())):
            intruder = json.dumps({"host": "other-host", "pid": 7, "started_at": "t", "id": "intruder"})
            await client.set(f"{{{prefix}}}:instance", intruder, px=60_000)
            await asyncio.wait_for(told.wait(), 3)
        assert lost == ["host other-host pid 7 (started t)"]
        assert await client.get(f"{{{prefix}}}:instance") == intruder  # stopping never releases another's lease
    finally:
        await client.aclose()


async def test_a_renewal_refused_by_redis_is_logged_and_retried_and_the_stop_still_releases(redis_url: str) -> None:
    """A non-transient renewal error (an ACL change, a bug) killed the renewer silently: the lease lapsed with
    nobody told, and the stop re-raised it, skipping the release."""
    from redis.exceptions import NoPermissionError

    prefix = f"solo-{uuid.uuid4().hex[:8]}"
    held = lease(redis_url, prefix)
    keep = held._keep
    refusals = 0

    async def refused_once() -> bool:
        nonlocal refusals
        if refusals == 0:
            refusals += 1
            raise NoPermissionError("NOPERM this user has no permissions to run the 'evalsha' command")
        return await keep()

    held._keep = refused_once  # type: ignore[method-assign]
    client = await connect(redis_url, decode_responses=True)
    try:
        with structlog.testing.capture_logs() as logs:
            async with held:
                await asyncio.sleep(2.5)  # two renewals: the refused one, then a kept one
                assert held._renewer is not None and not held._renewer.done()
                assert await client.get(f"{{{prefix}}}:instance") == held.token
        assert refusals == 1 and any(e["event"] == "instance_lease_renewal_failed" for e in logs)
        assert await client.get(f"{{{prefix}}}:instance") is None  # released at the stop
    finally:
        await client.aclose()


@contextlib.contextmanager
def first_daemon(redis_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """A ``monitor run`` holding a fresh prefix (a slow replay), and the environment to start a second one."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MONITOR_HTTP__ENABLED": "false",
           "MONITOR_CLASSIFIER__KIND": "lexicon", "MONITOR_WINDOWS__STORE_URL": redis_url,
           "MONITOR_WINDOWS__KEY_PREFIX": f"solo-{uuid.uuid4().hex[:8]}", "MONITOR_SOURCE__REPLAY_SPEED": "1",
           "MONITOR_ALERTS__SINKS": "[]"}
    first = subprocess.Popen(MONITOR_RUN, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_for_line(first, "instance_lease_taken")
        yield first, env
    finally:
        first.terminate()
        assert first.wait(60) == 0


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout_s: float = 60) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    while text not in proc.stderr.readline():
        assert time.monotonic() < deadline and proc.poll() is None, f"no {text} line"


def test_a_second_monitor_run_on_the_same_redis_prefix_exits_1_with_one_line(redis_url: str, tmp_path: Path) -> None:
    with first_daemon(redis_url, tmp_path) as (first, env):
        second = subprocess.run(MONITOR_RUN, env={**env, "MONITOR_ALERTS__INSTANCE_WAIT_S": "1"}, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    last = second.stderr.rstrip().splitlines()[-1]
    assert last.startswith(f"error: another finsent daemon (host {socket.gethostname()} pid {first.pid} ")
    assert "alerts.instance_wait_s = 1 s" in last and "alerts.cluster_mode = true" in last


def test_a_daemon_waiting_for_the_prefix_stops_at_once_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    with first_daemon(redis_url, tmp_path) as (_, env):
        waiting = subprocess.Popen(MONITOR_RUN, env={**env, "MONITOR_ALERTS__INSTANCE_WAIT_S": "120"}, cwd=tmp_path,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for_line(waiting, "instance_waiting")
        began = time.monotonic()
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(30) == 0
        assert time.monotonic() - began < 10
