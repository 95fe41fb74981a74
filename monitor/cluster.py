"""Several daemons in one consumer group: a cluster-wide watermark and one detection leader.

Each instance owns some partitions, so its own watermark says nothing about the others' data.
Every instance publishes the end of its newest *durable* closed bucket; the cluster watermark is the
minimum over the live instances (an instance that stops heartbeating for ``lease_s`` drops out).
One instance holds a leader lease and evaluates alerts up to the cluster watermark; the alert
engine's cursor lives in Redis, so a new leader continues exactly where the old one stopped.

Keys (hash-tagged like the window store's): ``{P}:cluster:wm`` (hash instance -> closed-until s),
``{P}:cluster:alive`` (zset instance -> heartbeat deadline ms), ``{P}:cluster:leader`` (lease),
``{P}:cluster:first`` (zset instance -> first closed boundary: where detection starts) and
``{P}:cluster:evaluated`` (how far the leaders have evaluated: where a new leader resumes) and
``{P}:cluster:idle`` (instance -> JSON offsets: the claim behind an instance's "no constraint").

An instance with no data claims "no constraint" *as of* the durable offsets of its partitions. The
leader checks those claims against the broker before it evaluates: if records landed past a claim
(a backlog the idle instance has not fetched yet), that instance's data is missing, so detection
waits for it instead of judging buckets with part of the stream.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import structlog

from alerts.redis_client import RedisBacked

log = structlog.get_logger(__name__)

NO_CONSTRAINT_S = 2**62
"""Published by an instance with no data and no busy partitions: it holds nobody back."""

# Keep (renew) the lease if we hold it, else take it if it is free. Atomic, so two instances never
# both believe they lead within one lease period.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class ClusterView:
    closed_until_s: int | None
    """Minimum published closed-until over live instances; None while any has not published."""
    idle_claims: tuple[dict[str, int], ...]
    """Durable offsets behind each live instance's "no constraint"."""


class ClusterWatermark(RedisBacked):
    def __init__(self, url: str, key_prefix: str, *, lease_s: float, instance_id: str | None = None) -> None:
        self.url = url
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.lease_ms = int(lease_s * 1000)
        tag = f"{{{key_prefix}}}:cluster"
        self.wm_key, self.alive_key, self.leader_key = f"{tag}:wm", f"{tag}:alive", f"{tag}:leader"
        self.first_key, self.evaluated_key, self.idle_key = f"{tag}:first", f"{tag}:evaluated", f"{tag}:idle"

    async def _start(self) -> None:
        await super()._start()
        await self.heartbeat()
        log.info("cluster_joined", instance=self.instance_id)

    async def _stop(self) -> None:
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(self.wm_key, self.instance_id)
            pipe.hdel(self.idle_key, self.instance_id)
            pipe.zrem(self.alive_key, self.instance_id)
            await pipe.execute()
            await self.redis.eval(_RELEASE, 1, self.leader_key, self.instance_id)
        finally:
            await super()._stop()

    async def heartbeat(self) -> None:
        deadline_ms = int(time.time() * 1000) + self.lease_ms
        await self.redis.zadd(self.alive_key, {self.instance_id: deadline_ms})

    async def publish(self, closed_until_s: int) -> None:
        """This instance's data before ``closed_until_s`` is durable and final."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.wm_key, self.instance_id, closed_until_s)
        pipe.hdel(self.idle_key, self.instance_id)
        pipe.zadd(self.alive_key, {self.instance_id: int(time.time() * 1000) + self.lease_ms})
        await pipe.execute()

    async def publish_idle(self, durable_offsets: dict[str, int]) -> None:
        """This instance has no data: it holds nobody back as long as its partitions hold nothing
        past ``durable_offsets``."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.wm_key, self.instance_id, NO_CONSTRAINT_S)
        pipe.hset(self.idle_key, self.instance_id, json.dumps(durable_offsets))
        pipe.zadd(self.alive_key, {self.instance_id: int(time.time() * 1000) + self.lease_ms})
        await pipe.execute()

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
        await self.redis.set(self.evaluated_key, boundary_s)

    async def closed_until_s(self) -> int | None:
        return (await self.view()).closed_until_s

    async def view(self) -> ClusterView:
        """The live instances' published watermarks and idle claims, read in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self.alive_key, "-inf", int(time.time() * 1000))
        pipe.zrange(self.alive_key, 0, -1)
        pipe.hgetall(self.wm_key)
        pipe.hgetall(self.idle_key)
        _, alive_raw, wm_raw, idle_raw = await pipe.execute()
        alive = [str(m) for m in alive_raw]
        marks = {str(k): int(v) for k, v in wm_raw.items()}
        claims = tuple(json.loads(v) for k, v in idle_raw.items() if str(k) in alive)
        if not alive or any(i not in marks for i in alive):
            return ClusterView(None, claims)
        constrained = [marks[i] for i in alive if marks[i] < NO_CONSTRAINT_S]
        return ClusterView(min(constrained) if constrained else None, claims)

    async def lead(self) -> bool:
        """Take or keep the detection lease; True while this instance is the leader."""
        got = await self.redis.eval(_LEAD, 1, self.leader_key, self.instance_id, self.lease_ms)
        return bool(got)
