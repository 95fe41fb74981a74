"""One retry policy for every dependency call (window store, detection, alert state, outbox, commits).

Why one helper: an outage of Redis or the broker must look the same everywhere -- the caller waits
(capped exponential backoff with full jitter, so instances do not retry in lockstep), is never
killed by an attempt limit, stays cancellable (SIGTERM still stops the daemon), logs every retry
with its component and error, and reports the dependency down (``/readyz``, ``finsent_ready``,
``finsent_dependency_up{component}``) until the next success. Built on ``tenacity``.

Only *transient* errors are retried (connection, timeout, a restarting Redis loading its data, a
retriable Kafka error, credentials or permissions a dependency refuses). Anything else is a bug or bad data
and propagates at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from aiokafka.errors import KafkaError
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never, wait_random_exponential

from monitor import metrics
from monitor.fatal import KAFKA_ACCESS_FIX, KAFKA_LOGIN_FIX, KAFKA_NOT_ALLOWED, KAFKA_NOT_AUTHENTICATED, named

log = structlog.get_logger(__name__)
T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, TryAgainError,
    # a Redis at its maxmemory (noeviction) refuses writes until keys expire or an operator makes room;
    # a cluster without a master for a slot comes back after failover. Neither is the request's fault.
    OutOfMemoryError, ClusterDownError,
    # a Redis Cluster mid-failover: slots without a live master, or no node reachable for a topology refresh
    RedisClusterException,
    # a slot being moved (online resharding): redis-py follows ASK and waits out TRYAGAIN up to its redirect
    # limit, then gives up with "TTL exhausted" (measured: the daemon exited on it mid-resharding)
    ClusterError,
)
OOM_FIX = "Redis is at its maxmemory: raise it or lower windows.retention_s"
"""What a full Redis (maxmemory, noeviction) needs; shared with ``monitor check`` (monitor/preflight.py)."""
HINTS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (OutOfMemoryError, f"{OOM_FIX} (waiting until it has room)"),
    (ClusterError, "the Redis Cluster is moving or failing over the slot of these keys (resharding, a failover): "
                   "waiting; `redis-cli --cluster check HOST:PORT` shows the slots"),
    (RedisClusterException, "the Redis Cluster does not serve every slot now (a failover, a master down): "
                            "waiting; `redis-cli --cluster check HOST:PORT` shows which"),
    # the endpoint answers from a replica: a failover behind a fixed address (a managed service's primary
    # endpoint, a VIP, a proxy) demoted the node the pooled connections still reach; each refused command drops
    # its connection (monitor/redis_connect.py), so a retry reconnects and reaches the new primary
    (ReadOnlyError, "Redis answered from a read-only replica (a failover behind this address?): reconnecting "
                    "until the address reaches the primary; check windows.store_url points at the primary"),
    # a rotated or revoked password: reconnecting fails until the URL and the server agree again
    (AuthenticationError, "Redis refused the credentials of windows.store_url: set MONITOR_WINDOWS__STORE_URL to "
                          "the current password and restart (waiting until then)"),
    # a Kafka ACL or MSK IAM policy that does not (or no longer) allow a topic or the group: granted, it takes
    # effect at the next retry, without a restart
    (KAFKA_NOT_ALLOWED, f"{KAFKA_ACCESS_FIX}; waiting until it may"),
    (KAFKA_NOT_AUTHENTICATED, f"{KAFKA_LOGIN_FIX}, and restart (waiting until then)"),
)
"""What an operator should do about a dependency error, added to the readiness reason and the retry log."""


BUSY_HINT = ("Redis is busy running a script (another client's, past busy-reply-threshold): waiting; SCRIPT KILL "
             "or FUNCTION KILL ends it")


MISCONF_FIX = ("Redis cannot persist its data (a full disk, an unwritable dir, a failing AOF write) and refuses "
               "writes until it can: free the disk or fix its dir (the Redis log says which)")
"""Shared with ``monitor check`` (monitor/preflight.py), which waits for nothing."""
MISCONF_HINT = f"{MISCONF_FIX}; waiting"


NOREPLICAS_FIX = ("Redis refuses writes until enough replicas are connected (min-replicas-to-write): check "
                  "replication (INFO replication on the primary) or lower min-replicas-to-write")
"""Shared with ``monitor check`` (monitor/preflight.py)."""
NOREPLICAS_HINT = f"{NOREPLICAS_FIX}; waiting"


def _refused_with(exc: BaseException, code: str) -> bool:
    """A plain ResponseError whose reply starts with Redis' error ``code`` (redis-py has no class for these)."""
    return type(exc) is ResponseError and str(exc).startswith(code)


def _is_busy(exc: BaseException) -> bool:
    return _refused_with(exc, "BUSY")


def is_noreplicas(exc: BaseException) -> bool:
    """A primary with ``min-replicas-to-write`` refuses writes while a replica is away (a common HA setting): a plain
    ResponseError, so the daemon exited at its next batch, and a start blamed the Redis version (found by review).
    The refusal is atomic (before a script writes anything), so waiting and retrying is safe."""
    return _refused_with(exc, "NOREPLICAS")


def is_misconf(exc: BaseException) -> bool:
    """Redis refuses writes (and PING) while it cannot save (``stop-writes-on-bgsave-error``, AOF errors): before,
    a plain ResponseError, so the daemon exited at its first batch and at every restart (found by review)."""
    return _refused_with(exc, "MISCONF")


def describe(exc: BaseException) -> str:
    """``Type: message``, plus the fix when the error is a known operational condition."""
    text = named(exc)
    if _is_busy(exc):
        hint: str | None = BUSY_HINT
    elif is_misconf(exc):
        hint = MISCONF_HINT
    elif is_noreplicas(exc):
        hint = NOREPLICAS_HINT
    else:
        hint = next((h for kind, h in HINTS if isinstance(exc, kind)), None)
    return f"{text} -- {hint}" if hint else text


def refusing_for_now(exc: BaseException) -> bool:
    """Redis answers but refuses for a while: full, a read-only replica, unable to persist, short of replicas, loading
    its data, busy with a script. Start-up waits for these like a running daemon does (it used to exit with a misleading
    "needs Redis >= 7.0" line, and a supervisor restarted it into the same wall); an unreachable Redis at start
    stays a one-line error (a wrong URL or a server not running is for a person to fix)."""
    return (_is_busy(exc) or is_misconf(exc) or is_noreplicas(exc)
            or isinstance(exc, (OutOfMemoryError, ReadOnlyError, BusyLoadingError)))


def is_transient(exc: BaseException) -> bool:
    """Worth waiting for: the dependency is unreachable or briefly unable, not the request wrong."""
    if _is_busy(exc) or is_misconf(exc) or is_noreplicas(exc):
        return True  # Redis answers again after another client's script ends / once it can persist / replicas return
    if isinstance(exc, KAFKA_NOT_ALLOWED + KAFKA_NOT_AUTHENTICATED):
        # like Redis's AuthenticationError: exiting sent a supervisor into a crash loop on the same record (a
        # dead-letter topic it may not write), while the fix (an ACL, a credential) comes from outside
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in {"KafkaConnectionError",
                                                                                "KafkaTimeoutError"}
    return isinstance(exc, TRANSIENT)


class Dependencies:
    """Which dependencies are failing right now, and why: the readiness answer.

    Process-wide (like the metrics registry): every retry loop reports here, ``/readyz`` reads it.
    """

    def __init__(self) -> None:
        self._down: dict[str, str] = {}

    def down(self, component: str, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else describe(error)
        self._down[component] = reason[:400]
        metrics.DEPENDENCY_UP.labels(component).set(0)

    def up(self, component: str) -> None:
        if self._down.pop(component, None) is not None:
            log.info("dependency_recovered", component=component)
        metrics.DEPENDENCY_UP.labels(component).set(1)

    def reasons(self) -> list[str]:
        return [f"{component} unreachable: {why}" for component, why in sorted(self._down.items())]

    def clear(self) -> None:
        self._down.clear()


DEPENDENCIES = Dependencies()


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.2
    """Scale of the first delay (full jitter: the delay is uniform in [0, initial_s * 2**n])."""
    max_s: float = 10.0
    """Cap of one delay: how long a recovered dependency may wait before it is used again."""


DEFAULT_BACKOFF = Backoff()


async def retrying(
    component: str, operation: Callable[[], Awaitable[T]], *, backoff: Backoff | None = None,
    dependencies: Dependencies | None = None, give_up: Callable[[], bool] | None = None,
    retry_if: Callable[[BaseException], bool] = is_transient,
) -> T:
    """``await operation()`` until it succeeds; transient errors wait and retry, forever.

    ``operation`` must be safe to repeat (every call site here is idempotent: the window store per
    message id, detection by its durable cursor, the outbox per notification id, commits per offset).
    Cancelling the caller cancels the wait, and ``give_up`` (checked after each failure; e.g. "a
    shutdown was requested a while ago") ends the retrying with the last error: shutdown is never
    held hostage by an outage. ``retry_if`` narrows what is waited for (start-up: ``refusing_for_now``).
    """

    backoff = backoff or DEFAULT_BACKOFF
    deps = dependencies or DEPENDENCIES

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay_s = state.next_action.sleep if state.next_action is not None else 0.0
        deps.down(component, exc or "unknown error")
        metrics.RETRIES.labels(component).inc()
        log.warning("dependency_retrying", component=component, attempt=state.attempt_number,
                    retry_in_s=round(delay_s, 3), error=describe(exc)[:400] if exc else "unknown error")

    retryer = AsyncRetrying(
        wait=wait_random_exponential(multiplier=backoff.initial_s, max=backoff.max_s),
        stop=(lambda _: give_up()) if give_up is not None else stop_never,
        retry=retry_if_exception(retry_if), before_sleep=before_sleep, reraise=True,
    )
    async for attempt in retryer:
        with attempt:
            result = await operation()
        if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
            deps.up(component)
            return result
    raise AssertionError("unreachable: tenacity either returns or re-raises")
