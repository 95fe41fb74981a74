"""Pure window math: bucket boundaries, dimension keys and per-bucket statistics.

No I/O here: both stores call these functions, so memory and Redis agree by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from monitor.types import ClassifiedMessage, RawMessage, Sentiment


def is_key_prefix(prefix: str) -> bool:
    """A usable Redis key prefix: it becomes the ``{hash tag}`` of every key, so it is non-empty without braces (the
    one rule the settings, ``monitor replay --namespace`` and the Redis store each check)."""
    return bool(prefix) and "{" not in prefix and "}" not in prefix


ALL_KEY = "all"
KEY_KINDS = ("ticker:", "topic:", "topic_ticker:")
"""Prefixes of every window key but ``all`` (see the builders below)."""
KEY_FORMS = "all, ticker:SYMBOL, topic:NAME or topic_ticker:NAME|SYMBOL"
"""How to name a window key, for errors about keys that name none."""


DIGEST_VERSION = "d1:"
"""Prefix of every content digest: a store compares only digests of its own version, so a later change to
what is digested (bump this) turns no redelivery of the retention into a conflict."""


def content_digest(message: RawMessage) -> str:
    """``d1:`` + 16 hex chars of (event time, text): tells a redelivery (same digest) from another message
    reusing its id."""
    payload = f"{message.event_time.isoformat()}\x00{message.text}".encode("utf-8", "surrogatepass")
    return DIGEST_VERSION + hashlib.blake2b(payload, digest_size=8).hexdigest()


def other_content(stored: str, digest: str) -> bool:
    """Whether a seen marker ``stored`` names other content than ``digest``: only a marker of the same digest
    version can (``1`` from before digests, or another version, matches anything). The Redis script applies
    the same rule."""
    return stored != digest and len(stored) == len(digest) and stored[:3] == digest[:3]


def align_s(epoch_s: int, bucket_s: int) -> int:
    """Start of the bucket holding ``epoch_s`` (tumbling buckets aligned to the epoch)."""
    return epoch_s - epoch_s % bucket_s


def bucket_start_s(event_time: datetime, bucket_s: int) -> int:
    """Epoch second at which the bucket holding ``event_time`` starts."""
    return align_s(int(event_time.timestamp()), bucket_s)


def to_datetime(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def topic_key(topic: str) -> str:
    return f"topic:{topic}"


def key_rank(key: str) -> tuple[int, str]:
    """The order keys are kept in when a cap cuts a list: ``all``, then the topics, then the rest by name (tickers
    before topic x ticker keys). Detection's key cap and the console's busiest keys both rank by it."""
    return (0 if key == ALL_KEY else 1 if key.startswith(topic_key("")) else 2, key)


def ticker_key(ticker: str) -> str:
    return f"ticker:{ticker.upper()}"


def topic_ticker_key(topic: str, ticker: str) -> str:
    return f"topic_ticker:{topic}|{ticker.upper()}"


def key_path(key: str) -> str:
    """Where the console shows window ``key`` (``/keys/topic_ticker%3Aearnings%7CBA``): the console's own
    links, Alertmanager's ``generatorURL`` and Slack's console link all point here."""
    return "/keys/" + quote(key, safe="")


def dimension_keys(topic: str, tickers: Iterable[str]) -> list[str]:
    """Every window key one message contributes to: all, its topic, each ticker, each (topic, ticker)."""
    keys = [ALL_KEY, topic_key(topic)]
    for ticker in sorted({t.upper() for t in tickers if t}):
        keys.append(ticker_key(ticker))
        keys.append(topic_ticker_key(topic, ticker))
    return keys


@dataclass(frozen=True, slots=True)
class BucketStats:
    """Aggregates of one key in one bucket. Value object: add with ``merge``."""

    key: str
    start_s: int
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    score_sum: float = 0.0
    repeats: int = 0
    """Messages folded into an earlier story (not in the sentiment counts, the score or the evidence)."""

    @property
    def volume(self) -> int:
        """Distinct stories (what detectors count)."""
        return self.negative + self.neutral + self.positive

    @property
    def messages(self) -> int:
        """Every message, stories and repeats."""
        return self.volume + self.repeats

    @property
    def neg_share(self) -> float:
        return self.negative / self.volume if self.volume else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.volume if self.volume else 0.0

    def merge(self, other: BucketStats) -> BucketStats:
        return BucketStats(
            key=self.key,
            start_s=self.start_s,
            negative=self.negative + other.negative,
            neutral=self.neutral + other.neutral,
            positive=self.positive + other.positive,
            score_sum=self.score_sum + other.score_sum,
            repeats=self.repeats + other.repeats,
        )


@dataclass(frozen=True, slots=True)
class Increment:
    """What one message adds to one (key, bucket)."""

    key: str
    start_s: int
    sentiment: Sentiment
    score: float
    repeat: bool = False

    def as_stats(self) -> BucketStats:
        if self.repeat:
            return BucketStats(key=self.key, start_s=self.start_s, repeats=1)
        return BucketStats(
            key=self.key,
            start_s=self.start_s,
            negative=int(self.sentiment is Sentiment.NEGATIVE),
            neutral=int(self.sentiment is Sentiment.NEUTRAL),
            positive=int(self.sentiment is Sentiment.POSITIVE),
            score_sum=self.score,
        )


def increments(item: ClassifiedMessage, bucket_s: int) -> list[Increment]:
    """The increments one classified message contributes to every key it belongs to."""
    start = bucket_start_s(item.message.event_time, bucket_s)
    pred = item.prediction
    return [
        Increment(key=k, start_s=start, sentiment=pred.sentiment, score=pred.score,
                  repeat=item.repeat_of is not None)
        for k in dimension_keys(pred.topic, item.message.tickers)
    ]


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """A message kept as evidence for alerts on a bucket (the most negative ones)."""

    message_id: str
    source: str
    text: str
    score: float
    event_time_s: int
    url: str | None = None


EVIDENCE_STORED_CHARS = 600
"""Evidence keeps this much of a text (alerts show 500 after masking). A negative message is evidence in
every window it counts in (up to 2 + 2 x 32 keys): kept whole, one 10,000-character text cost megabytes of
Redis for the whole retention."""


EVIDENCE_URL_MAX_CHARS = 2_048
"""A longer link is not kept with the evidence (browsers and proxies cut URLs near this anyway): one
63,000-character ``url`` on a comment with 32 tickers cost 4.4 MB of Redis for the whole retention."""


def evidence_of(item: ClassifiedMessage) -> EvidenceItem:
    msg = item.message
    return EvidenceItem(
        message_id=msg.id,
        source=str(msg.source),
        text=msg.text[:EVIDENCE_STORED_CHARS],
        score=item.prediction.score,
        event_time_s=int(msg.event_time.timestamp()),
        url=msg.url if msg.url is not None and len(msg.url) <= EVIDENCE_URL_MAX_CHARS else None,
    )
