"""Redis Cluster faults under a running daemon, mid-stream: the master that holds the windows is killed -9
(a replica is promoted), or the windows' slot is moved to another master while the daemon writes to it
(online resharding, what a managed service does when it scales). Either way the daemon waits out the
transition and ends with exact windows and the reference alerts.

Redis replicates asynchronously, so a write acknowledged just before the kill can be lost with the master;
the drill would show it as a missing message (it has not, in the runs so far).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosScenario
from tests.integration.streams import BUCKET_S, stream
from tests.kafka_broker import unique_name
from tests.servers import redis_cluster

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(240)]
LATENESS_S = 60


def cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10).stdout


def nodes(any_port: int) -> list[tuple[int, str, list[str]]]:
    """``(port, flags, slot ranges)`` of every node, as ``any_port`` sees the cluster."""
    rows = []
    for line in cli(any_port, "cluster", "nodes").splitlines():
        fields = line.split()
        rows.append((int(fields[1].split("@")[0].rsplit(":", 1)[1]), fields[2], fields[8:]))
    return rows


def another_node(any_port: int, than: int) -> int:
    """A node of the cluster other than ``than`` (a master when the cluster has no replicas)."""
    return next(port for port, _, _ in nodes(any_port) if port != than)


def master_of(any_port: int, key: str) -> int:
    """Port of the live master that serves ``key``'s slot."""
    slot = int(cli(any_port, "cluster", "keyslot", key))
    for port, flags, ranges in nodes(any_port):
        if "master" not in flags or "fail" in flags:
            continue
        for r in ranges:
            low, _, high = r.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                return port
    raise AssertionError(f"no live master serves slot {slot}")


async def test_the_master_holding_the_windows_killed_mid_stream_fails_over_and_nothing_is_lost(
    tmp_path: Path, kafka_bootstrap: str,
) -> None:
    messages = stream()
    with redis_cluster(tmp_path / "cluster", nodes=6, replicas=1, node_timeout_ms=1000) as url:
        scenario = ChaosScenario(tmp_path, kafka_bootstrap, url)
        until, expected = await scenario.prepare(messages, BUCKET_S, LATENESS_S)
        first_port = int(url.rsplit(":", 1)[1].split("/")[0])
        while master_of(first_port, f"{{{scenario.prefix}}}:x") == first_port:  # the URL's node must live on:
            scenario.prefix = unique_name("e2e")  # a new client needs a reachable seed node
        key = f"{{{scenario.prefix}}}:x"
        victim = master_of(first_port, key)
        survivor = another_node(first_port, victim)
        daemon = scenario.start()
        try:
            await scenario.wait_mid_stream(daemon, len(messages))
            pid = int(next(line for line in cli(victim, "info", "server").splitlines()
                           if line.startswith("process_id")).split(":")[1])
            os.kill(pid, signal.SIGKILL)
            await wait_failover(survivor, key, victim, 60)
            await scenario.assert_recovered(daemon, len(messages), until, expected)
            assert master_of(survivor, key) != victim  # a replica took over the windows' slot
        finally:
            code = daemon.terminate()
        assert code == 0, daemon.tail()


async def test_the_windows_slot_moved_to_another_master_mid_stream_loses_nothing(
    tmp_path: Path, kafka_bootstrap: str,
) -> None:
    messages = stream()
    with redis_cluster(tmp_path / "cluster", nodes=3) as url:
        scenario = ChaosScenario(tmp_path, kafka_bootstrap, url)
        until, expected = await scenario.prepare(messages, BUCKET_S, LATENESS_S)
        first_port = int(url.rsplit(":", 1)[1].split("/")[0])
        key = f"{{{scenario.prefix}}}:x"
        source = master_of(first_port, key)
        target = another_node(first_port, source)
        daemon = scenario.start()
        try:
            await scenario.wait_mid_stream(daemon, len(messages))
            moved = await migrate_slot(key, source, target)
            assert moved > 10, f"only {moved} keys moved: the slot held nothing of the daemon's"
            assert master_of(first_port, key) == target
            alerts_key = f"{{{scenario.prefix}:alerts}}:x"  # alert state, outbox (MULTI/EXEC, scripts)
            alerts_from = master_of(first_port, alerts_key)
            alerts_to = another_node(first_port, alerts_from)
            assert await migrate_slot(alerts_key, alerts_from, alerts_to) > 0
            await scenario.assert_recovered(daemon, len(messages), until, expected)
            slot = cli(source, "cluster", "keyslot", key).strip()
            assert cli(source, "cluster", "countkeysinslot", slot).strip() == "0"
        finally:
            code = daemon.terminate()
        assert code == 0, daemon.tail()


async def migrate_slot(key: str, source: int, target: int, keys_per_step: int = 5, pause_s: float = 0.05) -> int:
    """Move ``key``'s slot from ``source`` to ``target`` the way ``redis-cli --cluster reshard`` does
    (IMPORTING/MIGRATING, MIGRATE in small steps, then SETSLOT NODE everywhere), slowed down so the daemon's
    writes meet the slot half moved (ASK redirects, TRYAGAIN). Returns how many keys moved."""
    slot = cli(source, "cluster", "keyslot", key).strip()
    source_id, target_id = cli(source, "cluster", "myid").strip(), cli(target, "cluster", "myid").strip()
    assert cli(target, "cluster", "setslot", slot, "importing", source_id).strip() == "OK"
    assert cli(source, "cluster", "setslot", slot, "migrating", target_id).strip() == "OK"
    moved = 0
    while keys := cli(source, "cluster", "getkeysinslot", slot, str(keys_per_step)).split():
        reply = cli(source, "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *keys).strip()
        assert reply in {"OK", "NOKEY"}, reply
        moved += len(keys)
        await asyncio.sleep(pause_s)
    for port in (target, source, *(p for p, _, _ in nodes(source) if p not in {source, target})):
        assert cli(port, "cluster", "setslot", slot, "node", target_id).strip() == "OK"
    return moved


async def wait_failover(survivor: int, key: str, victim: int, timeout_s: float) -> None:
    """Wait until a live master other than ``victim`` serves ``key``; fail with the cluster's view if none does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if master_of(survivor, key) != victim:
                return
        except AssertionError:
            pass
        await asyncio.sleep(0.2)
    views = "\n".join(f"--- {port} {flags}\n{cli(port, 'cluster', 'nodes')}{cli(port, 'info', 'replication')}"
                      for port, flags, _ in nodes(survivor) if port != victim)
    pytest.fail(f"no replica took over {key}'s slot within {timeout_s:.0f} s:\n{views}", pytrace=False)

