"""Several daemons in one consumer group: a per-partition cluster watermark and one detection leader.

Each instance owns some partitions, so its own watermark says nothing about the others' data.
Every instance publishes one *mark* per partition it owns, only for durable data:
``(closed_until_s, None)`` -- the partition's data in buckets ending at or before this is durable
and final (later records for them are late on the owner), or ``(closed_until_s | None, offset)`` --
an idle partition: nothing past ``offset`` on it, and it holds nobody back beyond the owner's own
watermark (None: no constraint, also while the owner has no event time of its own on its partitions).
A partition the owner has no data for and that is not idle has no mark, and holds everyone back.

The cluster watermark is the minimum over the marks of live instances, and exists only when
*every* partition of the subscribed topics has a mark: while a partition changes hands (its old
owner stopped or crashed, the new owner has not fetched yet) detection waits. Idle marks are
checked against the broker's end offsets before the leader evaluates (monitor/cluster/member.py),
so records that landed on an idle partition make detection wait for them. A new owner starts from
the previous owner's live promise for the partition, so a record the old owner would have judged
late is late on the new owner too.

One instance holds a leader lease and evaluates alerts up to the cluster watermark; the alert
engine's cursor lives in Redis, so a new leader continues exactly where the old one stopped.

Keys (hash-tagged like the window store's): ``{P}:cluster:marks`` (hash instance -> JSON marks),
``{P}:cluster:alive`` (zset instance -> heartbeat deadline ms), ``{P}:cluster:leader`` (lease),
``{P}:cluster:first`` (zset instance -> first closed boundary: where detection starts, until a cursor exists) and
``{P}:cluster:evaluated`` (how far the leaders have evaluated: where a new leader resumes).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import structlog

from alerts.redis_client import RedisBacked
from monitor.cluster import lease
from monitor.cluster.clock import ClockOffset
from monitor.retry import describe
from monitor.time_bounds import EventTimeBounds

log = structlog.get_logger(__name__)

LaneMark = tuple[int | None, int | None]
"""``(closed_until_s or None for "no constraint", idle offset or None)``, see the module docstring."""

_REDIS_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
_HEARTBEAT = _REDIS_NOW_MS + """
-- KEYS: alive, marks ; ARGV: instance, lease_ms, marks JSON ('' = keep the marks)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return now
"""
_LIVE = _REDIS_NOW_MS + """
-- KEYS: alive, marks -> {alive instances, marks hash as a flat list}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {redis.call('ZRANGE', KEYS[1], 0, -1), redis.call('HGETALL', KEYS[2])}
"""
"""Heartbeat deadlines are set and judged on the Redis server's clock (``TIME``), never a member's own: a
member whose clock ran 20 s behind the leader's (lease 15 s) was judged dead at every view, its marks were
deleted and the cluster watermark never formed, so detection stalled for every key."""

_RAISE = """
-- KEYS: evaluated, first ; ARGV: boundary. Once a cursor exists the first boundaries are never read again:
-- drop them (one member per process start, kept for ever before)
local current = redis.call('GET', KEYS[1])
if not current or tonumber(current) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('DEL', KEYS[2])
return 0
"""


@dataclass(frozen=True, slots=True)
class ClusterView:
    closed_until_s: int | None
    """Minimum mark over every partition; None while a partition (or a live instance) has no mark,
    or when no partition constrains."""
    idle_claims: dict[str, int]
    """Per idle partition: the offset nothing is past, to check against the broker."""
    unmarked: frozenset[str] = frozenset()
    """Partitions no live instance has a mark for (they hold the cluster watermark)."""


class ClusterWatermark(RedisBacked):
    def __init__(self, url: str, key_prefix: str, *, lease_s: float, instance_id: str | None = None,
                 time_bounds: EventTimeBounds | None = None) -> None:
        self.url = url
        self.time_bounds = time_bounds
        """Plausible event times: an evaluated-until cursor outside them is repaired at start."""
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.lease_ms = int(lease_s * 1000)
        self.beat_at: float | None = None
        """``time.monotonic()`` of this instance's last heartbeat Redis took (None before the first): its marks
        live ``lease_ms`` past it."""
        tag = f"{{{key_prefix}}}:cluster"
        self.marks_key, self.alive_key, self.leader_key = f"{tag}:marks", f"{tag}:alive", f"{tag}:leader"
        self.first_key, self.evaluated_key = f"{tag}:first", f"{tag}:evaluated"
        self.clock = ClockOffset()
        """This host's clock against Redis's, measured at each heartbeat."""

    async def _start(self) -> None:
        await super()._start()
        await self._repair_cursor()
        await self.heartbeat()
        log.info("cluster_joined", instance=self.instance_id)

    async def _repair_cursor(self) -> None:
        """The cluster's cursor outside the plausible event times (9999, stored before times were
        bounded) would make every later bucket look evaluated: forget it (a new leader then starts at
        the first boundary instances publish), with one warning."""
        cursor = await self.evaluated_until_s()
        if cursor is None or self.time_bounds is None:
            return
        problem = self.time_bounds.cursor_violation(cursor)
        if problem is not None:
            await self.redis.delete(self.evaluated_key, self.first_key)
            log.warning("cluster_cursor_repaired", cursor_s=cursor, problem=f"cursor {problem}",
                        action="cursor cleared: the leader restarts at the first closed bucket")

    async def _stop(self) -> None:
        """Leave the cluster, best effort: with Redis down the marks and the lease expire by themselves, and an
        error here used to replace the real cause of a stop in the exit line (found by review)."""
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(self.marks_key, self.instance_id)
            pipe.zrem(self.alive_key, self.instance_id)
            await pipe.execute()
            await lease.release(self.redis, self.leader_key, self.instance_id)
        except Exception as exc:
            log.warning("cluster_leave_failed", instance=self.instance_id, error=describe(exc)[:300],
                        why="its marks and leadership expire with their lease")
        finally:
            await super()._stop()

    async def heartbeat(self) -> None:
        await self._beat("")

    async def publish(self, marks: Mapping[str, LaneMark]) -> None:
        """This instance's marks, replacing its previous ones (a revoked partition loses its mark)."""
        await self._beat(json.dumps({k: list(v) for k, v in sorted(marks.items())}))

    async def _beat(self, payload: str) -> None:
        """The heartbeat ('' keeps the marks); the Redis time it returns measures this host's clock."""
        sent_s = time.time()
        server_ms = await self.redis.eval(_HEARTBEAT, 2, self.alive_key, self.marks_key, self.instance_id,
                                          self.lease_ms, payload)
        self.clock.measure(int(server_ms), sent_s, time.time())
        self.beat_at = time.monotonic()

    async def publish_first(self, boundary_s: int) -> None:
        """The first bucket boundary this instance closed (kept if already set)."""
        await self.redis.zadd(self.first_key, {self.instance_id: boundary_s}, nx=True)

    async def first_boundary_s(self) -> int | None:
        first = await self.redis.zrange(self.first_key, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def evaluated_until_s(self) -> int | None:
        value = await self.redis.get(self.evaluated_key)
        return None if value is None else int(value)

    async def set_evaluated_until(self, boundary_s: int) -> None:
        """Only ever forward: a leader that lost its lease mid-evaluation cannot move it back."""
        await self.redis.eval(_RAISE, 2, self.evaluated_key, self.first_key, boundary_s)

    async def _live_marks(self) -> dict[str, dict[str, LaneMark] | None]:
        """Marks per live instance (None: alive but not published yet); forgets dead instances."""
        alive_raw, flat = await self.redis.eval(_LIVE, 2, self.alive_key, self.marks_key)
        marks_raw = dict(zip(flat[0::2], flat[1::2], strict=True))
        alive = {str(m) for m in alive_raw}
        dead = [k for k in marks_raw if str(k) not in alive]
        if dead:
            await self.redis.hdel(self.marks_key, *dead)
        out: dict[str, dict[str, LaneMark] | None] = dict.fromkeys(alive)
        for instance, raw in marks_raw.items():
            if str(instance) in alive:
                out[str(instance)] = {k: (v[0], v[1]) for k, v in json.loads(raw).items()}
        return out

    async def view(self, partitions: Collection[str]) -> ClusterView:
        """The cluster watermark over ``partitions`` (all partitions of the subscribed topics)."""
        per_instance = await self._live_marks()
        merged: dict[str, list[LaneMark]] = {}
        for instance_marks in per_instance.values():
            for partition, mark in (instance_marks or {}).items():
                merged.setdefault(partition, []).append(mark)
        claims: dict[str, int] = {}
        for partition, marks in merged.items():
            offsets = [offset for _, offset in marks if offset is not None]
            if offsets:
                claims[partition] = min(offsets)
        unmarked = frozenset(p for p in partitions if p not in merged)
        if not per_instance or None in per_instance.values() or unmarked:
            return ClusterView(None, claims, unmarked)
        values = [closed for p in partitions for closed, _ in merged[p] if closed is not None]
        return ClusterView(min(values) if values else None, claims)

    async def promises(self, partitions: Collection[str]) -> dict[str, int]:
        """Live data promises (not idle marks) for ``partitions``: what their current owners have
        declared final, which a new owner must respect."""
        out: dict[str, int] = {}
        for marks in (await self._live_marks()).values():
            for partition, (closed, offset) in (marks or {}).items():
                if partition in partitions and closed is not None and offset is None:
                    out[partition] = max(closed, out.get(partition, closed))
        return out

    async def lead(self) -> bool:
        """Take or keep the detection lease; True while this instance is the leader."""
        return await lease.take_or_keep(self.redis, self.leader_key, self.instance_id, self.lease_ms)

    async def keep_lead(self) -> bool:
        """Renew the detection lease held since ``lead()``; False once it was lost (another may lead now)."""
        return await lease.keep(self.redis, self.leader_key, self.instance_id, self.lease_ms)
