"""``monitor check``: every dependency the configuration names, tried the way the daemon uses it, and what
to fix, before a deploy or at 3 a.m. (exit 1 when anything would stop or stall the daemon, 0 otherwise).

Checked: the Redis behind the windows, alert state and outbox (reachable, version >= 7.0, taking writes now:
not a replica, not full under ``noeviction``, not loading, able to persist; and the two settings that decide
whether data can vanish silently: ``maxmemory-policy`` must be ``noeviction``, and some persistence must be
on), the Kafka topics the source reads and dead-letters to, the classifier (it loads and labels a canary
text with finite numbers), the files it writes (dead letters, ``file://`` sinks) and Alertmanager's
readiness; other sinks are listed as not tried, since a test message would notify people.
Warnings are conditions the daemon survives but a risk desk should not run with.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from monitor.cluster.solo import describe_holder
from monitor.config import ConfigError, Settings
from monitor.fatal import StartupError, named, one_line
from monitor.redact import redact_url
from monitor.redis_connect import config_value, connect, is_cluster_node, node_values
from monitor.retry import MISCONF_FIX, NOREPLICAS_FIX, OOM_FIX, is_misconf, is_noreplicas

Status = Literal["ok", "warn", "FAIL", "skip"]
TIMEOUT_S = 5.0
"""Per network check: a dependency that does not answer within this is reported, not waited for."""


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.what:<16}  {self.detail}"


REPLICA_FIX = "point windows.store_url at the primary"
LOADING_FIX = ("Redis is loading its data set into memory (after a restart) and answers no command until it is done: "
               "the daemon waits for it; run monitor check again once it has loaded")
NEAR_FULL_SHARE = 0.9
"""A Redis with maxmemory this full is warned about: the next burst of windows makes it refuse writes."""


def _refusal_fix(exc: BaseException) -> str | None:
    """The fix for a Redis that answers but refuses (the daemon waits on these), None for any other error."""
    if isinstance(exc, BusyLoadingError):
        return LOADING_FIX
    if isinstance(exc, ReadOnlyError):
        return REPLICA_FIX
    if isinstance(exc, OutOfMemoryError):
        return OOM_FIX
    if is_noreplicas(exc):
        return NOREPLICAS_FIX
    return MISCONF_FIX if is_misconf(exc) else None


def _value(info: Mapping[str, Any], name: str, default: str = "") -> str:
    """One field of an INFO reply (``node_values``: one server's dict, or a cluster client's per node)."""
    found = node_values(info, name)
    return str(found[0]) if found else default


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def write_refusals(info: Mapping[str, Any], *, cluster: bool, save: str | None,
                   stop_writes_on_bgsave_error: str | None) -> list[Finding]:
    """Why this Redis refuses (or will soon refuse) the daemon's writes, from one ``INFO`` reply: a replica, a
    full memory with ``noeviction``, loading, a failed save or AOF write. Found by review: ``monitor check`` said
    "ok redis" and exited 0 while the daemon's /readyz said ReadOnlyError or OutOfMemoryError."""
    found: list[Finding] = []
    if _value(info, "role") == "slave" and not cluster:  # a cluster client finds the masters by itself
        master = f"{_value(info, 'master_host')}:{_value(info, 'master_port')}"
        found.append(Finding("FAIL", "redis", f"a replica of {master}: it refuses the daemon's writes (or, with "
                                              f"replica-read-only no, loses them at its next sync) -- {REPLICA_FIX}"))
    used = int(_value(info, "used_memory", "0")) - int(_value(info, "mem_not_counted_for_evict", "0"))
    limit, policy = int(_value(info, "maxmemory", "0")), _value(info, "maxmemory_policy")
    if limit and used > limit and policy == "noeviction":
        found.append(Finding("FAIL", "redis", f"{_mib(used)} used of maxmemory {_mib(limit)} (noeviction): Redis "
                                              f"refuses every write -- {OOM_FIX}"))
    elif limit and used >= NEAR_FULL_SHARE * limit and policy == "noeviction":
        found.append(Finding("warn", "redis", f"{_mib(used)} used of maxmemory {_mib(limit)}: writes are refused "
                                              f"once it is full -- {OOM_FIX}"))
    if _value(info, "loading") == "1":
        found.append(Finding("FAIL", "redis", LOADING_FIX))
    if _value(info, "aof_enabled") == "1" and _value(info, "aof_last_write_status") == "err":
        found.append(Finding("FAIL", "redis", f"the last AOF write failed -- {MISCONF_FIX}"))
    if _value(info, "rdb_last_bgsave_status") == "err":
        # Redis refuses writes (and PING) after a failed save only with save points and this setting on
        refused = stop_writes_on_bgsave_error != "no" and save != ""
        found.append(Finding("FAIL", "redis", f"the last background save failed -- {MISCONF_FIX}") if refused else
                     Finding("warn", "redis", "the last background save failed: a Redis restart loses what was "
                                              "written since the last good one -- free the disk or fix its dir "
                                              "(the Redis log says which)"))
    return found


async def write_probe(client: aioredis.Redis, key_prefix: str) -> ResponseError | None:
    """Why Redis refuses one real write now (a key under the daemon's prefix, gone after a second), None if it
    takes it. INFO does not show every refusal: ``min-replicas-to-write`` with a replica away (NOREPLICAS), a
    full memory under an evicting policy, an ACL; ``monitor check`` said ok to each (found by review)."""
    try:
        await client.set(f"{{{key_prefix}}}:check", "1", px=1000)
    except ResponseError as exc:
        return exc
    return None


async def check_redis(url: str, timeout_s: float = TIMEOUT_S, key_prefix: str = "finsent") -> list[Finding]:
    """Reachable, version, cluster state, whether it takes writes now, and the settings that lose data."""
    what, shown = "redis", redact_url(url)
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout_s,
                                     socket_timeout=timeout_s)
    try:
        await client.ping()
        cluster = await is_cluster_node(client)
        cluster_state = str(await cast(Any, client).execute_command("CLUSTER", "INFO")) if cluster else ""
        info = await client.info()
        policy = await config_value(client, "maxmemory-policy")
        save = await config_value(client, "save")
        stop_writes = await config_value(client, "stop-writes-on-bgsave-error")
        # a cluster node would answer MOVED for a key of another slot: the probe is for one server
        refused = None if cluster else await write_probe(client, key_prefix)
    except (RedisError, OSError) as exc:
        fix = _refusal_fix(exc) or ("check that redis-server is up and reachable and the host/port/password in "
                                    "windows.store_url")
        return [Finding("FAIL", what, f"{shown}: {type(exc).__name__}: {exc} -- {fix}")]
    finally:
        await client.aclose()
    kind, version = "Redis Cluster node" if cluster else "Redis", _value(info, "redis_version", "0")
    found = [Finding("ok", what, f"{shown}: {kind} {version} answers")]
    if cluster and "cluster_state:ok" not in cluster_state:
        found.append(Finding("FAIL", what, "the Redis Cluster does not serve every slot (cluster_state is not ok) "
                                           "-- check it with `redis-cli --cluster check HOST:PORT`"))
    if int(version.split(".")[0]) < 7:
        found.append(Finding("FAIL", what, f"Redis {version}: the window scripts need Redis >= 7.0"))
    found += write_refusals(info, cluster=cluster, save=save, stop_writes_on_bgsave_error=stop_writes)
    if refused is not None and not any(f.status == "FAIL" for f in found):  # a refusal INFO does not show
        found.append(Finding("FAIL", what, f"a write was refused ({named(refused)}) -- "
                                           f"{_refusal_fix(refused) or 'check the ACL user may write its keys'}"))
    if policy is None:
        found.append(Finding("warn", what, "maxmemory-policy cannot be read (CONFIG refused): make sure it is "
                                           "noeviction"))
    elif policy != "noeviction":
        found.append(Finding("warn", what, f"maxmemory-policy {policy}: Redis may evict windows, dedup markers and "
                                           "alert state without a word -- set maxmemory-policy noeviction (a full "
                                           "Redis then pauses the daemon, with the reason on /readyz)"))
    if _value(info, "aof_enabled", "0") == "0" and save == "":
        found.append(Finding("warn", what, "no persistence (appendonly no, no save points): a Redis restart loses "
                                           "every window, baseline and alert state -- set appendonly yes"))
    return found


async def check_kafka(settings: Settings, timeout_s: float = TIMEOUT_S) -> list[Finding]:
    from aiokafka.errors import KafkaError

    from consumers.kafka_client import missing_topic_line, topic_partitions
    from monitor.fatal import KAFKA_REACH_FIX, kafka_fix

    k = settings.kafka
    try:
        partitions = await topic_partitions(k, timeout_s)
    except KafkaError as exc:  # a refused ACL or login is not "is the broker up" (monitor/fatal.py kafka_fix)
        return [Finding("FAIL", "kafka", f"{k.bootstrap_servers}: {named(exc)} -- {kafka_fix(exc)}")]
    except (OSError, TimeoutError) as exc:
        return [Finding("FAIL", "kafka", f"{k.bootstrap_servers}: {named(exc)} -- {KAFKA_REACH_FIX}")]
    found = [Finding("ok", "kafka", f"{k.bootstrap_servers}: broker answers ({len(partitions)} topics)")]
    for setting in ("news_topic", "comments_topic", "dead_letter_topic"):
        topic = getattr(k, setting)
        if topic in partitions:
            found.append(Finding("ok", "kafka", f"kafka.{setting} {topic!r}: {partitions[topic]} partition(s)"))
        else:
            found.append(Finding("FAIL", "kafka", missing_topic_line(k, setting)))
    return found


def check_classifier(settings: Settings) -> list[Finding]:
    from monitor.classify import build_classifier
    from monitor.engine.poison import CANARY_TEXT, is_finite

    try:
        classifier = build_classifier(settings.classifier)
        [prediction] = classifier.predict([CANARY_TEXT])
    except Exception as exc:  # any load or inference failure is the finding
        return [Finding("FAIL", "classifier", f"{type(exc).__name__}: {exc}"[:500])]
    if not is_finite(prediction):
        return [Finding("FAIL", "classifier", f"{classifier.name} returns non-finite numbers on a canary text -- "
                                              "check classifier.model_path and classifier.dtype")]
    return [Finding("ok", "classifier", f"{classifier.name} labels a canary text {prediction.sentiment.value} "
                                        f"({prediction.sentiment_confidence:.2f})")]


def check_writable(what: str, path: Path, setting: str) -> Finding:
    """The file, or the nearest directory that exists above it, must be writable by this user."""
    target = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
    if target != path and not target.is_dir():
        return Finding("FAIL", what, f"{path}: {target} is a file, not a directory -- change {setting}")
    if target == path and path.is_dir():
        return Finding("FAIL", what, f"{path} is a directory -- {setting} must name a file")
    if os.access(target, os.W_OK):
        return _free_space(what, path, target if target.is_dir() else target.parent, setting)
    return Finding("FAIL", what, f"{path}: {target} is not writable by this user -- fix its permissions or "
                                 f"change {setting}")


LOW_SPACE_BYTES = 16 * 2**20
"""Below this much free space a writable file is a warning."""


def _free_space(what: str, path: Path, directory: Path, setting: str) -> Finding:
    """Writable is not enough: a full disk passed the check, and ``monitor run`` stopped at its first dead letter
    (found by review)."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return Finding("ok", what, f"{path}: writable (free space unknown)")
    if stats.f_blocks == 0:  # procfs, sysfs (/proc/self/fd/1 for a container's stdout): no space to report
        return Finding("ok", what, f"{path}: writable")
    free = stats.f_bavail * stats.f_frsize
    if free == 0 or (stats.f_files and stats.f_favail == 0):  # f_files 0: a filesystem without inode counts
        return Finding("FAIL", what, f"{path}: no space left on its filesystem -- free some, or change {setting}")
    if free < LOW_SPACE_BYTES:
        return Finding("warn", what, f"{path}: writable, {free / 2**20:.1f} MiB free -- free some before it fills")
    return Finding("ok", what, f"{path}: writable")


def check_readable(path: Path, setting: str) -> Finding:
    """An input file the run reads: there, a file, readable (a missing one passed the check and failed the run)."""
    if not path.exists():
        return Finding("FAIL", "input", f"{path}: not found -- fix {setting}")
    if not path.is_file():
        return Finding("FAIL", "input", f"{path}: not a file -- {setting} lists JSONL/CSV files")
    if not os.access(path, os.R_OK):
        return Finding("FAIL", "input", f"{path}: not readable by this user -- fix its permissions")
    return Finding("ok", "input", f"{path}: readable")


def check_files(settings: Settings) -> list[Finding]:
    if settings.source.kind == "kafka":
        return []
    return [*(check_readable(Path(p), "source.replay_paths") for p in settings.source.replay_paths),
            check_writable("dead letters", Path(settings.source.dead_letter_path), "source.dead_letter_path")]


async def check_alertmanager(url: str, headers: dict[str, str], shown: str, timeout_s: float = TIMEOUT_S) -> Finding:
    """Alertmanager's own readiness endpoint: no alert is sent."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session, \
                session.get(url, headers=headers) as resp:
            status = resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Finding("FAIL", "alert sink", f"{shown}: {type(exc).__name__}: {exc} -- check the host and port of "
                                             "the alertmanager+http(s):// URL in alerts.sinks")
    if status != 200:
        return Finding("FAIL", "alert sink", f"{shown}: /-/ready answered HTTP {status} -- check the URL's path "
                                             "and credentials in alerts.sinks")
    return Finding("ok", "alert sink", f"{shown}: Alertmanager is ready")


async def check_sinks(settings: Settings) -> list[Finding]:
    """File sinks must be writable and Alertmanager ready; the others are not tried (a test message would
    notify people), and say so."""
    from alerts.sinks import NO_SINKS, build_sinks
    from alerts.sinks.alertmanager import AlertmanagerSink
    from alerts.sinks.file import FileSink

    if not settings.alerts.sinks:
        return [Finding("warn", "alert sink", NO_SINKS)]
    found = []
    try:
        sinks = build_sinks(settings)
    except ConfigError as exc:  # what run refuses at start (no host, unknown scheme, a missing secret)
        return [Finding("FAIL", "alert sink", one_line(str(exc)))]
    for sink in sinks:
        shown = redact_url(sink.name)
        if isinstance(sink, FileSink):
            found.append(check_writable("alert sink", sink.path, "alerts.sinks"))
        elif isinstance(sink, AlertmanagerSink):
            found.append(await check_alertmanager(*sink.readiness_probe(), shown))
        elif not shown.startswith("log://"):
            found.append(Finding("skip", "alert sink", f"{shown}: not tried (a test message would notify people)"))
    return found


async def check_instance(settings: Settings, timeout_s: float = TIMEOUT_S) -> Finding:
    """Whether a daemon holds this prefix now (without cluster mode only one may: monitor/cluster/solo.py)."""
    prefix = settings.windows.key_prefix
    try:
        client = await connect(settings.windows.store_url, decode_responses=True,
                               socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            holder = await client.get(f"{{{prefix}}}:instance")
        finally:
            await client.aclose()
    except (RedisError, RedisClusterException, OSError) as exc:
        return Finding("FAIL", "instance", f"cannot read the instance lease: {type(exc).__name__}: {exc}")
    if not holder:
        return Finding("ok", "instance", f"prefix {prefix!r}: no daemon holds it now")
    return Finding("ok", "instance", f"prefix {prefix!r}: held by {describe_holder(str(holder))} -- a second "
                                     "daemon waits alerts.instance_wait_s for it to stop, then exits")


def check_http(host: str, port: int) -> Finding:
    """Bind the HTTP port as ``run`` will (it said "0 failed" for a port ``run`` then could not bind; found by
    review). In use is a warning: the daemon being checked may be the one holding it."""
    import errno
    import socket

    from monitor.web.server import bind_failure

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's create_server
            sock.bind(infos[0][4])
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return Finding("warn", "http", bind_failure(host, port, exc) + " (or by this daemon, if it is running)")
        return Finding("FAIL", "http", bind_failure(host, port, exc))
    return Finding("ok", "http", f"{host}:{port} can be bound")


def check_startup(settings: Settings) -> list[Finding]:
    """The validations ``run`` makes before it starts, through the same functions: a config that ``run`` refuses
    (an unknown store scheme, a missing watchlist, retention too short) fails here too, not "0 failed"."""
    from monitor.engine.app import build_cluster, check_retention
    from monitor.engine.enrich import build_enricher
    from monitor.windows.factory import build_window_store

    steps: tuple[tuple[str, Callable[[], object]], ...] = (
        ("window store", lambda: build_window_store(settings.windows)),
        ("watchlist", lambda: build_enricher(settings)),
        ("retention", lambda: check_retention(settings)),
        ("cluster", lambda: build_cluster(settings)),
    )
    found = []
    for what, step in steps:
        try:
            step()
        except (ConfigError, StartupError, OSError) as exc:
            found.append(Finding("FAIL", what, one_line(str(exc))))
    return found  # silent when they pass, like run


async def run_checks(settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    if settings.windows.store_url.startswith(("redis://", "rediss://")):
        found += await check_redis(settings.windows.store_url, key_prefix=settings.windows.key_prefix)
        if not settings.alerts.cluster_mode and all(f.status != "FAIL" for f in found):
            found.append(await check_instance(settings))
    if settings.source.kind == "kafka":
        found += await check_kafka(settings)
    found += await asyncio.to_thread(check_classifier, settings)
    if settings.http.enabled:
        found.append(check_http(settings.http.host, settings.http.port))
    return found + check_files(settings) + await check_sinks(settings) + check_startup(settings)


def check_command(argv: Sequence[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="monitor check", description=__doc__.split("\n\n")[0])
    parser.parse_args(list(argv))
    found = asyncio.run(run_checks(settings))
    for finding in found:
        print(finding.line())
    counts = {status: sum(f.status == status for f in found) for status in ("FAIL", "warn", "skip", "ok")}
    print(f"{counts['FAIL']} failed, {counts['warn']} warning(s), {counts['skip']} not tried, {counts['ok']} ok",
          file=sys.stderr)
    failed = counts["FAIL"]
    return 1 if failed else 0
