"""What every aiokafka client of the project shares: connection/security settings and record helpers."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    ConsumerStoppedError,
    CorruptRecordException,
    IllegalStateError,
    KafkaError,
    RecordTooLargeError,
    UnsupportedCodecError,
)
from aiokafka.helpers import create_ssl_context

from consumers.schema import InvalidMessage, guarded, parse_message
from monitor.config import ConfigError, KafkaSettings, SourceSettings
from monitor.fatal import KAFKA_CODEC_FIX, KAFKA_REACH_FIX, StartupError, kafka_fix, named
from monitor.time_bounds import EventTimeBounds
from monitor.types import RawMessage, SourceKind, WireRecord

if TYPE_CHECKING:
    from consumers.deadletter import DeadLetterSink

MAX_KEY_CHARS = 200


class KafkaUnavailableError(ConnectionError):
    """A Kafka client cannot start (the broker unreachable, or refusing it); the message names what to check."""


def cannot_start(settings: KafkaSettings, doing: str, exc: BaseException) -> KafkaUnavailableError:
    """``kafka.bootstrap_servers ...: the <role> <doing> (<error>) -- <fix>``, the fix from ``kafka_fix``: an
    ACL that refuses the client is not a broker that is down."""
    fix = kafka_fix(exc) if isinstance(exc, KafkaError) else KAFKA_REACH_FIX
    return KafkaUnavailableError(f"kafka.bootstrap_servers {settings.bootstrap_servers}: the {doing} "
                                 f"({named(exc)}) -- {fix}")


async def start_client(client: Any, settings: KafkaSettings, role: str) -> None:
    """Start an aiokafka client; if that fails, close it (no leaked connections) and raise
    ``KafkaUnavailableError`` naming ``kafka.bootstrap_servers``."""
    try:
        await client.start()
    except KafkaError as exc:
        await client.stop()
        raise cannot_start(settings, f"{role} cannot connect", exc) from exc


async def topic_partitions(settings: KafkaSettings, timeout_s: float, role: str = "check") -> dict[str, int]:
    """Partition count of every topic the cluster has, from a short-lived consumer outside any group.
    Raises what aiokafka raises (KafkaError, OSError) or TimeoutError; aiokafka's own retry lines are
    silenced meanwhile (the caller says it once)."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    consumer = AIOKafkaConsumer(**{**client_kwargs(settings, role), "request_timeout_ms": int(timeout_s * 1000)})
    try:
        await asyncio.wait_for(consumer.start(), timeout_s * 2)
        topics = await asyncio.wait_for(consumer.topics(), timeout_s)
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
    finally:
        await consumer.stop()
        quiet.setLevel(level)


def missing_topic_line(settings: KafkaSettings, setting: str) -> str:
    """``kafka.<setting> 'name' does not exist -- ...``: the finding of ``monitor check`` and the start-up error."""
    topic = getattr(settings, setting)
    return (f"kafka.{setting} {topic!r} does not exist on {settings.bootstrap_servers} -- create it, or point "
            f"kafka.{setting} (MONITOR_KAFKA__{setting.upper()}) at the right topic")


async def require_topics(settings: KafkaSettings, wanted: Sequence[str], role: str) -> None:
    """Refuse to start on a topic that does not exist. Subscribed to a missing topic, the consumer joined
    its group and read nothing, without a word (tansu), or waited request_timeout_ms and then blamed the
    broker; a missing dead-letter topic surfaced only at the first invalid record, and stopped consumption."""
    try:
        partitions = await topic_partitions(settings, settings.request_timeout_ms / 1000, role)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise cannot_start(settings, f"{role} cannot read the topic list", exc) from exc
    missing = [missing_topic_line(settings, name) for name in wanted if getattr(settings, name) not in partitions]
    if missing:
        raise StartupError("; ".join(missing))


def client_kwargs(settings: KafkaSettings, role: str) -> dict[str, Any]:
    """Connection keyword arguments shared by every aiokafka client (consumer, producers, admin)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-{role}",
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        _require_readable_tls_files(settings)
        kwargs["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
        )
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password
    return kwargs


def _require_readable_tls_files(settings: KafkaSettings) -> None:
    """The ssl module says only "[Errno 2] No such file or directory", without the path or the setting."""
    for setting in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, setting)
        if path and not os.access(path, os.R_OK):
            why = "not readable by this user" if os.path.exists(path) else "not found"
            raise ConfigError(f"kafka.{setting} {path!r}: {why} -- set kafka.{setting} "
                              f"(MONITOR_KAFKA__{setting.upper()}) to a readable PEM file")


def topic_kinds(settings: KafkaSettings) -> dict[str, SourceKind]:
    return {settings.news_topic: SourceKind.NEWS, settings.comments_topic: SourceKind.COMMENT}


def record_origin(record: Any) -> dict[str, object]:
    """Where a consumed record came from, for dead letters."""
    key = record.key.decode("utf-8", errors="replace")[:MAX_KEY_CHARS] if record.key else None
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset,
            "timestamp_ms": record.timestamp, "key": key}


def parse_record(
    record: Any, source: SourceSettings, default_source: SourceKind | None, bounds: EventTimeBounds | None = None
) -> RawMessage:
    """Validate one consumed record's value; raises ``InvalidMessage`` only (``parse_error`` for
    anything the validators did not foresee), so no record can stop its partition."""
    if record.value is None:
        raise InvalidMessage("bad_json", "empty record value (tombstone)")
    return guarded(lambda: parse_message(record.value, max_message_bytes=source.max_message_bytes,
                                         max_text_chars=source.max_text_chars, default_source=default_source,
                                         bounds=bounds))


def wire_record(record: Any) -> WireRecord:
    """Where a consumed record came from, for a dead letter the pipeline may write later."""
    return WireRecord(record_origin(record), record.key, tuple(record.headers or ()))


async def reject(dead_letter: DeadLetterSink, record: Any, exc: InvalidMessage) -> None:
    """Dead-letter a consumed record with its original bytes, key and headers, and where it came from: a
    record re-fed from the dead-letter topic keeps its key, so it lands on the partition it came from."""
    wire = wire_record(record)
    await dead_letter.send(record.value or b"", exc.reason, exc.detail, wire.origin, key=wire.key,
                           headers=wire.headers)


# --- records that cannot be read (the group source and the range reader) -------------------------------

_TP_IN_MESSAGE = re.compile(r"TopicPartition\(topic='([^']+)', partition=(\d+)\)")
"""How aiokafka names the partition in a fetch error's text (``Invalid CRC - TopicPartition(...)``)."""

TOO_LARGE_FIX = ("the producer wrote a record larger than this daemon fetches (1 MiB a partition, aiokafka's default; "
                 "no setting raises it, and source.max_message_bytes rejects far smaller records anyway): keep "
                 "the topic's max.message.bytes and the producer's max.request.size at 1 MiB or less; to see the "
                 "record, read its offset with a Kafka tool that fetches more (kafka-console-consumer "
                 "--consumer-property max.partition.fetch.bytes=...)")
CORRUPT_FIX = ("the broker returned a batch that fails its checksum or does not parse: check the broker's log and "
               "disks for this partition, and the producer's client library")


def unreadable_at(exc: BaseException) -> tuple[TopicPartition | None, int | None]:
    """The partition, and the offset when it says one, that an aiokafka fetch error is about. aiokafka 0.14
    builds ``RecordTooLargeError(text, tp, fetch_offset, fetch_size)`` and ``CorruptRecordException`` with the
    partition in its text (a CRC failure) or none at all (a malformed record inside a batch)."""
    args = exc.args
    if isinstance(exc, RecordTooLargeError) and len(args) >= 3 and isinstance(args[2], int):
        tp = args[1]
        if isinstance(tp, tuple) and len(tp) == 2 and isinstance(tp[0], str) and isinstance(tp[1], int):
            return TopicPartition(tp[0], tp[1]), args[2]
    match = _TP_IN_MESSAGE.search(str(exc))
    return (TopicPartition(match[1], int(match[2])), None) if match else (None, None)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record aiokafka cannot return. ``partition``/``offset`` are None only when aiokafka did not say which
    (it has then moved past it already)."""

    partition: TopicPartition | None
    offset: int | None
    reason: str
    """``record_too_large``, ``corrupt_record`` (the dead letter's reason) or ``unsupported_codec``."""
    detail: str
    fix: str
    held: bool = False
    """The records are fine and this install cannot decode them (``unsupported_codec``): the partition waits at
    ``offset`` (never dead-lettered or committed past) until a restart with the codec installed."""

    @property
    def origin(self) -> dict[str, object]:
        tp = self.partition
        return {"topic": tp.topic if tp else None, "partition": tp.partition if tp else None, "offset": self.offset}


def too_large(exc: RecordTooLargeError) -> Unreadable:
    """aiokafka moved the position one past the record before raising (fetcher.py, ``consumed_to(position + 1)``)."""
    tp, offset = unreadable_at(exc)
    size = exc.args[3] if len(exc.args) > 3 else "?"
    where = (f"the record at {tp.topic}:{tp.partition} offset {offset}" if tp is not None and offset is not None
             else f"a record aiokafka did not name ({repr(exc)[:300]})")
    return Unreadable(tp, offset, "record_too_large",
                      f"{where} is larger than the consumer's fetch size ({size} bytes) and cannot be read",
                      TOO_LARGE_FIX)


CORRUPT_ERRORS: tuple[type[Exception], ...] = (CorruptRecordException, UnicodeDecodeError)
"""What aiokafka raises for a record it cannot unpack: a failed CRC or malformed batch, and a header name that is
not UTF-8 (its record decoder decodes every header key; the error left ``getmany`` and ended the daemon, and every
restart met the same record: a crash loop from one hostile producer; found by review)."""


def corrupt(tp: TopicPartition, offset: int, exc: Exception) -> Unreadable:
    return Unreadable(tp, offset, "corrupt_record",
                      f"the record at {tp.topic}:{tp.partition} offset {offset} cannot be read: {exc}", CORRUPT_FIX)


UNSUPPORTED_CODEC = "unsupported_codec"
"""The reason of a held partition: never a dead letter's (``metrics.DEAD_LETTER_REASONS`` does not list it)."""


def undecodable(tp: TopicPartition, offset: int, exc: UnsupportedCodecError) -> Unreadable:
    """aiokafka raises ``UnsupportedCodecError`` (naming neither partition nor offset) while it unpacks a batch
    compressed with a codec whose package is missing; the position does not move."""
    return Unreadable(tp, offset, UNSUPPORTED_CODEC,
                      f"the records of {tp.topic}:{tp.partition} from offset {offset} cannot be decompressed: {exc}",
                      KAFKA_CODEC_FIX, held=True)


async def positions_held(consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """The position of each of ``partitions`` that is assigned and has a valid one, read from aiokafka's
    subscription state: no I/O and no wait (``position()`` waits for a reset when a partition has none, and
    raises ``IllegalStateError`` when it is revoked meanwhile). Partitions without one are left out."""
    subscription = getattr(consumer, "_subscription", None)
    if subscription is None:  # a stand-in without aiokafka's state (tests): its position() answers at once
        return {tp: await consumer.position(tp) for tp in partitions}
    assignment = subscription.subscription.assignment if subscription.subscription is not None else None
    held: dict[TopicPartition, int] = {}
    for tp in partitions:
        state = assignment.state_value(tp) if assignment is not None else None
        if state is not None and state.has_valid_position:
            held[tp] = state.position
    return held


async def seek_back(
    consumer: AIOKafkaConsumer, expected: Mapping[TopicPartition, int],
) -> list[tuple[TopicPartition, int, int]]:
    """Seek each partition whose held position (``positions_held``) moved past ``expected`` back to it: a fetch
    that raised after aiokafka took records from other partitions never returned them. Returns ``(partition,
    position, sought back to)`` of each one moved."""
    now = await positions_held(consumer, expected)
    moved = [(tp, now[tp], start) for tp, start in sorted(expected.items()) if tp in now and now[tp] > start]
    for tp, _, start in moved:
        consumer.seek(tp, start)
    return moved


async def probe_partition(
    consumer: AIOKafkaConsumer, tp: TopicPartition, limit: int, timeout_ms: int,
    accept: Callable[[TopicPartition, list[Any]], Awaitable[None]], go_on: Callable[[], bool],
) -> Unreadable | None:
    """aiokafka says which offset a ``CorruptRecordException`` (or an ``UnsupportedCodecError``) is about never,
    and which partition only for a CRC failure: read ``tp`` one record at a time (at most ``limit``, while
    ``go_on()``), handing each to ``accept``, until a record cannot be read: that one is returned (its position
    has not moved for a corrupt record, the caller seeks past it; nor for an undecodable one, which the caller
    holds). None when every record read (or the partition ran dry)."""
    for _ in range(limit):
        if not go_on():
            break
        try:
            offset = await consumer.position(tp)
        except IllegalStateError:  # revoked while position() waited for a valid position: not ours to read
            break
        try:
            fetched = await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=1)
        except ConsumerStoppedError:
            break
        except RecordTooLargeError as exc:
            return too_large(exc)
        except CORRUPT_ERRORS as exc:
            return corrupt(tp, offset, exc)
        except UnsupportedCodecError as exc:
            return undecodable(tp, offset, exc)
        records = fetched.get(tp)
        if not records:
            break
        await accept(tp, records)
    return None
