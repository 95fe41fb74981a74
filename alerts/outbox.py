"""Durable alert outbox: notifications wait here until every sink has them.

Enqueue is idempotent per notification id (a hash of the (dedup key, state, sequence) of its
alerts), so re-running an evaluation after a crash enqueues nothing twice. Each sink has its own
queue of due entries; ``mark_delivered`` records the id as delivered for that sink, so a sink gets a
notification at most once from the outbox (and at least once while it keeps coming back: the HTTP
request whose 200 got lost is the only duplicate, and it carries the id for the receiver).

Deliverers ``claim`` due entries: one atomic step returns them and moves their due time to the end
of a lease, so a second deliverer on the same outbox (a leader handover, an old leader still in its
batch) does not get them while the first is sending. No owner is recorded: a claimer that dies just
lets the lease run out and the entries are due again (at-least-once survives the crash), and
``mark_failed`` ends a lease early by setting the retry time.

Bounded: at most ``max_entries`` undelivered notifications (enqueue raises ``OutboxFullError``
beyond, which the engine logs), and the newest ``ids_kept`` enqueued/delivered ids per set.
Memory and Redis implementations share tests/integration/alerts/test_outbox_contract.py.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from alerts.model import Notification
from alerts.redis_client import RedisBacked
from monitor.lifecycle import Service
from monitor.types import Lifecycle


class OutboxFullError(Exception):
    """The outbox holds ``max_entries`` undelivered notifications."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    notification: Notification
    attempts: int


class Outbox(Lifecycle, Protocol):
    sink_names: tuple[str, ...]

    async def enqueue(self, notification: Notification, now_s: float) -> bool:
        """Queue for every sink; False if this id was already enqueued. Durable on return."""
        ...

    async def claim(self, sink: str, now_s: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        """Up to ``limit`` due entries of ``sink``, oldest first, made due again at ``now_s + lease_s``.

        Atomic: concurrent claimers never get the same entry until its lease has expired.
        """
        ...

    async def mark_delivered(self, sink: str, notification_id: str, now_s: float) -> None: ...

    async def mark_failed(self, sink: str, notification_id: str, retry_at_s: float) -> None:
        """Count a failed attempt and schedule the next one."""
        ...

    async def abandon(self, sink: str, notification_id: str) -> None:
        """Give up on one sink (attempts exhausted); the notification stays for the others."""
        ...

    async def is_delivered(self, sink: str, notification_id: str) -> bool: ...

    async def pending(self, sink: str) -> int:
        """Undelivered entries of ``sink`` (due or waiting for a retry)."""
        ...

    async def next_due_s(self, sink: str) -> float | None:
        """When the earliest entry of ``sink`` becomes due, or None when it has none."""
        ...

    async def oldest_enqueued_s(self, sink: str) -> float | None:
        """When the oldest undelivered entry of ``sink`` was enqueued (its age is the alert delay)."""
        ...


def _bounded_add(ids: OrderedDict[str, float], key: str, at: float, keep: int) -> None:
    ids[key] = at
    while len(ids) > keep:
        ids.popitem(last=False)


class MemoryOutbox(Service):
    """In-process outbox; durable only as long as the process (embedded default, tests)."""

    def __init__(self, sink_names: Sequence[str], max_entries: int = 10_000, ids_kept: int = 50_000) -> None:
        self.sink_names = tuple(sink_names)
        self.max_entries = max_entries
        self.ids_kept = ids_kept
        self._payloads: dict[str, Notification] = {}
        self._remaining: dict[str, int] = {}
        self._queues: dict[str, dict[str, tuple[float, int]]] = {s: {} for s in self.sink_names}
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._delivered: dict[str, OrderedDict[str, float]] = {s: OrderedDict() for s in self.sink_names}

    async def enqueue(self, notification: Notification, now_s: float) -> bool:
        nid = notification.id
        if nid in self._seen:
            return False
        if len(self._payloads) >= self.max_entries:
            raise OutboxFullError(f"{len(self._payloads)} undelivered notifications")
        _bounded_add(self._seen, nid, now_s, self.ids_kept)
        if not self.sink_names:
            return True
        self._payloads[nid] = notification
        self._remaining[nid] = len(self.sink_names)
        for sink in self.sink_names:
            self._queues[sink][nid] = (now_s, 0)
        return True

    async def claim(self, sink: str, now_s: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        queue = self._queues[sink]
        ready = sorted((at, nid, n) for nid, (at, n) in queue.items() if at <= now_s)[:limit]
        for _, nid, attempts in ready:
            queue[nid] = (now_s + lease_s, attempts)
        return [OutboxEntry(self._payloads[nid], attempts) for _, nid, attempts in ready]

    def _done(self, sink: str, nid: str) -> bool:
        if self._queues[sink].pop(nid, None) is None:
            return False
        self._remaining[nid] -= 1
        if self._remaining[nid] <= 0:
            del self._remaining[nid]
            del self._payloads[nid]
        return True

    async def mark_delivered(self, sink: str, notification_id: str, now_s: float) -> None:
        if self._done(sink, notification_id):
            _bounded_add(self._delivered[sink], notification_id, now_s, self.ids_kept)

    async def mark_failed(self, sink: str, notification_id: str, retry_at_s: float) -> None:
        queue = self._queues[sink]
        if notification_id in queue:
            queue[notification_id] = (retry_at_s, queue[notification_id][1] + 1)

    async def abandon(self, sink: str, notification_id: str) -> None:
        self._done(sink, notification_id)

    async def is_delivered(self, sink: str, notification_id: str) -> bool:
        return notification_id in self._delivered[sink]

    async def pending(self, sink: str) -> int:
        return len(self._queues[sink])

    async def next_due_s(self, sink: str) -> float | None:
        return min((at for at, _ in self._queues[sink].values()), default=None)

    async def oldest_enqueued_s(self, sink: str) -> float | None:
        return min((self._seen[nid] for nid in self._queues[sink] if nid in self._seen), default=None)


_ENQUEUE = """
-- KEYS: seen, payloads, remaining, queue:<sink>... ; ARGV: id, json, now, max_entries, ids_kept
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
if #KEYS > 3 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[3], ARGV[1], #KEYS - 3)
  for i = 4, #KEYS do redis.call('ZADD', KEYS[i], ARGV[3], ARGV[1]) end
end
return 1
"""

_CLAIM = """
-- KEYS: queue, payloads, attempts ; ARGV: now, limit, lease_end -> flat [id, payload, attempts]...
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
  out[#out + 1] = redis.call('HGET', KEYS[3], id)
end
return out
"""

_DONE = """
-- KEYS: queue, attempts, payloads, remaining, delivered ; ARGV: id, now, ids_kept, record(1/0)
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HINCRBY', KEYS[4], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
  local extra = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[3])
  if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[5], 0, extra - 1) end
end
return 1
"""

_OLDEST = """
-- KEYS: queue, seen ; ARGV: -> the smallest enqueue time (seen score) among the queued ids, or false
local oldest = false
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local at = redis.call('ZSCORE', KEYS[2], id)
  if at and (not oldest or tonumber(at) < oldest) then oldest = tonumber(at) end
end
if oldest then return tostring(oldest) end
return false
"""

_FAILED = """
-- KEYS: queue, attempts ; ARGV: id, retry_at
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""


class RedisOutbox(RedisBacked):
    """Redis outbox: one payload hash, one due-time sorted set per sink, all under one hash tag."""

    def __init__(
        self, url: str, key_prefix: str, sink_names: Sequence[str], max_entries: int = 10_000,
        ids_kept: int = 50_000,
    ) -> None:
        self.url = url
        self.sink_names = tuple(sink_names)
        self.max_entries = max_entries
        self.ids_kept = ids_kept
        self._tag = "{" + key_prefix + "}"

    def _key(self, *parts: str) -> str:
        return ":".join((self._tag, "outbox", *parts))

    async def _start(self) -> None:
        await super()._start()
        self._enqueue = self.redis.register_script(_ENQUEUE)
        self._claim = self.redis.register_script(_CLAIM)
        self._done_script = self.redis.register_script(_DONE)
        self._failed = self.redis.register_script(_FAILED)
        self._oldest = self.redis.register_script(_OLDEST)

    async def enqueue(self, notification: Notification, now_s: float) -> bool:
        keys = [self._key("seen"), self._key("payloads"), self._key("remaining")]
        keys += [self._key("queue", s) for s in self.sink_names]
        args: list[str | float] = [
            notification.id, notification.to_json().decode(), now_s, self.max_entries, self.ids_kept
        ]
        result = int(await self._enqueue(keys=keys, args=args))
        if result < 0:
            raise OutboxFullError(f"outbox holds {self.max_entries} undelivered notifications")
        return result == 1

    async def claim(self, sink: str, now_s: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        keys = [self._key("queue", sink), self._key("payloads"), self._key("attempts", sink)]
        flat = await self._claim(keys=keys, args=[now_s, limit, now_s + lease_s])
        entries = []
        for nid, payload, tries in zip(flat[0::3], flat[1::3], flat[2::3], strict=True):
            if payload is None:  # orphaned id (payload lost): drop it rather than spin on it
                await self.abandon(sink, str(nid))
                continue
            entries.append(OutboxEntry(Notification.from_json(payload), int(tries or 0)))
        return entries

    async def _finish(self, sink: str, nid: str, now_s: float, record: bool) -> None:
        keys = [self._key("queue", sink), self._key("attempts", sink), self._key("payloads"),
                self._key("remaining"), self._key("delivered", sink)]
        await self._done_script(keys=keys, args=[nid, now_s, self.ids_kept, "1" if record else "0"])

    async def mark_delivered(self, sink: str, notification_id: str, now_s: float) -> None:
        await self._finish(sink, notification_id, now_s, record=True)

    async def abandon(self, sink: str, notification_id: str) -> None:
        await self._finish(sink, notification_id, 0.0, record=False)

    async def mark_failed(self, sink: str, notification_id: str, retry_at_s: float) -> None:
        keys = [self._key("queue", sink), self._key("attempts", sink)]
        await self._failed(keys=keys, args=[notification_id, retry_at_s])

    async def is_delivered(self, sink: str, notification_id: str) -> bool:
        return await self.redis.zscore(self._key("delivered", sink), notification_id) is not None

    async def pending(self, sink: str) -> int:
        return int(await self.redis.zcard(self._key("queue", sink)))

    async def next_due_s(self, sink: str) -> float | None:
        first = await self.redis.zrange(self._key("queue", sink), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def oldest_enqueued_s(self, sink: str) -> float | None:
        """One script over the sink's queue (at most ``max_entries`` ids)."""
        found = await self._oldest(keys=[self._key("queue", sink), self._key("seen")], args=[])
        return None if found is None else float(found)
