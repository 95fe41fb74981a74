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

from alerts.outbox.base import DeadLetter, Outbox, OutboxEntry, OutboxFullError, index_members, order_keys
from alerts.outbox.memory import MemoryOutbox
from alerts.outbox.redis import OUTBOX_SCHEMA, RedisOutbox

__all__ = ["OUTBOX_SCHEMA", "DeadLetter", "MemoryOutbox", "Outbox", "OutboxEntry", "OutboxFullError", "RedisOutbox",
           "index_members", "order_keys"]
