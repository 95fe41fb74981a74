"""Value objects and Protocols shared by every stage of the pipeline.

Everything that crosses a stage boundary is defined here so that sources, classifiers,
window stores and sinks can be swapped (by config) without touching the pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, Self, runtime_checkable


class SourceKind(StrEnum):
    NEWS = "news"
    COMMENT = "comment"


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


SENTIMENTS: tuple[Sentiment, ...] = (Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A validated input message. ``event_time`` is the payload's ``published_at`` (UTC, aware)."""

    id: str
    source: SourceKind
    text: str
    event_time: datetime
    tickers: tuple[str, ...] = ()
    lang: str = "en"
    url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prediction:
    """One forward pass's output for one text.

    ``score`` is the signed sentiment score in [-1, 1]: P(positive) - P(negative).
    """

    topic: str
    topic_confidence: float
    sentiment: Sentiment
    sentiment_confidence: float
    score: float
    sentiment_probs: tuple[float, float, float] = (0.0, 1.0, 0.0)


@dataclass(frozen=True, slots=True)
class ClassifiedMessage:
    message: RawMessage
    prediction: Prediction
    repeat_of: str | None = None
    """Id of the earlier story this message repeats (retweet, syndicated copy, reissue): counted as a
    repeat, not as a story. None = a story of its own."""


@dataclass(frozen=True, slots=True)
class WireRecord:
    """Where a message came from, for a dead letter the pipeline writes later (``late``, ``implausible_time``,
    ``id_conflict``, ``classifier_error``): topic/partition/offset or file/line, and the Kafka key and headers,
    so a record re-fed from the dead-letter topic lands on its partition. Before, those dead letters had only
    an opaque position. The value is not kept (it would double each buffered record's memory): the dead letter
    holds the message re-serialised, which reads back as the same message (a CSV row too)."""

    origin: Mapping[str, object]
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A message together with the opaque position its source needs to acknowledge it.

    ``lane`` names the independently ordered input it came from (a Kafka partition); the watermark
    is tracked per lane. None = the source is one ordered stream. ``wire``: where the record came from
    (origin, Kafka key and headers); None (a test double): its dead letters carry only the opaque position.
    """

    message: RawMessage
    position: Any = None
    lane: Hashable = None
    wire: WireRecord | None = None


@runtime_checkable
class Lifecycle(Protocol):
    """Every long-lived part: ``start()``/``stop()`` (idempotent) and ``async with``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


class Classifier(Protocol):
    """Batched text classifier. ``predict`` is synchronous and CPU/GPU bound: call it off the loop."""

    name: str

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


class Source(Lifecycle, Protocol):
    """Yields batches of validated records; ``commit`` acknowledges everything up to those records."""

    def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]: ...

    async def commit(self, records: Sequence[SourceRecord]) -> None: ...


@runtime_checkable
class PartitionedSource(Protocol):
    """A source made of independently ordered lanes (Kafka partitions): the pipeline tracks one
    watermark per lane, and a silent lane only counts as idle when it has nothing waiting."""

    def lanes(self) -> frozenset[Hashable]:
        """The lanes this source currently delivers (assigned partitions)."""
        ...

    async def lagging(self, lanes: frozenset[Hashable]) -> set[Hashable]:
        """Those of ``lanes`` that have records waiting on the broker (silent, but not idle)."""
        ...


@runtime_checkable
class GroupHistorySource(Protocol):
    """A source that can tell, once, that its consumer group had read a partition before this start (a committed
    offset this process did not write): the window store's evidence that its data was lost while down."""

    on_group_read_before: Callable[[str, int], None] | None
    """Called with (partition, committed offset) at most once, then cleared; None: nobody listens."""


@runtime_checkable
class SharedSource(PartitionedSource, Protocol):
    """A partitioned source shared by several daemons (a consumer group). An idle member states how
    far its partitions are durable; any member can check that claim against the broker, so a claim
    made before a backlog landed is not trusted (monitor/cluster/watermark.py)."""

    def lane_key(self, lane: Hashable) -> str:
        """The lane's name shared between instances (``"topic:partition"``)."""
        ...

    def partitions(self) -> frozenset[str] | None:
        """Every partition of the subscribed topics (all owners), or None while metadata is unknown."""
        ...

    async def durable_offsets(self) -> dict[str, int]:
        """Per owned partition (``"topic:partition"``): every record below this offset is durable."""
        ...

    async def has_records_beyond(self, offsets: dict[str, int]) -> bool:
        """True if any partition in ``offsets`` holds a record at or past its offset."""
        ...


@runtime_checkable
class HoldableSource(Protocol):
    """A source that can wait without fetching and without losing its place (a consumer group
    member): the pipeline holds it while downstream cannot take more (a store outage), and the
    source releases itself when the pipeline asks for the next batch."""

    @property
    def keepalive_s(self) -> float:
        """How often ``hold`` must be called to stay a member (well inside the group's poll deadline)."""
        ...

    async def hold(self) -> None:
        """Stop fetching and stay a live member (e.g. poll with every partition paused)."""
        ...


@runtime_checkable
class GroupMemberSource(HoldableSource, Protocol):
    """A holdable source in a consumer group that can leave it, so the other members take its partitions while this
    one cannot reach the cluster's shared state (cluster mode), and join it again."""

    async def step_aside(self) -> None:
        """Leave the group now; read nothing until ``rejoin`` (idempotent)."""
        ...

    def rejoin(self) -> None:
        """Join the group again if it stepped aside (idempotent)."""
        ...
