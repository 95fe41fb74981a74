"""Without cluster mode, one daemon per Redis key prefix: a second one waits for the first, then refuses.

Why: two daemons on one Redis prefix without ``alerts.cluster_mode`` (a second replica, a deploy whose new
process starts before the old one stops) would split the partitions, and each would judge buckets on its
own watermark and write the same alert state and cursor: buckets judged before the other's data is in,
alerts missed or sent twice, without a word. The lease ``{P}:instance`` turns that into a clear state. A
second daemon waits up to ``alerts.instance_wait_s`` for the holder to stop (a restart, a rolling
deploy), then exits with one line naming the holder and the fix. A holder whose process is gone (kill -9)
is taken over at once instead of after its lease runs out, when that can be told for sure: same host name
*and* same pid namespace. Two containers with one host name (host networking, a fixed ``hostname:``) are
both pid 1 in namespaces of their own; judged by host and pid alone, the second took a live daemon's lease
within a second, and with a restart policy the two took it from each other in turn. A restarted container
(a new namespace) waits for its old lease to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from alerts.redis_client import RedisBacked
from monitor.cluster import lease
from monitor.retry import describe, retrying

log = structlog.get_logger(__name__)
POLL_S = 1.0
"""How often a waiting daemon asks whether the lease became free."""
_HELD_HERE: set[str] = set()
"""Tokens held by leases of this process (two apps in one process share its pid)."""


class InstanceConflictError(Exception):
    """Another daemon holds this prefix and did not let go within ``alerts.instance_wait_s``."""


class LeaseWaitCancelled(Exception):
    """A stop was requested (SIGTERM) while waiting for the lease: nothing started, nothing to undo."""


def describe_holder(token: str) -> str:
    try:
        h = json.loads(token)
        return f"host {h['host']} pid {h['pid']} (started {h['started_at']})"
    except (ValueError, KeyError, TypeError):
        return repr(token[:120])


def pid_namespace() -> int | None:
    """This process's pid namespace (the inode of ``/proc/self/ns/pid``), None where there is none (not Linux)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def dead_on_this_host(token: str) -> bool:
    """The holder ran on this host, in this pid namespace, and its process is gone (or has this very pid but
    is not this process's lease). Anything else (another host, another namespace, an older token without
    one) cannot be judged from here: its lease has to run out."""
    try:
        h = json.loads(token)
        host, pid = str(h["host"]), int(h["pid"])
        namespace = h.get("pidns")
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    if host != socket.gethostname() or namespace is None or namespace != pid_namespace():
        return False
    if pid == os.getpid():
        return token not in _HELD_HERE  # else a previous life of this pid (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


class InstanceLease(RedisBacked):
    """Held from ``start()`` to ``stop()``; ``on_lost`` is called if another daemon takes it meanwhile."""

    def __init__(self, url: str, key_prefix: str, *, lease_s: float, wait_s: float,
                 on_lost: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.key = f"{{{key_prefix}}}:instance"
        self.lease_ms = int(lease_s * 1000)
        self.wait_s = wait_s
        self.on_lost = on_lost
        self._clock = clock
        self.token = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "pidns": pid_namespace(),
                                 "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "id": uuid.uuid4().hex[:12]}, sort_keys=True)
        self._renewer: asyncio.Task[None] | None = None
        self._stop_waiting = asyncio.Event()

    def stop_waiting(self) -> None:
        """End a wait for the lease now (a stop was requested before this daemon could start)."""
        self._stop_waiting.set()

    async def _start(self) -> None:
        await super()._start()
        deadline_s = self._clock() + self.wait_s
        waiting_for: str | None = None
        while not await retrying("instance_lease", self._acquire):
            holder = await retrying("instance_lease", self._holder)
            if holder != waiting_for:
                waiting_for = holder
                log.warning("instance_waiting", holder=describe_holder(holder), key=self.key, wait_s=self.wait_s,
                            why="another daemon runs on this Redis prefix without alerts.cluster_mode")
            if self._clock() >= deadline_s:
                await super()._stop()
                raise InstanceConflictError(
                    f"another finsent daemon ({describe_holder(holder)}) runs on Redis prefix {self.key[1:-10]!r} "
                    f"without alerts.cluster_mode (still there after alerts.instance_wait_s = {self.wait_s:g} s) "
                    "-- stop it first, or set alerts.cluster_mode = true on every instance")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._stop_waiting.wait()
            if self._stop_waiting.is_set():
                await super()._stop()
                raise LeaseWaitCancelled(f"stopped while waiting for {describe_holder(holder)} to release {self.key}")
        _HELD_HERE.add(self.token)
        log.info("instance_lease_taken", key=self.key)
        self._renewer = asyncio.create_task(self._renew(), name="instance-lease")

    async def _acquire(self) -> bool:
        if await lease.take_or_keep(self.redis, self.key, self.token, self.lease_ms):
            return True
        holder = await self._holder()
        if holder and dead_on_this_host(holder):
            log.info("instance_lease_taken_over", previous=describe_holder(holder), why="its process is gone")
            return await lease.replace(self.redis, self.key, holder, self.token, self.lease_ms)
        return False

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                kept = await retrying("instance_lease", self._keep)
            except Exception as exc:  # not an outage (retried above): a refused command, a bug. Keep trying:
                # a renewer that died silently let the lease lapse with no one told
                log.error("instance_lease_renewal_failed", key=self.key, error=describe(exc)[:300])
                continue
            if not kept:
                holder = describe_holder(await retrying("instance_lease", self._holder))
                log.error("instance_lease_lost", holder=holder, key=self.key,
                          why="this daemon could not renew its lease in time and another one took the prefix")
                self.on_lost(holder)
                return

    async def _holder(self) -> str:
        value = await self.redis.get(self.key)
        return str(value) if value else ""

    async def _keep(self) -> bool:
        return await lease.take_or_keep(self.redis, self.key, self.token, self.lease_ms)

    async def _stop(self) -> None:
        _HELD_HERE.discard(self.token)
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # never skip the release and close
                await self._renewer
            self._renewer = None
        try:
            with contextlib.suppress(Exception):  # best effort: the lease runs out by itself anyway
                async with asyncio.timeout(2):
                    await lease.release(self.redis, self.key, self.token)
        finally:
            await super()._stop()
