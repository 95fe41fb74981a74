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

Each alert's notices reach a sink in the order they were made. Per sink, an index holds one member per
queued (alert, notice): ``<alert tag>:<episode start>.<sequence>:<id>``, so the alert's oldest queued notice
is the first member of its lexical range. ``claim`` hands out an entry only when it is the oldest queued
notice of each of its alerts; otherwise the entry is *held* (leased like a claim, no attempt counted) and
made due again the moment the entry before it leaves the queue. The queue itself is the truth, so this
holds whatever the older entry is doing (waiting for a retry, claimed and being sent, deferred, left
behind by a deliverer that died), across restarts and leader handovers, and after ``redrive`` or
``adopt`` made many entries due at once. The newest notice delivered per alert is kept too (bounded by
``ids_kept``): a notice older than what a sink already showed for each of its alerts (a FIRING redriven
after its RESOLVED went out) is *superseded* and dropped from that sink's queue, not sent.

Past the retry bound a notification is not dropped: ``abandon`` moves it (payload, attempts, when)
to that sink's *dead-letter outbox*, listed by ``dead_letters`` and put back in the sink's queue by
``redrive`` (``monitor alerts dead-letters`` / ``monitor alerts redrive``). The dead-letter outbox
keeps the newest ``max_entries`` per sink; evicting one is logged as an error.

Rollbacks. Versions before the order index kept an alert's notices in order only behind the ids in a sink's
``attempts`` hash (its waiting retries), so every entry this version leases, holds, redrives or adopts gets an
``attempts`` field (0: no attempt yet, read as none everywhere): to those versions held entries are waiting
retries, and the order holds across a rollback. Redis records the outbox schema this version writes
(``OUTBOX_SCHEMA`` in ``outbox:schema``); a version that finds a higher one refuses to start (``StartupError``)
rather than misread it. At start the order index is made to match the queues again (``repair_index``): a
version before it acks and re-queues entries without touching ``members``, ``order`` or ``held``.

Bounded: at most ``max_entries`` undelivered notifications (enqueue raises ``OutboxFullError``
beyond, which the engine logs), and the newest ``ids_kept`` enqueued/delivered ids per set.
Memory and Redis implementations share tests/integration/alerts/test_outbox_contract.py.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from alerts.model import AlertItem, Notification
from alerts.redis_client import RedisBacked
from monitor.fatal import StartupError
from monitor.lifecycle import Service
from monitor.retry import retrying
from monitor.types import Lifecycle

OUTBOX_SCHEMA = 2
"""The outbox layout this version writes: 1 (no marker) before the order index, 2 with it. Raise it with any change
an older version would misread, so that version refuses to start instead of mis-delivering."""
REPAIR_CHUNK = 500
"""Ids or index members checked per ``_REPAIR`` script at start: each script stays short."""


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

        Atomic: concurrent claimers never get the same entry until its lease has expired. Of the due
        entries looked at, one behind an older queued notice of one of its alerts is held (leased, not
        returned) and one superseded by what the sink already got is dropped (module doc).
        """
        ...

    async def mark_delivered(self, sink: str, notification_id: str, now_s: float) -> None: ...

    async def mark_failed(self, sink: str, notification_id: str, retry_at_s: float) -> None:
        """Count a failed attempt and schedule the next one."""
        ...

    async def abandon(self, sink: str, notification_id: str, now_s: float = 0.0, attempts: int | None = None) -> None:
        """Attempts exhausted for one sink: move the entry to that sink's dead-letter outbox (the
        notification stays queued for the other sinks). ``attempts``: how many were made, the last one
        included (default: the failures recorded)."""
        ...

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        """Dead-lettered entries of ``sink`` (every sink when None), oldest first."""
        ...

    async def redrive(self, now_s: float, sink: str | None = None, notification_id: str | None = None) -> int:
        """Queue dead letters again (due at ``now_s``, attempts reset); returns how many."""
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


def _item_order(item: AlertItem) -> tuple[str, str]:
    """(alert tag, position of this notice in its alert's history), both fixed-width, so they sort as text."""
    tag = hashlib.blake2b(item.dedup_key.encode(), digest_size=8).hexdigest()
    return tag, f"{max(0, item.started_at_s):013d}.{max(0, item.sequence):09d}"


def order_keys(notification: Notification) -> list[tuple[str, str]]:
    """One ``(alert tag, order)`` per alert the notification carries."""
    return [_item_order(item) for item in notification.alerts]


def index_members(notification: Notification) -> str:
    """The order index's members of ``notification`` (``tag:order:id``), newline-separated, as the scripts read them."""
    return "\n".join(f"{tag}:{order}:{notification.id}" for tag, order in order_keys(notification))


def _report_skipped(sink: str, held: Sequence[tuple[str, str]], superseded: Sequence[str],
                    due_again_at_s: float) -> None:
    for nid, behind in held:
        log.info("alert_delivery_held", sink=sink, notification_id=nid, behind=behind, due_again_at_s=due_again_at_s)
    for nid in superseded:
        log.warning("alert_notification_superseded", sink=sink, notification_id=nid,
                    why="this sink already got a later notice of each of its alerts: not sent")


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
        self._index: dict[str, dict[str, dict[str, str]]] = {s: {} for s in self.sink_names}
        """Per sink, per alert tag, the queued notices of that alert: id -> order (module doc)."""
        self._held: dict[str, set[str]] = {s: set() for s in self.sink_names}
        self._latest: dict[str, OrderedDict[str, str]] = {s: OrderedDict() for s in self.sink_names}
        """Per sink, per alert tag, the order of the newest notice delivered (the ``ids_kept`` newest alerts)."""

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
            self._link(sink, notification)
        return True

    def _link(self, sink: str, notification: Notification) -> None:
        for tag, order in order_keys(notification):
            self._index[sink].setdefault(tag, {})[notification.id] = order

    def _first(self, sink: str, tag: str) -> str | None:
        notices = self._index[sink].get(tag)
        return min(notices, key=lambda nid: (notices[nid], nid)) if notices else None

    def _blocker(self, sink: str, notification: Notification) -> str | None:
        for tag, _ in order_keys(notification):
            first = self._first(sink, tag)
            if first is not None and first != notification.id:
                return first
        return None

    def _superseded(self, sink: str, notification: Notification) -> bool:
        latest = self._latest[sink]
        keys = order_keys(notification)
        return bool(keys) and all(tag in latest and order <= latest[tag] for tag, order in keys)

    def _unlink(self, sink: str, notification: Notification, now_s: float) -> None:
        """Out of the order index; the next notice of each of its alerts, if held, is due at once."""
        held = self._held[sink]
        held.discard(notification.id)
        for tag, _ in order_keys(notification):
            notices = self._index[sink].get(tag, {})
            notices.pop(notification.id, None)
            if not notices:
                self._index[sink].pop(tag, None)
                continue
            following = self._first(sink, tag)
            if following in held:
                held.discard(following)
                self._queues[sink][following] = (now_s, self._queues[sink][following][1])

    def _note_delivered(self, sink: str, notification: Notification) -> None:
        latest = self._latest[sink]
        for tag, order in order_keys(notification):
            if order > latest.get(tag, ""):
                latest[tag] = order
            latest.move_to_end(tag)
        while len(latest) > self.ids_kept:
            latest.popitem(last=False)

    async def claim(self, sink: str, now_s: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        queue = self._queues[sink]
        ready = sorted((at, nid, n) for nid, (at, n) in queue.items() if at <= now_s)[:limit]
        entries: list[OutboxEntry] = []
        held: list[tuple[str, str]] = []
        superseded: list[str] = []
        for _, nid, attempts in ready:
            notification = self._payloads[nid]
            behind = self._blocker(sink, notification)
            if behind is None and self._superseded(sink, notification):
                self._done(sink, nid, now_s)
                superseded.append(nid)
                continue
            queue[nid] = (now_s + lease_s, attempts)
            if behind is not None:
                self._held[sink].add(nid)
                held.append((nid, behind))
            else:
                self._held[sink].discard(nid)
                entries.append(OutboxEntry(notification, attempts))
        _report_skipped(sink, held, superseded, now_s + lease_s)
        return entries

    def _done(self, sink: str, nid: str, now_s: float) -> bool:
        if self._queues[sink].pop(nid, None) is None:
            return False
        self._unlink(sink, self._payloads[nid], now_s)
        self._remaining[nid] -= 1
        if self._remaining[nid] <= 0:
            del self._remaining[nid]
            del self._payloads[nid]
        return True

    async def mark_delivered(self, sink: str, notification_id: str, now_s: float) -> None:
        notification = self._payloads.get(notification_id)
        if notification is not None and self._done(sink, notification_id, now_s):
            _bounded_add(self._delivered[sink], notification_id, now_s, self.ids_kept)
            self._note_delivered(sink, notification)

    async def mark_failed(self, sink: str, notification_id: str, retry_at_s: float) -> None:
        queue = self._queues[sink]
        if notification_id in queue:
            queue[notification_id] = (retry_at_s, queue[notification_id][1] + 1)

    async def abandon(self, sink: str, notification_id: str, now_s: float = 0.0, attempts: int | None = None) -> None:
        queued = self._queues[sink].get(notification_id)
        payload = self._payloads.get(notification_id)
        if queued is None or payload is None or not self._done(sink, notification_id, now_s):
            return
        dead = self._dead[sink]
        dead[notification_id] = DeadLetter(sink, payload, queued[1] if attempts is None else attempts, now_s)
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
                self._link(name, letter.notification)
                moved += 1
        return moved

    async def is_delivered(self, sink: str, notification_id: str) -> bool:
        return notification_id in self._delivered[sink]

    async def pending(self, sink: str) -> int:
        return len(self._queues[sink])

    async def next_due_s(self, sink: str) -> float | None:
        return min((at for at, _ in self._queues[sink].values()), default=None)

    async def oldest_enqueued_s(self, sink: str) -> float | None:
        return min((self._seen[nid] for nid in self._queues[sink] if nid in self._seen), default=None)


_ORDER_LIB = """
-- the order index (module doc): members 'tag:order:id', one per (alert, queued notice), per sink
local function id_of(member) return string.match(member, ':([^:]+)$') end
-- the oldest queued notice of an alert; a member whose id left the queue without leaving the index (an
-- outbox of the previous version acked it during a rolling deploy or a rollback) is dropped, not obeyed
local function first_of(order_key, queue, tag)
  while true do
    local first = redis.call('ZRANGEBYLEX', order_key, '[' .. tag .. ':', '[' .. tag .. ';', 'LIMIT', 0, 1)[1]
    if not first or redis.call('ZSCORE', queue, id_of(first)) then return first end
    redis.call('ZREM', order_key, first)
  end
end
-- out of the index; the next notice of each of its alerts, if held, is due at once
local function unlink(queue, order_key, held, members, id, now)
  redis.call('SREM', held, id)
  if not members then return end
  for m in string.gmatch(members, '[^\\n]+') do
    redis.call('ZREM', order_key, m)
    local following = first_of(order_key, queue, string.match(m, '^([^:]+):'))
    if following and redis.call('SREM', held, id_of(following)) == 1 then
      redis.call('ZADD', queue, 'XX', now, id_of(following))
    end
  end
end
-- the newest notice delivered per alert, for the ids_kept most recently delivered alerts
local function note_delivered(latest, latest_index, members, now, keep)
  for m in string.gmatch(members, '[^\\n]+') do
    local tag, order = string.match(m, '^([^:]+):([^:]+):')
    local known = redis.call('HGET', latest, tag)
    if not known or order > known then redis.call('HSET', latest, tag, order) end
    redis.call('ZADD', latest_index, now, tag)
  end
  local extra = redis.call('ZCARD', latest_index) - keep
  if extra > 0 then
    for _, tag in ipairs(redis.call('ZRANGE', latest_index, 0, extra - 1)) do redis.call('HDEL', latest, tag) end
    redis.call('ZREMRANGEBYRANK', latest_index, 0, extra - 1)
  end
end
-- one sink is done with id: out of its queue and index; the payload goes once every sink is done.
-- Returns whether id was queued, and its index members (false when it has none)
local function finish(queue, attempts, payloads, remaining, members_key, order_key, held, id, now)
  if redis.call('ZREM', queue, id) == 0 then return false, false end
  redis.call('HDEL', attempts, id)
  local members = redis.call('HGET', members_key, id)
  unlink(queue, order_key, held, members, id, now)
  if redis.call('HINCRBY', remaining, id, -1) <= 0 then
    redis.call('HDEL', remaining, id)
    redis.call('HDEL', payloads, id)
    redis.call('HDEL', members_key, id)
  end
  return true, members
end
"""

_ENQUEUE = """
-- KEYS: seen, payloads, remaining, members, then per sink: queue, order ; ARGV: id, json, now, max_entries,
--       ids_kept, index members
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
if #KEYS > 4 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[3], ARGV[1], (#KEYS - 4) / 2)
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[6])  -- '' too: indexed by this version, alerts or not
  for i = 5, #KEYS, 2 do
    redis.call('ZADD', KEYS[i], ARGV[3], ARGV[1])
    for m in string.gmatch(ARGV[6], '[^\\n]+') do redis.call('ZADD', KEYS[i + 1], 0, m) end
  end
end
return 1
"""

_CLAIM = _ORDER_LIB + """
-- KEYS: queue, payloads, attempts, remaining, members, order, held, latest ; ARGV: now, limit, lease_end
-- -> flat [kind, id, payload or blocker, attempts]...; kind: send | held | superseded | unindexed
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local function emit(kind, id, third, fourth)
  out[#out + 1] = kind; out[#out + 1] = id; out[#out + 1] = third; out[#out + 1] = fourth
end
for _, id in ipairs(ids) do
  local members = redis.call('HGET', KEYS[5], id)
  if not members then
    -- queued by the previous version (no index members): Python indexes it and claims again; not leased
    emit('unindexed', id, redis.call('HGET', KEYS[2], id), false)
  else
    local blocker, stale = false, members ~= ''  -- a notice without alerts is never superseded (as in memory)
    for m in string.gmatch(members, '[^\\n]+') do
      local tag, order = string.match(m, '^([^:]+):([^:]+):')
      local first = first_of(KEYS[6], KEYS[1], tag)
      if first and first ~= m then blocker = id_of(first) break end
      local known = redis.call('HGET', KEYS[8], tag)
      if not known or order > known then stale = false end
    end
    if blocker then
      redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
      redis.call('SADD', KEYS[7], id)
      redis.call('HSETNX', KEYS[3], id, 0)  -- a waiting retry to versions before the index (module doc)
      emit('held', id, blocker, false)
    elseif stale then
      finish(KEYS[1], KEYS[3], KEYS[2], KEYS[4], KEYS[5], KEYS[6], KEYS[7], id, ARGV[1])
      emit('superseded', id, false, false)
    else
      redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
      redis.call('SREM', KEYS[7], id)
      redis.call('HSETNX', KEYS[3], id, 0)  -- leased: due after later notices, so recorded as for held ones
      emit('send', id, redis.call('HGET', KEYS[2], id), redis.call('HGET', KEYS[3], id))
    end
  end
end
return out
"""

_INDEX = """
-- KEYS: members, then per sink: queue, order ; ARGV: id, index members -> how many sinks it was indexed for
-- (an entry the previous version queued: it joins the order index of every sink that still holds it)
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
local indexed = 0
for i = 2, #KEYS, 2 do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    for m in string.gmatch(ARGV[2], '[^\\n]+') do redis.call('ZADD', KEYS[i + 1], 0, m) end
    indexed = indexed + 1
  end
end
return indexed
"""

_DONE = _ORDER_LIB + """
-- KEYS: queue, attempts, payloads, remaining, members, order, held, delivered, latest, latest index
-- ARGV: id, now, ids_kept
local done, members = finish(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[1], ARGV[2])
if not done then return 0 end
redis.call('ZADD', KEYS[8], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[8]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[8], 0, extra - 1) end
if members then note_delivered(KEYS[9], KEYS[10], members, ARGV[2], tonumber(ARGV[3])) end
return 1
"""

_ABANDON = _ORDER_LIB + """
-- KEYS: queue, attempts, payloads, remaining, members, order, held, dead, dead index
-- ARGV: id, now, max_dead, attempts ('' = the failures recorded) -> evicted ids
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {} end
local payload = redis.call('HGET', KEYS[3], ARGV[1])
local tries = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
if ARGV[4] ~= '' then tries = ARGV[4] end
local _, members = finish(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[1], ARGV[2])
if not payload then return {} end
redis.call('HSET', KEYS[8], ARGV[1], cjson.encode({payload = payload, attempts = tonumber(tries), at = ARGV[2],
                                                    members = members or ''}))
redis.call('ZADD', KEYS[9], ARGV[2], ARGV[1])
local extra = redis.call('ZCARD', KEYS[9]) - tonumber(ARGV[3])
if extra <= 0 then return {} end
local old = redis.call('ZRANGE', KEYS[9], 0, extra - 1)
for _, id in ipairs(old) do redis.call('HDEL', KEYS[8], id) end
redis.call('ZREMRANGEBYRANK', KEYS[9], 0, extra - 1)
return old
"""

_REDRIVE = """
-- KEYS: dead, dead index, queue, payloads, remaining, members, order, attempts ; ARGV: now, id or '' (all)
-- -> how many
local ids = {ARGV[2]}
if ARGV[2] == '' then ids = redis.call('ZRANGE', KEYS[2], 0, -1) end
local moved = 0
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local entry = cjson.decode(raw)
    redis.call('HSETNX', KEYS[4], id, entry.payload)
    if type(entry.members) == 'string' and entry.members ~= '' then
      redis.call('HSETNX', KEYS[6], id, entry.members)
      for m in string.gmatch(entry.members, '[^\\n]+') do redis.call('ZADD', KEYS[7], 0, m) end
    end
    redis.call('HINCRBY', KEYS[5], id, 1)
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    redis.call('HSETNX', KEYS[8], id, 0)  -- due after later notices of its alerts: see _CLAIM
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
--       new dead index, members, old order, old held, new order, old latest, old latest index, new latest,
--       new latest index, new attempts ; ARGV: now -> entries now queued (or dead-lettered) for the new sink
local moved = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('ZSCORE', KEYS[3], id) then
    if redis.call('HINCRBY', KEYS[4], id, -1) <= 0 then
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[10], id)
    end
  else
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    redis.call('HSETNX', KEYS[18], id, 0)  -- all due at once: see _CLAIM
    local members = redis.call('HGET', KEYS[10], id)
    if members then
      for m in string.gmatch(members, '[^\\n]+') do redis.call('ZADD', KEYS[13], 0, m) end
    end
    moved = moved + 1
  end
end
local dead = redis.call('HGETALL', KEYS[6])
for i = 1, #dead, 2 do
  redis.call('HSET', KEYS[8], dead[i], dead[i + 1])
  redis.call('ZADD', KEYS[9], redis.call('ZSCORE', KEYS[7], dead[i]) or ARGV[1], dead[i])
  moved = moved + 1
end
local latest = redis.call('HGETALL', KEYS[14])
for i = 1, #latest, 2 do
  local known = redis.call('HGET', KEYS[16], latest[i])
  if not known or latest[i + 1] > known then redis.call('HSET', KEYS[16], latest[i], latest[i + 1]) end
  redis.call('ZADD', KEYS[17], redis.call('ZSCORE', KEYS[15], latest[i]) or ARGV[1], latest[i])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[6], KEYS[7], KEYS[11], KEYS[12], KEYS[14], KEYS[15])
return moved
"""

_SCHEMA = """
-- KEYS: schema marker ; ARGV: this version's schema -> the schema found (0: none). Raised to ours, never lowered,
-- and written only when lower: a restart on a full Redis reads it without a write Redis would refuse
local found = tonumber(redis.call('GET', KEYS[1]) or '0')
if found < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return found
"""

_REPAIR = """
-- KEYS: members, payloads, queue, order, held ; ARGV: what, items... -> how many were dropped or put back
-- what: 'members' (ids: dropped without a payload), 'held' (ids: dropped when not queued), 'order' (index members:
-- dropped when their id is not queued), 'queued' (ids: their members put back in the order index)
local changed = 0
for i = 2, #ARGV do
  local item = ARGV[i]
  if ARGV[1] == 'members' then
    if redis.call('HEXISTS', KEYS[2], item) == 0 then changed = changed + redis.call('HDEL', KEYS[1], item) end
  elseif ARGV[1] == 'held' then
    if not redis.call('ZSCORE', KEYS[3], item) then changed = changed + redis.call('SREM', KEYS[5], item) end
  elseif ARGV[1] == 'order' then
    if not redis.call('ZSCORE', KEYS[3], string.match(item, ':([^:]+)$')) then
      changed = changed + redis.call('ZREM', KEYS[4], item)
    end
  else
    local members = redis.call('ZSCORE', KEYS[3], item) and redis.call('HGET', KEYS[1], item)
    if members then
      for m in string.gmatch(members, '[^\\n]+') do changed = changed + redis.call('ZADD', KEYS[4], 0, m) end
    end
  end
end
return changed
"""


class RedisOutbox(RedisBacked):
    """Redis outbox: one payload hash, one due-time sorted set per sink, all under one hash tag."""

    component = "outbox"

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
        self._index = self.redis.register_script(_INDEX)
        self._done_script = self.redis.register_script(_DONE)
        self._failed = self.redis.register_script(_FAILED)
        self._abandon = self.redis.register_script(_ABANDON)
        self._redrive = self.redis.register_script(_REDRIVE)
        self._oldest = self.redis.register_script(_OLDEST)
        self._adopt = self.redis.register_script(_ADOPT)
        self._schema = self.redis.register_script(_SCHEMA)
        self._repair = self.redis.register_script(_REPAIR)
        await retrying(self.component, self._check_schema, retry_if=self.start_retry_if)  # before any other write
        await retrying(self.component, self._report_orphans, retry_if=self.start_retry_if)  # SADD: a write
        await retrying(self.component, self.backfill_index, retry_if=self.start_retry_if)
        await retrying(self.component, self.repair_index, retry_if=self.start_retry_if)

    async def _check_schema(self) -> None:
        """Record ``OUTBOX_SCHEMA``; refuse an outbox a newer version wrote (a rollback past a schema change), which
        this one would misread: queued notices sent out of order or never."""
        key = self._key("schema")
        found = int(await self._schema(keys=[key], args=[OUTBOX_SCHEMA]))
        if found > OUTBOX_SCHEMA:
            raise StartupError(
                f"Redis keys {self._tag}:outbox:* were written by a newer finsent (outbox schema {found}, this one "
                f"writes {OUTBOX_SCHEMA}): run the newer one, or drain the outbox with it (its `monitor alerts sinks` "
                f"shows what is queued) and then DEL {key} to roll back")

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
                self._key("dead-index", old_sink), self._key("dead", new_sink), self._key("dead-index", new_sink),
                self._key("members"), self._key("order", old_sink), self._key("held", old_sink),
                self._key("order", new_sink), self._key("latest", old_sink), self._key("latest-index", old_sink),
                self._key("latest", new_sink), self._key("latest-index", new_sink), self._key("attempts", new_sink)]
        moved = int(await self._adopt(keys=keys, args=[now_s]))
        await self.redis.srem(self._key("sinks"), old_sink)
        return moved

    async def enqueue(self, notification: Notification, now_s: float) -> bool:
        keys = [self._key("seen"), self._key("payloads"), self._key("remaining"), *self._index_keys()]
        args: list[str | float] = [
            notification.id, notification.to_json().decode(), now_s, self.max_entries, self.ids_kept,
            index_members(notification),
        ]
        result = int(await self._enqueue(keys=keys, args=args))
        if result < 0:
            raise OutboxFullError(f"outbox holds {self.max_entries} undelivered notifications")
        return result == 1

    def _index_keys(self) -> list[str]:
        """The members hash, then each sink's queue and order index (enqueue and ``_INDEX`` write all of them)."""
        keys = [self._key("members")]
        for sink in self.sink_names:
            keys += [self._key("queue", sink), self._key("order", sink)]
        return keys

    def _sink_keys(self, sink: str) -> list[str]:
        """The keys every script that takes an entry out of ``sink``'s queue needs (``finish`` in _ORDER_LIB)."""
        return [self._key("queue", sink), self._key("attempts", sink), self._key("payloads"), self._key("remaining"),
                self._key("members"), self._key("order", sink), self._key("held", sink)]

    async def claim(self, sink: str, now_s: float, limit: int, lease_s: float) -> list[OutboxEntry]:
        entries, unindexed = await self._claim_once(sink, now_s, limit, lease_s)
        if unindexed:  # queued by the previous version (a rolling deploy): index everything, then claim again
            await self.backfill_index()
            more, _ = await self._claim_once(sink, now_s, limit - len(entries), lease_s)
            entries += more
        return entries

    async def _claim_once(self, sink: str, now_s: float, limit: int, lease_s: float
                          ) -> tuple[list[OutboxEntry], list[Notification]]:
        """One ``_CLAIM``: the entries to send, and the due entries that have no order index yet."""
        keys = [self._key("queue", sink), self._key("payloads"), self._key("attempts", sink), self._key("remaining"),
                self._key("members"), self._key("order", sink), self._key("held", sink), self._key("latest", sink)]
        flat = await self._claim(keys=keys, args=[now_s, limit, now_s + lease_s]) if limit > 0 else []
        entries: list[OutboxEntry] = []
        unindexed: list[Notification] = []
        held: list[tuple[str, str]] = []
        superseded: list[str] = []
        for kind, nid, payload, tries in zip(flat[0::4], flat[1::4], flat[2::4], flat[3::4], strict=True):
            if kind == "held":
                held.append((str(nid), str(payload)))
            elif kind == "superseded":
                superseded.append(str(nid))
            elif (notification := await self._readable(sink, str(nid), payload, now_s)) is not None:
                if kind == "unindexed":
                    unindexed.append(notification)
                else:
                    entries.append(OutboxEntry(notification, int(tries or 0)))
        _report_skipped(sink, held, superseded, now_s + lease_s)
        return entries, unindexed

    async def _readable(self, sink: str, nid: str, payload: str | None, now_s: float) -> Notification | None:
        """The claimed entry's notification; one without a payload, or unreadable, is set apart (dead letters)."""
        if payload is None:  # orphaned id (payload lost): drop it rather than spin on it
            await self.abandon(sink, nid)
            return None
        try:
            return Notification.from_json(payload)
        except ValueError as exc:
            # written by another version (a rollback, a schema change): it would fail every claim, oldest
            # first, so this sink would deliver nothing ever again. Set apart; `alerts redrive` after a fix.
            log.error("alert_outbox_entry_unreadable", sink=sink, notification_id=nid, error=str(exc)[:300])
            await self.abandon(sink, nid, now_s)
            return None

    async def backfill_index(self) -> int:
        """Give every queued entry the previous version wrote its order-index members, for each sink that holds
        it (at start, and when a claim meets one): without them it was neither held behind its alert's older
        notices nor held later ones back, so a RESOLVED overtook its FIRING across the upgrade (found by the
        regression review). Returns how many entries were indexed; at most ``max_entries`` payloads are read."""
        ids: set[str] = set()
        for name in self.sink_names:
            ids.update(str(i) for i in await self.redis.zrange(self._key("queue", name), 0, -1))
        ordered = sorted(ids)
        known = await self.redis.hmget(self._key("members"), ordered) if ordered else []
        missing = [nid for nid, members in zip(ordered, known, strict=True) if members is None]
        keys = self._index_keys()
        indexed = 0
        for nid in missing:
            payload = await self.redis.hget(self._key("payloads"), nid)
            try:
                notification = Notification.from_json(payload) if payload is not None else None
            except ValueError:
                notification = None  # unreadable: claim sets it apart
            if notification is not None:
                indexed += bool(await self._index(keys=keys, args=[nid, index_members(notification)]))
        if indexed:
            log.info("alert_outbox_indexed", entries=indexed, why="queued by a version without the order index")
        return indexed

    async def repair_index(self) -> int:
        """Make the order index match the queues (at start): a version before it (a rollback, then this one again)
        acked entries without touching the index, leaving ``members``, ``order`` and ``held`` entries for good, and
        re-queued dead letters that then held no later notice back. Chunks of ``REPAIR_CHUNK``; returns how many
        index entries were dropped or put back."""
        changed = await self._repair_all([self._key("members"), self._key("payloads")], "members",
                                         [str(f) async for f, _ in self.redis.hscan_iter(self._key("members"))])
        for sink in self.sink_names:
            keys = [self._key("members"), self._key("payloads"), self._key("queue", sink), self._key("order", sink),
                    self._key("held", sink)]
            changed += await self._repair_all(keys, "held", [str(i) async for i in self.redis.sscan_iter(keys[4])])
            changed += await self._repair_all(keys, "order",
                                              [str(m) async for m, _ in self.redis.zscan_iter(keys[3])])
            changed += await self._repair_all(keys, "queued", [str(i) for i in await self.redis.zrange(keys[2], 0, -1)])
        if changed:
            log.info("alert_outbox_index_repaired", changed=changed,
                     why="left by a version without the order index (a rollback)")
        return changed

    async def _repair_all(self, keys: list[str], what: str, items: list[str]) -> int:
        changed = 0
        for at in range(0, len(items), REPAIR_CHUNK):
            changed += int(await self._repair(keys=keys, args=[what, *items[at:at + REPAIR_CHUNK]]))
        return changed

    async def mark_delivered(self, sink: str, notification_id: str, now_s: float) -> None:
        keys = [*self._sink_keys(sink), self._key("delivered", sink), self._key("latest", sink),
                self._key("latest-index", sink)]
        await self._done_script(keys=keys, args=[notification_id, now_s, self.ids_kept])

    async def abandon(self, sink: str, notification_id: str, now_s: float = 0.0, attempts: int | None = None) -> None:
        keys = [*self._sink_keys(sink), self._key("dead", sink), self._key("dead-index", sink)]
        evicted = await self._abandon(keys=keys, args=[notification_id, now_s, self.max_entries,
                                                       "" if attempts is None else attempts])
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
                    self._key("payloads"), self._key("remaining"), self._key("members"), self._key("order", name),
                    self._key("attempts", name)]
            moved += int(await self._redrive(keys=keys, args=[now_s, notification_id or ""]))
        return moved

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
