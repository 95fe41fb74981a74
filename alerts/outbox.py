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

Past the retry bound a notification is not dropped: ``abandon`` moves it (payload, attempts, when)
to that sink's *dead-letter outbox*, listed by ``dead_letters`` and put back in the sink's queue by
``redrive`` (``monitor alerts dead-letters`` / ``monitor alerts redrive``). The dead-letter outbox
keeps the newest ``max_entries`` per sink; evicting one is logged as an error.

Bounded: at most ``max_entries`` undelivered notifications (enqueue raises ``OutboxFullError``
beyond, which the engine logs), and the newest ``ids_kept`` enqueued/delivered ids per set.
Memory and Redis implementations share tests/integration/alerts/test_outbox_contract.py.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from alerts.model import Notification
from alerts.redis_client import RedisBacked
from monitor.lifecycle import Service
from monitor.types import Lifecycle


class OutboxFullError(Exception):
    """The outbox holds ``max_entries`` undelivered notifications."""


log = structlog.get_logger("alerts.outbox")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    notification: Notification
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A notification one sink never accepted within the retry bound."""

    sink: str
    notification: Notification
    attempts: int
    dead_at_s: float


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

    async def abandon(self, sink: str, notification_id: str, now_s: float = 0.0) -> None:
        """Attempts exhausted for one sink: move the entry to that sink's dead-letter outbox (the
        notification stays queued for the other sinks)."""
        ...

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        """Dead-lettered entries of ``sink`` (every sink when None), oldest first."""
        ...

    async def redrive(self, now_s: float, sink: str | None = None, notification_id: str | None = None) -> int:
        """Queue dead letters again (due at ``now_s``, attempts reset); returns how many."""
        ...

    async def is_delivered(self, sink: str, notification_id: str) -> bool: ...

    async def waiting_retry(self, sink: str) -> list[Notification]:
        """Entries of ``sink`` that failed at least once and wait for their retry (the notifications
        a later one of the same alert must not overtake: alerts/delivery_order.py)."""
        ...

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
        self._dead: dict[str, OrderedDict[str, DeadLetter]] = {s: OrderedDict() for s in self.sink_names}

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

    async def abandon(self, sink: str, notification_id: str, now_s: float = 0.0) -> None:
        queued = self._queues[sink].get(notification_id)
        payload = self._payloads.get(notification_id)
        if queued is None or payload is None or not self._done(sink, notification_id):
            return
        dead = self._dead[sink]
        dead[notification_id] = DeadLetter(sink, payload, queued[1], now_s)
        while len(dead) > self.max_entries:
            evicted, _ = dead.popitem(last=False)
            log.error("alert_dead_letter_evicted", sink=sink, notification_id=evicted, kept=self.max_entries)

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        sinks = self.sink_names if sink is None else (sink,)
        letters = (d for s in sinks for d in self._dead.get(s, {}).values())
        return sorted(letters, key=lambda d: (d.dead_at_s, d.notification.id))

    async def redrive(self, now_s: float, sink: str | None = None, notification_id: str | None = None) -> int:
        moved = 0
        for name in self.sink_names if sink is None else (sink,):
            dead = self._dead.get(name, OrderedDict())
            for nid in [notification_id] if notification_id is not None else list(dead):
                letter = dead.pop(nid, None) if nid is not None else None
                if letter is None:
                    continue
                if nid not in self._payloads:
                    self._payloads[nid] = letter.notification
                self._remaining[nid] = self._remaining.get(nid, 0) + 1
                self._queues[name][nid] = (now_s, 0)
                moved += 1
        return moved

    async def is_delivered(self, sink: str, notification_id: str) -> bool:
        return notification_id in self._delivered[sink]

    async def waiting_retry(self, sink: str) -> list[Notification]:
        return [self._payloads[nid] for nid, (_, attempts) in self._queues[sink].items()
                if attempts > 0 and nid in self._payloads]

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

_ABANDON = """
-- KEYS: queue, attempts, payloads, remaining, dead, dead index ; ARGV: id, now, max_dead -> evicted ids
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {} end
local payload = redis.call('HGET', KEYS[3], ARGV[1])
local tries = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HINCRBY', KEYS[4], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
if not payload then return {} end
redis.call('HSET', KEYS[5], ARGV[1], cjson.encode({payload = payload, attempts = tonumber(tries), at = ARGV[2]}))
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[3])
if extra <= 0 then return {} end
local old = redis.call('ZRANGE', KEYS[6], 0, extra - 1)
for _, id in ipairs(old) do redis.call('HDEL', KEYS[5], id) end
redis.call('ZREMRANGEBYRANK', KEYS[6], 0, extra - 1)
return old
"""

_REDRIVE = """
-- KEYS: dead, dead index, queue, payloads, remaining ; ARGV: now, id or '' (all) -> how many
local ids = {ARGV[2]}
if ARGV[2] == '' then ids = redis.call('ZRANGE', KEYS[2], 0, -1) end
local moved = 0
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local entry = cjson.decode(raw)
    redis.call('HSETNX', KEYS[4], id, entry.payload)
    redis.call('HINCRBY', KEYS[5], id, 1)
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    moved = moved + 1
  end
end
return moved
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


_ADOPT = """
-- KEYS: old queue, old attempts, new queue, remaining, payloads, old dead, old dead index, new dead,
--       new dead index ; ARGV: now -> entries now queued (or dead-lettered) for the new sink
local moved = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('ZSCORE', KEYS[3], id) then
    if redis.call('HINCRBY', KEYS[4], id, -1) <= 0 then
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
    end
  else
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    moved = moved + 1
  end
end
local dead = redis.call('HGETALL', KEYS[6])
for i = 1, #dead, 2 do
  redis.call('HSET', KEYS[8], dead[i], dead[i + 1])
  redis.call('ZADD', KEYS[9], redis.call('ZSCORE', KEYS[7], dead[i]) or ARGV[1], dead[i])
  moved = moved + 1
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[6], KEYS[7])
return moved
"""


WAITING_READ_CHUNK = 500
"""Payloads per HMGET when the entries waiting for a retry are loaded (a long sink outage: thousands)."""


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
        self._abandon = self.redis.register_script(_ABANDON)
        self._redrive = self.redis.register_script(_REDRIVE)
        self._oldest = self.redis.register_script(_OLDEST)
        self._adopt = self.redis.register_script(_ADOPT)
        await self._report_orphans()

    async def _report_orphans(self) -> None:
        """Entries queued for a sink no longer in ``alerts.sinks`` (its URL changed, e.g. a rotated Slack
        token: the name hashes the URL) had no delivery loop: never sent, never dead-lettered, counted against
        ``outbox_max_entries`` for good. Sink names are registered here, and leftovers are named at start."""
        known = self._key("sinks")
        if self.sink_names:
            await self.redis.sadd(known, *self.sink_names)
        for name in await self._unconfigured():
            pending, dead = await self._held(name)
            if not pending and not dead:
                await self.redis.srem(known, name)
                continue
            log.error("alert_outbox_orphaned", sink=name, pending=pending, dead_letters=dead,
                      why="queued for a sink that is no longer in alerts.sinks (its URL changed?)",
                      fix=f"monitor alerts adopt --from-sink '{name}' --sink NEW_NAME (names: monitor alerts sinks)")

    async def _held(self, sink: str) -> tuple[int, int]:
        """``(queued, dead-lettered)`` entries of ``sink``."""
        return (int(await self.redis.zcard(self._key("queue", sink))),
                int(await self.redis.hlen(self._key("dead", sink))))

    async def _unconfigured(self) -> list[str]:
        registered = {str(name) for name in await self.redis.smembers(self._key("sinks"))}
        return sorted(registered - set(self.sink_names))

    async def orphaned_sinks(self) -> dict[str, int]:
        """Unconfigured sink names that still hold queued or dead-lettered entries, with how many."""
        out = {}
        for name in await self._unconfigured():
            count = sum(await self._held(name))
            if count:
                out[name] = count
        return out

    async def adopt(self, old_sink: str, new_sink: str, now_s: float) -> int:
        """Move what ``old_sink`` (unconfigured) holds to ``new_sink``: queued entries become due now (an id
        the new sink already has counts once), dead letters stay dead letters. Returns how many moved."""
        keys = [self._key("queue", old_sink), self._key("attempts", old_sink), self._key("queue", new_sink),
                self._key("remaining"), self._key("payloads"), self._key("dead", old_sink),
                self._key("dead-index", old_sink), self._key("dead", new_sink), self._key("dead-index", new_sink)]
        moved = int(await self._adopt(keys=keys, args=[now_s]))
        await self.redis.srem(self._key("sinks"), old_sink)
        return moved

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
            try:
                notification = Notification.from_json(payload)
            except ValueError as exc:
                # written by another version (a rollback, a schema change): it would fail every claim, oldest
                # first, so this sink would deliver nothing ever again. Set apart; `alerts redrive` after a fix.
                log.error("alert_outbox_entry_unreadable", sink=sink, notification_id=str(nid),
                          error=str(exc)[:300])
                await self.abandon(sink, str(nid), now_s)
                continue
            entries.append(OutboxEntry(notification, int(tries or 0)))
        return entries

    async def _finish(self, sink: str, nid: str, now_s: float, record: bool) -> None:
        keys = [self._key("queue", sink), self._key("attempts", sink), self._key("payloads"),
                self._key("remaining"), self._key("delivered", sink)]
        await self._done_script(keys=keys, args=[nid, now_s, self.ids_kept, "1" if record else "0"])

    async def mark_delivered(self, sink: str, notification_id: str, now_s: float) -> None:
        await self._finish(sink, notification_id, now_s, record=True)

    async def abandon(self, sink: str, notification_id: str, now_s: float = 0.0) -> None:
        keys = [self._key("queue", sink), self._key("attempts", sink), self._key("payloads"),
                self._key("remaining"), self._key("dead", sink), self._key("dead-index", sink)]
        evicted = await self._abandon(keys=keys, args=[notification_id, now_s, self.max_entries])
        for nid in evicted:
            log.error("alert_dead_letter_evicted", sink=sink, notification_id=str(nid), kept=self.max_entries)

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for name in self.sink_names if sink is None else (sink,):
            for nid, raw in (await self.redis.hgetall(self._key("dead", name))).items():
                entry = json.loads(raw)
                try:
                    notification = Notification.from_json(entry["payload"])
                except ValueError as exc:
                    log.error("alert_dead_letter_unreadable", sink=name, notification_id=str(nid),
                              error=str(exc)[:300])
                    continue
                out.append(DeadLetter(name, notification, int(entry["attempts"]), float(entry["at"])))
        return sorted(out, key=lambda d: (d.dead_at_s, d.notification.id))

    async def redrive(self, now_s: float, sink: str | None = None, notification_id: str | None = None) -> int:
        moved = 0
        for name in self.sink_names if sink is None else (sink,):
            keys = [self._key("dead", name), self._key("dead-index", name), self._key("queue", name),
                    self._key("payloads"), self._key("remaining")]
            moved += int(await self._redrive(keys=keys, args=[now_s, notification_id or ""]))
        return moved

    async def mark_failed(self, sink: str, notification_id: str, retry_at_s: float) -> None:
        keys = [self._key("queue", sink), self._key("attempts", sink)]
        await self._failed(keys=keys, args=[notification_id, retry_at_s])

    async def is_delivered(self, sink: str, notification_id: str) -> bool:
        return await self.redis.zscore(self._key("delivered", sink), notification_id) is not None

    async def waiting_retry(self, sink: str) -> list[Notification]:
        """The ids with a failed attempt, their payloads read in chunks; an unreadable one is left to
        ``claim``, which sets it apart."""
        ids = sorted(str(i) for i in await self.redis.hkeys(self._key("attempts", sink)))
        out: list[Notification] = []
        for at in range(0, len(ids), WAITING_READ_CHUNK):
            chunk = ids[at:at + WAITING_READ_CHUNK]
            for raw in await self.redis.hmget(self._key("payloads"), chunk):
                if raw is None:
                    continue
                try:
                    out.append(Notification.from_json(raw))
                except ValueError:  # pydantic's ValidationError is a ValueError
                    continue
        return out

    async def pending(self, sink: str) -> int:
        return int(await self.redis.zcard(self._key("queue", sink)))

    async def next_due_s(self, sink: str) -> float | None:
        first = await self.redis.zrange(self._key("queue", sink), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def oldest_enqueued_s(self, sink: str) -> float | None:
        """One script over the sink's queue (at most ``max_entries`` ids)."""
        found = await self._oldest(keys=[self._key("queue", sink), self._key("seen")], args=[])
        return None if found is None else float(found)
