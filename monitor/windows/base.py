"""The ``WindowStore`` protocol every backend implements (see tests/contract for the shared suite)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from monitor.types import ClassifiedMessage, Lifecycle
from monitor.windows.buckets import BucketStats, EvidenceItem


@dataclass(frozen=True, slots=True)
class Applied:
    """What one ``WindowStore.apply`` call did with its items.

    Every item is exactly one of: counted (``fresh``), a conflict (its index in ``conflicts``) or a plain
    duplicate (a redelivery), so duplicates = ``len(items) - fresh - len(conflicts)``.
    """

    fresh: int
    """Messages newly counted."""
    conflicts: tuple[int, ...] = ()
    """Indexes (in the ``items`` given) of those not counted because their id was already applied (within
    ``retention_s``, or earlier in the same call) with other content (``content_digest``): a publisher
    reusing ids, a corrected story. In item order. The caller dead-letters them: they never reach the windows."""


@runtime_checkable
class LossAwareStore(Protocol):
    """A store that knows whether it started empty, so a consumer group's earlier reads prove its data was lost
    while the daemon was down (monitor/windows/redis.py; a memory store always starts empty, by design)."""

    def report_if_lost_while_down(self, partition: str, committed: int) -> None: ...


class WindowStore(Lifecycle, Protocol):
    """Event-time bucket aggregates, idempotent per message id.

    ``apply`` must be atomic per message and idempotent: a message id already applied (within
    ``retention_s``) with the same content changes nothing, so redelivery after a crash never
    double-counts; the same id with other content changes nothing either, and is reported.
    """

    bucket_s: int
    retention_s: int
    """Event-time span kept behind the newest bucket: older buckets are gone (and never evaluated)."""

    async def apply(self, items: Sequence[ClassifiedMessage]) -> Applied:
        """Add a batch. Durable on return. An item whose id was already applied (within ``retention_s``, or
        earlier in the same call) is not counted: a plain duplicate when its ``content_digest`` matches the
        one recorded for the id (a redelivery), else a conflict, named in ``Applied.conflicts`` so the
        caller can dead-letter it instead of losing it. A marker with no digest (written before digests
        were kept) matches any content."""
        ...

    async def seen(self, message_ids: Sequence[str]) -> set[str]:
        """Those of ``message_ids`` already applied (within ``retention_s``): a redelivery, not a new message."""
        ...

    async def digests(self, message_ids: Sequence[str]) -> dict[str, str]:
        """The seen marker of each of ``message_ids`` already applied (within ``retention_s``): its
        ``content_digest`` (or what an older version wrote). Read before novelty, so a message ``apply``
        will report as a conflict never becomes a story its copies fold into."""
        ...

    async def buckets(self, key: str, start_s: int, end_s: int) -> list[BucketStats]:
        """Non-empty buckets of ``key`` with ``start_s <= bucket start < end_s``, oldest first."""
        ...

    async def buckets_many(self, keys: Sequence[str], start_s: int, end_s: int) -> dict[str, list[BucketStats]]:
        """``buckets`` of every key in ``keys`` over one range, read at once: every key asked maps
        to its list (empty when it has none). Detection reads hundreds of keys per pass; a store
        must serve them in a number of round trips that does not grow per key (bounded chunks)."""
        ...

    async def active_keys(self, since_s: int, until_s: int | None = None) -> list[str]:
        """Keys that have at least one bucket starting in ``[since_s, until_s)`` (sorted);
        ``until_s=None`` = no upper bound. Detection bounds it by the buckets it evaluates, so a
        store that runs ahead of detection does not make it scan keys with only future data."""
        ...

    async def top_negative(self, key: str, start_s: int, end_s: int, limit: int) -> list[EvidenceItem]:
        """The most negative evidence messages of ``key`` over the range, most negative first."""
        ...
