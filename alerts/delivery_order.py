"""Each alert's notifications reach a sink in the order they were made.

The outbox hands out due entries oldest-due first, and a failed send is retried after a backoff (up to
5 minutes, 15 with a receiver's Retry-After). So a FIRING notice whose send failed was overtaken by the
RESOLVED of the same alert, which was due at once: webhook, Slack and email receivers then showed the
alert firing for good, and Alertmanager re-opened it. A notification is therefore held back (it stays
claimed and comes due again after its lease, no attempt counted) while an older notification of one of its
alerts waits for a retry on that sink. Only entries that failed can be overtaken: one that never failed
was due before any later one, and claims go oldest-due first.

What waits is known from this deliverer's own failures, and loaded from the outbox whenever the deliverer
becomes active (a start, a restart, a new cluster leader), so the order also holds across them.
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.model import Notification


def _order(n: Notification) -> tuple[int, str]:
    return n.event_time_s, n.id


class SinkOrder:
    """One sink's entries waiting for a retry, indexed by the alerts (dedup keys) they carry."""

    def __init__(self, waiting: Iterable[Notification] = ()) -> None:
        self._entries: dict[str, tuple[tuple[int, str], frozenset[str]]] = {}
        self._by_alert: dict[str, set[str]] = {}
        for n in waiting:
            self.failed(n)

    def __len__(self) -> int:
        return len(self._entries)

    def failed(self, n: Notification) -> None:
        """``n``'s send failed: it waits for a retry, and later notifications of its alerts wait for it."""
        keys = frozenset(a.dedup_key for a in n.alerts)
        self._entries[n.id] = (_order(n), keys)
        for key in keys:
            self._by_alert.setdefault(key, set()).add(n.id)

    def done(self, notification_id: str) -> None:
        """Delivered or dead-lettered: it holds nothing back any more."""
        entry = self._entries.pop(notification_id, None)
        if entry is None:
            return
        for key in entry[1]:
            ids = self._by_alert.get(key)
            if ids is not None:
                ids.discard(notification_id)
                if not ids:
                    del self._by_alert[key]

    def blocker(self, n: Notification) -> str | None:
        """The id of an older notification of one of ``n``'s alerts still waiting for a retry, if any."""
        mine = _order(n)
        for alert in n.alerts:
            for other in self._by_alert.get(alert.dedup_key, ()):
                if other != n.id and self._entries[other][0] < mine:
                    return other
        return None
