"""A fatal error as one line: what failed and which setting to look at; the traceback goes to the
debug log only (``MONITOR_LOG__LEVEL=DEBUG``), never as a wall of text on an operator's terminal.

Errors raised inside the pipeline's task group arrive wrapped in an ``ExceptionGroup``: the first
real error inside it is the one reported.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedCodecError,
)
from redis.exceptions import ResponseError

log = structlog.get_logger(__name__)

MAX_LINE_CHARS = 600
# (module prefix of the exception's class, setting, environment variable, what to check)
BACKEND_HINTS = (
    ("redis.", "windows.store_url", "MONITOR_WINDOWS__STORE_URL", "check that redis-server is up and reachable"),
)


KAFKA_NOT_ALLOWED: tuple[type[BaseException], ...] = (
    TopicAuthorizationFailedError, GroupAuthorizationFailedError, ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed)
"""The broker knows who this client is and refuses it (Kafka ACLs, an MSK IAM policy)."""
KAFKA_NOT_AUTHENTICATED: tuple[type[BaseException], ...] = (SaslAuthenticationFailed, AuthenticationFailedError)
"""The broker refuses the credentials themselves (SASL)."""
KAFKA_ACCESS_FIX = ("the broker refuses this client's principal (Kafka ACLs, MSK IAM): allow Read on "
                    "kafka.news_topic, kafka.comments_topic and group kafka.group_id, Write on "
                    "kafka.dead_letter_topic, or set credentials that may (kafka.sasl_username, kafka.ssl_certfile)")
KAFKA_LOGIN_FIX = ("the broker rejects the credentials: check kafka.security_protocol, kafka.sasl_mechanism, "
                   "kafka.sasl_username and kafka.sasl_password (MONITOR_KAFKA__SASL_PASSWORD)")
KAFKA_CODEC_FIX = ("this install cannot decompress the topic's snappy/lz4/zstd record batches: install "
                   "aiokafka[lz4,snappy,zstd] (pip install cramjam), then start it again")
KAFKA_REACH_FIX = ("check that the Kafka broker of kafka.bootstrap_servers is up and reachable (or set "
                   "MONITOR_KAFKA__BOOTSTRAP_SERVERS)")



def named(exc: BaseException) -> str:
    """``Type: message``, once: aiokafka's errors already start with their type ("KafkaConnectionError:
    KafkaConnectionError: Unable to bootstrap", found by a walkthrough)."""
    text, name = str(exc), type(exc).__name__
    if not text:
        return name
    return text if text.startswith(f"{name}:") or text == name else f"{name}: {text}"

def kafka_fix(exc: KafkaError) -> str:
    """What an operator should do about a Kafka error. Only a connection or timeout error (or one the client
    retries) is about reachability: blaming the broker for a refused ACL or a missing codec package sent
    people to check a broker that was fine (found by review)."""
    if isinstance(exc, UnsupportedCodecError):
        return KAFKA_CODEC_FIX
    if isinstance(exc, KAFKA_NOT_ALLOWED):
        return KAFKA_ACCESS_FIX
    if isinstance(exc, KAFKA_NOT_AUTHENTICATED):
        return KAFKA_LOGIN_FIX
    if getattr(exc, "retriable", False) or type(exc).__name__ in {"KafkaConnectionError", "KafkaTimeoutError"}:
        return KAFKA_REACH_FIX
    return ("the broker answered and refused the request, or the Kafka client failed: the broker's log and "
            "MONITOR_LOG__LEVEL=DEBUG (the traceback) say why")


class StartupError(Exception):
    """A start-up failure whose message already names the setting and the fix: printed as it is."""


class ShutdownIncompleteError(Exception):
    """A stop that could not drain within ``shutdown_timeout_s`` (a dependency down): printed as it is, exit 1."""


def root_cause(exc: BaseException) -> BaseException:
    """The first error in (nested) exception groups that is not a cancellation, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup):
        real = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (real or list(exc.exceptions))[0]
    return exc


def one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_LINE_CHARS else flat[: MAX_LINE_CHARS - 3] + "..."


def fatal_line(exc: BaseException, command: str) -> str:
    """``monitor <command> failed: <what>`` plus the setting to check when the backend is known."""
    cause = root_cause(exc)
    what = named(cause)
    if isinstance(cause, ResponseError):  # Redis answered, and said no: not a reachability problem
        return one_line(f"monitor {command} failed: windows.store_url: Redis refused a command ({what}) -- "
                        "check its maxmemory, the ACL user's permissions (scripts, keys) and its version "
                        "(>= 7.0)")
    if isinstance(cause, KafkaError):  # its text names its class already ("[Error 29] TopicAuthorization...")
        what = str(cause) if type(cause).__name__ in str(cause) else what
        return one_line(f"monitor {command} failed: kafka: {what} -- {kafka_fix(cause)}")
    module = type(cause).__module__ + "."
    for prefix, setting, env, check in BACKEND_HINTS:
        if module.startswith(prefix):
            return one_line(f"monitor {command} failed: {setting}: {what} -- {check} (or set {env})")
    if isinstance(cause, OSError) and cause.filename is not None:
        return one_line(f"monitor {command} failed: {cause.strerror or what} ({cause.filename}) -- check that path: "
                        "the command's flags, or the configuration's paths (source.*, alerts.sinks file://, "
                        "classifier.*)")
    return one_line(f"monitor {command} failed: {what} -- set MONITOR_LOG__LEVEL=DEBUG for the traceback")


def report_fatal(exc: BaseException, command: str) -> str:
    """Log the traceback at debug level and return the line to print."""
    log.debug("fatal_error_traceback", command=command, exc_info=exc)
    return fatal_line(exc, command)
