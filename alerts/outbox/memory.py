"""In-process outbox (embedded default, tests): the same contract as Redis's, durable only as long as the process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from alerts.model import Notification
from alerts.outbox.base import (
    DeadLetter,
    OutboxEntry,
    OutboxFullError,
    bounded_add,
    left_out,
    log,
    order_keys,
    report_skipped,
    without_outdated,
)
from monitor.lifecycle import Service


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
        bounded_add(self._seen, nid, now_s, self.ids_kept)
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

    def _outdated(self, sink: str, notification: Notification) -> set[tuple[str, str]]:
        """The ``(tag, order)`` of the alerts of ``notification`` the sink already showed a later notice of."""
        latest = self._latest[sink]
        return {(tag, order) for tag, order in order_keys(notification) if tag in latest and order <= latest[tag]}

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
        trimmed: list[tuple[str, list[str]]] = []
        for _, nid, attempts in ready:
            notification = self._payloads[nid]
            behind = self._blocker(sink, notification)
            outdated = self._outdated(sink, notification) if behind is None else set()
            sent = without_outdated(notification, outdated)
            if outdated and not sent.alerts:
                self._done(sink, nid, now_s)
                superseded.append(nid)
                continue
            queue[nid] = (now_s + lease_s, attempts)
            if behind is not None:
                self._held[sink].add(nid)
                held.append((nid, behind))
            else:
                self._held[sink].discard(nid)
                entries.append(OutboxEntry(sent, attempts))
                if sent is not notification:
                    trimmed.append((nid, left_out(sent, notification)))
        report_skipped(sink, held, superseded, now_s + lease_s, trimmed)
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
            bounded_add(self._delivered[sink], notification_id, now_s, self.ids_kept)
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
