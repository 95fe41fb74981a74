"""What every outbox is: the protocol, its entries and errors, and the order index's keys (see the package doc)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from alerts.model import AlertItem, Notification
from monitor.types import Lifecycle

log = structlog.get_logger("alerts.outbox")


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
        returned) and one superseded by what the sink already got is dropped (module doc); one superseded
        for only some of its alerts is returned without them (``without_outdated``).
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


def bounded_add(ids: OrderedDict[str, float], key: str, at: float, keep: int) -> None:
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


def without_outdated(notification: Notification, outdated: Collection[tuple[str, str]]) -> Notification:
    """``notification`` less its alerts whose ``(tag, order)`` is in ``outdated`` (the sink already showed a later
    notice of them), same id. A grouped notice redriven after one of its alerts moved on was sent whole: its old
    state reopened (or closed) that alert at the receiver for good (found by review)."""
    if not outdated:
        return notification
    keys = order_keys(notification)
    kept = tuple(item for item, key in zip(notification.alerts, keys, strict=True) if key not in outdated)
    return dataclasses.replace(notification, alerts=kept)


def left_out(sent: Notification, queued: Notification) -> list[str]:
    """The window keys of ``queued`` that ``sent`` (``without_outdated`` of it) no longer carries."""
    kept = {item.dedup_key for item in sent.alerts}
    return [item.window_key for item in queued.alerts if item.dedup_key not in kept]


def report_skipped(sink: str, held: Sequence[tuple[str, str]], superseded: Sequence[str],
                    due_again_at_s: float, trimmed: Sequence[tuple[str, list[str]]] = ()) -> None:
    for nid, behind in held:
        log.info("alert_delivery_held", sink=sink, notification_id=nid, behind=behind, due_again_at_s=due_again_at_s)
    for nid in superseded:
        log.warning("alert_notification_superseded", sink=sink, notification_id=nid,
                    why="this sink already got a later notice of each of its alerts: not sent")
    for nid, keys in trimmed:
        log.warning("alert_notification_part_superseded", sink=sink, notification_id=nid, left_out=keys,
                    why="this sink already got a later notice of these alerts: sent without them")
