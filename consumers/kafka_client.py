"""What every aiokafka client of the project shares: connection/security settings and record helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from consumers.schema import InvalidMessage, guarded, parse_message
from monitor.config import KafkaSettings, SourceSettings
from monitor.time_bounds import EventTimeBounds
from monitor.types import RawMessage, SourceKind

if TYPE_CHECKING:
    from consumers.deadletter import DeadLetterSink

MAX_KEY_CHARS = 200


class KafkaUnavailableError(ConnectionError):
    """The broker cannot be reached at start-up; the message names the setting to check."""


async def start_client(client: Any, settings: KafkaSettings, role: str) -> None:
    """Start an aiokafka client; if that fails, close it (no leaked connections) and raise
    ``KafkaUnavailableError`` naming ``kafka.bootstrap_servers``."""
    try:
        await client.start()
    except KafkaError as exc:
        await client.stop()
        raise KafkaUnavailableError(
            f"kafka.bootstrap_servers {settings.bootstrap_servers}: the {role} cannot connect ({exc}) -- check "
            "that the broker is up and reachable, or set MONITOR_KAFKA__BOOTSTRAP_SERVERS"
        ) from exc


def client_kwargs(settings: KafkaSettings, role: str) -> dict[str, Any]:
    """Connection keyword arguments shared by every aiokafka client (consumer, producers, admin)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-{role}",
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
        )
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password
    return kwargs


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


async def reject(dead_letter: DeadLetterSink, record: Any, exc: InvalidMessage) -> None:
    """Dead-letter a consumed record with its original bytes and where it came from."""
    await dead_letter.send(record.value or b"", exc.reason, exc.detail, record_origin(record))
