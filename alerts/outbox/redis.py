"""Redis outbox: one payload hash, one due-time sorted set per sink, the order index, all under one hash tag."""

from __future__ import annotations

import json
from collections.abc import Sequence

from alerts.model import Notification
from alerts.outbox import scripts
from alerts.outbox.base import (
    DeadLetter,
    OutboxEntry,
    OutboxFullError,
    index_members,
    left_out,
    log,
    report_skipped,
    without_outdated,
)
from alerts.redis_client import RedisBacked
from monitor.fatal import StartupError
from monitor.retry import retrying

OUTBOX_SCHEMA = 2
"""The outbox layout this version writes: 1 (no marker) before the order index, 2 with it. Raise it with any change
an older version would misread, so that version refuses to start instead of mis-delivering."""
REPAIR_CHUNK = 500
"""Ids or index members checked per ``scripts.REPAIR`` script at start: each script stays short."""


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
        self.read_only = False
        """For a listing (``monitor alerts dead-letters|sinks``): start without the schema, sink-name and index
        writes, so an operator can list what is stuck while Redis refuses writes (NOREPLICAS, full, MISCONF), in
        the incident where that matters (found by review)."""

    def _key(self, *parts: str) -> str:
        return ":".join((self._tag, "outbox", *parts))

    async def _start(self) -> None:
        await super()._start()
        self._enqueue = self.redis.register_script(scripts.ENQUEUE)
        self._claim = self.redis.register_script(scripts.CLAIM)
        self._index = self.redis.register_script(scripts.INDEX)
        self._done_script = self.redis.register_script(scripts.DONE)
        self._failed = self.redis.register_script(scripts.FAILED)
        self._abandon = self.redis.register_script(scripts.ABANDON)
        self._redrive = self.redis.register_script(scripts.REDRIVE)
        self._oldest = self.redis.register_script(scripts.OLDEST)
        self._adopt = self.redis.register_script(scripts.ADOPT)
        self._schema = self.redis.register_script(scripts.SCHEMA)
        self._repair = self.redis.register_script(scripts.REPAIR)
        if self.read_only:
            await retrying(self.component, self._check_schema_read_only, retry_if=self.start_retry_if)
            return
        await retrying(self.component, self._check_schema, retry_if=self.start_retry_if)  # before any other write
        await retrying(self.component, self._report_orphans, retry_if=self.start_retry_if)  # SADD: a write
        await retrying(self.component, self.backfill_index, retry_if=self.start_retry_if)
        await retrying(self.component, self.repair_index, retry_if=self.start_retry_if)

    async def _check_schema(self) -> None:
        """Record ``OUTBOX_SCHEMA``; refuse an outbox a newer version wrote (a rollback past a schema change), which
        this one would misread: queued notices sent out of order or never."""
        key = self._key("schema")
        self._refuse_newer(int(await self._schema(keys=[key], args=[OUTBOX_SCHEMA])), "writes",
                           f"run the newer one, or drain the outbox with it (its `monitor alerts sinks` shows what "
                           f"is queued) and then DEL {key} to roll back")

    async def _check_schema_read_only(self) -> None:
        """``_check_schema`` for a listing, which writes nothing (see ``read_only``)."""
        self._refuse_newer(int(await self.redis.get(self._key("schema")) or 0), "reads", "list them with the newer one")

    def _refuse_newer(self, found: int, verb: str, fix: str) -> None:
        if found > OUTBOX_SCHEMA:
            raise StartupError(
                f"Redis keys {self._tag}:outbox:* were written by a newer finsent (outbox schema {found}, this one "
                f"{verb} {OUTBOX_SCHEMA}): {fix}")

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
        """The members hash, then each sink's queue and order index (enqueue and ``scripts.INDEX`` write them all)."""
        keys = [self._key("members")]
        for sink in self.sink_names:
            keys += [self._key("queue", sink), self._key("order", sink)]
        return keys

    def _sink_keys(self, sink: str) -> list[str]:
        """The keys every script that takes an entry out of ``sink``'s queue needs (``finish`` in scripts.ORDER_LIB)."""
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
        """One ``scripts.CLAIM``: the entries to send, and the due entries that have no order index yet."""
        keys = [self._key("queue", sink), self._key("payloads"), self._key("attempts", sink), self._key("remaining"),
                self._key("members"), self._key("order", sink), self._key("held", sink), self._key("latest", sink)]
        flat = await self._claim(keys=keys, args=[now_s, limit, now_s + lease_s]) if limit > 0 else []
        entries: list[OutboxEntry] = []
        unindexed: list[Notification] = []
        held: list[tuple[str, str]] = []
        superseded: list[str] = []
        trimmed: list[tuple[str, list[str]]] = []
        rows = zip(flat[0::5], flat[1::5], flat[2::5], flat[3::5], flat[4::5], strict=True)
        for kind, nid, payload, tries, outdated in rows:
            if kind == "held":
                held.append((str(nid), str(payload)))
            elif kind == "superseded":
                superseded.append(str(nid))
            elif (notification := await self._readable(sink, str(nid), payload, now_s)) is not None:
                if kind == "unindexed":
                    unindexed.append(notification)
                    continue
                sent = without_outdated(notification, _order_keys_of(outdated))
                entries.append(OutboxEntry(sent, int(tries or 0)))
                if sent is not notification:
                    trimmed.append((str(nid), left_out(sent, notification)))
        report_skipped(sink, held, superseded, now_s + lease_s, trimmed)
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


def _order_keys_of(outdated: str | None) -> set[tuple[str, str]]:
    """``scripts.CLAIM``'s newline-separated ``tag:order`` list as ``order_keys`` pairs."""
    return {(tag, order) for tag, _, order in (m.partition(":") for m in (outdated or "").split("\n") if m)}
