"""``monitor replay``: run history through the same engine as live, isolated from production.

Input is JSONL/CSV files or a Kafka topic range selected by *payload* event time. Isolation by
default: the in-memory window store (or, with ``--store redis://...``, a ``replay:<run id>`` key
namespace), a dedicated consumer group, and alerts written to a report file instead of the
production sinks (``--production-sinks`` opts in). Same input → same windows → same alerts.

Stopped by SIGINT/SIGTERM, a replay drains what it read, prints its summary and "stopped by SIG… after N rows;
the report is partial", and exits 130 (SIGINT) or 143 (SIGTERM), the shell's convention, never 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tqdm import tqdm

from consumers.replay import GZIP_ERRORS, READ_CHUNK_BYTES, check_csv_header, is_csv, iter_lines, open_input
from consumers.schema import epoch_or_text, parse_event_time
from monitor.config import Settings, SourceSettings, check_redis_url
from monitor.durations import iso_utc, non_negative_float
from monitor.engine.pipeline import PipelineStats
from monitor.progress import bar_wanted, run_with_progress
from monitor.redact import redact_url
from monitor.rotating_file import rotated_path
from monitor.windows.buckets import is_key_prefix
from monitor.windows.redis import StoreUnavailableError

DEFAULT_REPORT = Path("reports/replay-alerts.jsonl")


def parse_time(value: str, naive_zone: tzinfo = UTC) -> datetime:
    """CLI timestamps: ISO-8601 (``2026-11-03T14:00:00Z``) or epoch seconds; one without an offset is read in
    ``naive_zone``."""
    try:
        return parse_event_time(epoch_or_text(value), naive_zone)
    except Exception as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 time or epoch seconds") from exc


def time_arg(value: str) -> str:
    """``--from``/``--to``: checked here (a usage error), read by ``resolve_range`` once settings are known."""
    parse_time(value)
    return value


def resolve_range(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> None:
    """``--from``/``--to`` as UTC datetimes, a time without an offset read in ``source.naive_time_zone`` as messages
    and ``--events`` are (it was read as UTC, hours off in any other zone; found by review), and said when set."""
    zone = ZoneInfo(settings.source.naive_time_zone)
    try:
        args.start, args.end = (None if t is None else parse_time(t, zone) for t in (args.start, args.end))
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--from/--to: {exc} in {zone.key} (source.naive_time_zone)")
    if args.start is None and args.end is None:
        return
    shown = [("..." if t is None else iso_utc(int(t.timestamp()))) for t in (args.start, args.end)]
    naive = f"; times without an offset are read in {zone.key}, source.naive_time_zone" if zone.key != "UTC" else ""
    print(f"event time range: {shown[0]} to {shown[1]} (UTC{naive})", file=sys.stderr)


def report_file(value: str) -> Path:
    """``--report``: a file path; a directory there failed the run with a hint about the configuration."""
    path = Path(value)
    if path.is_dir():
        example = f"{value.rstrip('/')}/alerts.jsonl"
        raise argparse.ArgumentTypeError(f"{value!r} is a directory -- give a file path, e.g. {example}")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor replay", description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", type=Path, nargs="+", help="JSONL or CSV files (.gz too) in event-time order")
    src.add_argument("--kafka-topic", nargs="+", help="replay these topics from [kafka] bootstrap_servers")
    p.add_argument("--from", dest="start", type=time_arg,
                   help="first event time (inclusive), Kafka only; without an offset in source.naive_time_zone")
    p.add_argument("--to", dest="end", type=time_arg,
                   help="last event time (exclusive), Kafka only; without an offset in source.naive_time_zone")
    p.add_argument("--speed", type=non_negative_float, default=0.0, help="0 = max speed; 1 = real time; 10 = 10x")
    p.add_argument("--store", type=store_url, default="memory://", help="memory:// (default) or a redis:// URL")
    p.add_argument("--namespace", type=namespace, default=None, help="Redis key namespace (default replay:<random id>)")
    p.add_argument("--report", type=report_file, default=DEFAULT_REPORT, help="JSONL file receiving the alerts")
    p.add_argument("--production-sinks", action="store_true", help="ALSO deliver alerts to the configured sinks")
    p.add_argument("--no-progress", action="store_true")
    return p


def isolated_settings(
    settings: Settings,
    *,
    sinks: Sequence[str],
    dead_letter_path: Path,
    store_url: str = "memory://",
    key_prefix: str | None = None,
    replay_paths: Sequence[Path] | None = None,
    speed: float = 0.0,
) -> Settings:
    """Settings for a run over history that cannot touch production: its own store / Redis
    namespace and consumer group, its own dead letters and sinks, no HTTP, no cluster role."""
    run_id = uuid.uuid4().hex[:8]
    source: dict[str, Any] = {"dead_letter_path": dead_letter_path}
    if replay_paths is not None:
        source.update(kind="replay", replay_paths=list(replay_paths), replay_speed=speed)
    return settings.model_copy(update={
        "source": settings.source.model_copy(update=source),
        "windows": settings.windows.model_copy(
            update={"store_url": store_url, "key_prefix": key_prefix or f"replay:{run_id}"}),
        "alerts": settings.alerts.model_copy(update={"sinks": list(sinks), "cluster_mode": False}),
        "http": settings.http.model_copy(update={"enabled": False}),
        "kafka": settings.kafka.model_copy(update={"group_id": f"{settings.kafka.group_id}.replay.{run_id}"}),
    })


def replay_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """Isolated settings for one ``monitor replay`` run; alerts go to the report file."""
    sinks = [f"file://{args.report}"] + (list(settings.alerts.sinks) if args.production_sinks else [])
    return isolated_settings(
        settings,
        sinks=sinks,
        dead_letter_path=args.report.with_name(args.report.stem + ".dead-letter.jsonl"),
        store_url=args.store,
        key_prefix=args.namespace,
        replay_paths=args.input or None,
        speed=args.speed,
    )


def count_lines(paths: Sequence[Path]) -> int:
    """The progress bar's total: lines, less each CSV header, of gzipped files decompressed. Newlines are counted
    in ``READ_CHUNK_BYTES`` chunks, so blank lines count too (the bar may end short of its total): reading whole
    lines held a 512 MiB line of a 510 KB gzip file in memory (1.2 GB, found by review). A damaged gzip file
    counts nothing here: reading it says what is wrong."""
    total = 0
    for path in paths:
        try:
            total += _newlines(path) - is_csv(path)
        except (OSError, *GZIP_ERRORS):
            continue
    return total


def _newlines(path: Path) -> int:
    """Lines of a file (a last line without a newline included), in memory of one chunk."""
    count, last = 0, b"\n"
    with open_input(path) as fh:
        while chunk := fh.read(READ_CHUNK_BYTES):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def inputs_hold_rows(paths: Sequence[Path], max_message_bytes: int) -> bool:
    """Whether the input files hold a row (a malformed one too: it is dead-lettered), after refusing a CSV header
    that lacks a required column with the ``InputError`` the source gives. Both were said only after the classifier
    had loaded (~25 s, found by review); this reads each file up to its first row. Missing files are left to the
    source, which names every one (True here)."""
    files = [path for path in paths if path.is_file()]
    for path in files:
        if is_csv(path):
            check_csv_header(path, max_message_bytes + 2, warn=False)  # + CRLF, as the source; it warns
    if len(files) < len(paths):
        return True
    for path in files:
        with closing(iter_lines(path, max_message_bytes + 2)) as records:
            if next(records, None) is not None:
                return True
    return False


MIN_LATE_FOR_VERDICT = 10
"""Late rows (and more than half of the rows read) that make a run fail: an input in reverse or random order."""


def run_verdict(stats: PipelineStats, *, rows_expected: bool = False) -> int:
    """Exit code of a run: 1, with a loud line, when nothing got through (every row dead-lettered, or, with
    ``rows_expected`` (files replayed), no row at all: an empty file scored "detected 0/3" with exit 0; found by
    review), no notification reached any sink (every delivery abandoned), notifications end with the run undelivered
    (an in-memory outbox: a sink that failed every send), or most rows were late (an input out of time
    order: 4,225 of 4,230 rows of the reversed demo, exit 0 before; both found by review); 0 otherwise."""
    code = 0
    if stats.inputs_cut_off:  # a nearly clean run, exit 0, with most of a file unread (found by review)
        print(f"error: {', '.join(stats.inputs_cut_off)}: the gzip data breaks off, the rows after the break were not "
              "read (bad_gzip in the dead-letter file) -- copy or download the file again", file=sys.stderr)
        code = 1
    if rows_expected and not stats.read and not stats.dead_letters:
        print("error: the input held no rows -- check the --input files (empty, or only blank lines or a CSV "
              "header)", file=sys.stderr)
        code = 1
    if stats.dead_letters and not stats.applied and not stats.duplicates:
        print(f"error: all {stats.dead_letters} input rows were dead-lettered, none was processed -- "
              "see the dead-letter file for the reasons", file=sys.stderr)
        code = 1
    # most of what was read (rows dead-lettered for another reason, e.g. id_conflict, count on the other side)
    if stats.late >= MIN_LATE_FOR_VERDICT and stats.late * 2 > stats.read:
        print(f"error: {stats.late} of {stats.read} rows were late (their bucket had closed): is the input in time "
              "order? sort it by published_at (a file replay reads it in order), or raise "
              "windows.allowed_lateness_s for a stream that is only a little out of order", file=sys.stderr)
        code = 1
    if stats.deliveries_abandoned and not stats.deliveries_delivered:
        print(f"error: every alert delivery was abandoned ({stats.deliveries_abandoned}), none delivered -- "
              "check the sinks (alerts.sinks) and the alert_delivery_abandoned log lines", file=sys.stderr)
        code = 1
    for sink, count in sorted(stats.undelivered.items()):
        if stats.undelivered_kept:
            print(f"warning: {count} alert notifications for sink {sink} wait in the Redis outbox; the next start "
                  "delivers them (monitor alerts sinks lists them)", file=sys.stderr)
        else:
            print(f"error: {count} alert notifications never reached sink {sink} and end with this run (the outbox "
                  "is in memory) -- check that sink in alerts.sinks and the alert_delivery_failed log lines",
                  file=sys.stderr)
            code = 1
    return code


async def run_replay(settings: Settings, *, progress: bool, kafka: argparse.Namespace | None = None,
                     stopped_by: list[int] | None = None) -> PipelineStats:
    """One replay run. Every rejected row -- malformed input, and the pipeline's ``late``/``implausible_time``/
    ``id_conflict``/``classifier_error`` rows -- goes to the file ``source.dead_letter_path`` of the isolated
    settings, for a Kafka range too: there ``source.kind`` stays ``kafka``, and a dead letter built from it was
    the production topic (found by review), while the range reader kept no malformed record at all."""
    from consumers.deadletter import file_dead_letter
    from monitor.cli import arm_backstop, exit_on_signals_while_building, install_stop_signals, stopped_exit_code
    from monitor.engine.app import MonitorApp

    dead_letter = file_dead_letter(settings.source)
    source = None
    if kafka is not None and kafka.kafka_topic:
        from consumers.kafka_range import KafkaRangeReader

        source = KafkaRangeReader(settings, kafka.kafka_topic, start=kafka.start, end=kafka.end,
                                  dead_letter=dead_letter)
    exit_on_signals_while_building(stopped_exit_code)
    app = MonitorApp(settings, source=source, dead_letter=dead_letter, history=True)
    arm_backstop(app, settings)  # a model hung in this process's inference thread never let a replay exit
    install_stop_signals(app.request_stop, stopped_by)
    total = count_lines(settings.source.replay_paths) if source is None else None
    bar = tqdm(total=total, unit="msg", disable=not bar_wanted(progress), file=sys.stderr)

    return await run_with_progress(app.run, lambda: app.pipeline.stats.read, bar, 0.2)


def namespace(value: str) -> str:
    """``--namespace``: a Redis key prefix, non-empty without braces (it was a crash-style ``ValueError`` naming
    windows.key_prefix instead of the flag; found by review)."""
    if not is_key_prefix(value):
        raise argparse.ArgumentTypeError(f"{value!r}: a namespace is non-empty and has no braces, e.g. replay-nov")
    return value


def store_url(value: str) -> str:
    """``--store``: ``memory://`` or a Redis URL redis-py reads as written (a db that is not a number was db 0)."""
    if value.startswith("memory://") or value.lower().startswith("unix://"):
        return value
    if not value.lower().startswith(("redis://", "rediss://")):
        raise argparse.ArgumentTypeError(f"{redact_url(value)!r}: use memory:// or redis://host:6379/0 (rediss:// "
                                         "for TLS, unix:///path/redis.sock for a socket)")
    try:
        check_redis_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse flags that would silently do nothing, and inputs that are not files (one-line usage errors)."""
    if args.namespace is not None and args.store.startswith("memory:"):
        parser.error("--namespace names a Redis key namespace: it needs --store redis://...")
    if args.input and (args.start is not None or args.end is not None):
        parser.error("--from/--to select a Kafka range (with --kafka-topic); files are replayed whole")
    if args.kafka_topic and args.speed:
        parser.error("--speed paces file replays; a Kafka range is read as fast as possible")
    if args.start is not None and args.end is not None and args.start >= args.end:
        parser.error(f"--from {iso_utc(int(args.start.timestamp()))} is not before --to "
                     f"{iso_utc(int(args.end.timestamp()))}: the range is empty -- swap them")
    require_files(parser, "--input", args.input or (), "pass JSONL/CSV files")


def file_identity(path: Path) -> tuple[object, ...]:
    """What makes two paths one file: the inode where it exists (hard links, symlinks), else the resolved path."""
    try:
        stat = path.stat()
    except OSError:
        return (path.resolve(),)
    return (stat.st_dev, stat.st_ino)


def check_outputs(parser: argparse.ArgumentParser, report: Path, isolated: Settings) -> None:
    """Refuse, before the report is replaced, outputs that are inputs or each other: ``--report in.jsonl`` deleted
    the input, ``--report`` naming a configured file sink deleted the desk's alert log before the duplicate-sink
    error stopped the run, and a replay of its own dead-letter file fed every rejected row back into it (100 MB
    of nested rows until rotation; all found by review)."""
    from alerts.sinks.base import sink_name
    from alerts.sinks.file import FileSink
    from monitor.config import split_sink_url

    sinks = isolated.alerts.sinks
    names = [sink_name(url) for url in sinks]
    if names[0] in names[1:]:
        parser.error(f"--report {report}: alerts.sinks already writes there ({names[0]}) -- choose another --report")
    elsewhere = "choose another --report (its dead-letter file is named after it)"
    outputs = [(f"the --report file {report}", report, elsewhere),
               (f"this replay's dead-letter file {isolated.source.dead_letter_path}",
                isolated.source.dead_letter_path, elsewhere)]
    outputs += [(f"the alerts.sinks file {sink_name(url)}", FileSink.from_url(url, sink_name(url)).path,
                 "copy the input elsewhere first, or replay without --production-sinks")
                for url in sinks[1:] if split_sink_url(url).scheme == "file"]
    inputs = {file_identity(path): path for path in isolated.source.replay_paths}
    for what, path, fix in outputs:
        if (same := inputs.get(file_identity(path))) is not None:
            parser.error(f"--input {same} is also {what}: the replay would write into what it reads -- {fix}")


def dead_letter_files(source: SourceSettings) -> list[Path]:
    """``source.dead_letter_path`` and the rotations it keeps (``.1`` ... ``.N``): every file of those dead letters."""
    path = source.dead_letter_path
    return [path, *(rotated_path(path, n) for n in range(1, source.dead_letter_keep_files + 1))]


def own_dead_letters(parser: argparse.ArgumentParser, settings: Settings, isolated: Settings,
                     inputs: Iterable[Path], run: str, fix: str, report: Path | None = None) -> list[Path]:
    """The run's dead-letter file and rotations, once none of them is an input or a file of the daemon's
    ``source.dead_letter_path``, and ``report`` (replaced at start too) is none of the daemon's either (a one-line
    usage error ending in ``fix`` otherwise): clearing them deleted an ``--input`` that was a rotation, ``backtest
    --out var`` and ``replay --report var/dead-letter.jsonl`` the daemon's dead letters (found by review)."""
    files = dead_letter_files(isolated.source)
    daemon_files = {file_identity(path) for path in dead_letter_files(settings.source)}
    if report is not None and file_identity(report) in daemon_files:
        parser.error(f"--report {report} is a file of the daemon's dead letters (source.dead_letter_path "
                     f"{settings.source.dead_letter_path} and its rotations): the {run} would replace it -- "
                     "choose another --report")
    owned = {file_identity(path): path for path in files}
    for path in inputs:
        if (same := owned.get(file_identity(path))) is not None:
            what = (f"this {run}'s dead-letter file" if same == files[0]
                    else f"a rotation ({same.name}) of this {run}'s dead-letter file")
            parser.error(f"--input {path} is also {what}: the run would delete what it reads -- copy it elsewhere "
                         f"first, or {fix}")
    daemon = settings.source.dead_letter_path
    if not owned.keys().isdisjoint(daemon_files):
        parser.error(f"this {run}'s dead-letter file {files[0]} would be the daemon's (source.dead_letter_path "
                     f"{daemon} and its rotations): the run would delete and write into them -- {fix}")
    return files


def clear_dead_letters(files: Iterable[Path]) -> None:
    """Remove a run's own dead-letter files (``own_dead_letters``) before it starts, as its report is replaced: they
    were appended to across runs while the summary counted one run's rejected rows (found by review)."""
    for old in files:
        old.unlink(missing_ok=True)


def require_files(parser: argparse.ArgumentParser, flag: str, paths: Iterable[Path], fix: str,
                  pattern: str = "*.jsonl") -> None:
    """A one-line usage error for the first of ``paths`` that is not a file (for a directory, a glob of it)."""
    for path in paths:
        if path.is_dir():
            parser.error(f"{flag} {path}: is a directory -- {fix} (e.g. {path}/{pattern})")
        if not path.is_file():
            parser.error(f"{flag} {path}: not found -- {fix}")


def require_writable_dir(parser: argparse.ArgumentParser, flag: str, path: Path, directory: Path) -> None:
    """Make ``directory`` (the output of ``flag``) if missing, and check this user can write there: a one-line usage
    error naming the flag before any work (a bare ``[Errno 2]``, or an error blaming source.dead_letter_path)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"{flag} {path}: cannot create the directory {directory} ({exc.strerror or exc}) -- "
                     "choose a path in a writable directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        parser.error(f"{flag} {path}: the directory {directory} is not writable by this user -- choose a path in a "
                     "writable directory, or fix its permissions")


def replay_command(argv: Sequence[str], settings: Settings) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    resolve_range(parser, args, settings)
    check_args(parser, args)
    if not args.input and not args.kafka_topic:
        args.input = list(settings.source.replay_paths)
    isolated = replay_settings(args, settings)
    require_writable_dir(parser, "--report", args.report, args.report.parent)
    check_outputs(parser, args.report, isolated)
    dead_letters = own_dead_letters(parser, settings, isolated, args.input or (), "replay",
                                    "choose another --report (its dead-letter file is named after it)", args.report)
    try:
        args.report.unlink(missing_ok=True)
        clear_dead_letters(dead_letters)
    except OSError as exc:
        parser.error(f"--report {args.report}: cannot replace it or its dead-letter file ({exc.strerror or exc}) -- "
                     "choose another path")
    if not args.kafka_topic and not inputs_hold_rows(isolated.source.replay_paths,
                                                     isolated.source.max_message_bytes):
        return run_verdict(PipelineStats(), rows_expected=True)  # the line a run of no rows ends with
    stopped_by: list[int] = []
    try:
        stats = asyncio.run(run_replay(isolated, progress=not args.no_progress, kafka=args, stopped_by=stopped_by))
    except StoreUnavailableError as exc:  # it named windows.store_url and its variable: --store set it here
        raise StoreUnavailableError(str(exc).replace("windows.store_url ", "--store ", 1)
                                    .replace(" (or set MONITOR_WINDOWS__STORE_URL)", "")) from exc
    if not args.namespace and not args.store.startswith("memory:"):
        prefix = isolated.windows.key_prefix
        if stats.undelivered:  # --production-sinks: what waits in the outbox is the desk's, never deleted
            print(f"warning: this replay's Redis namespace {prefix} is kept: undelivered notifications wait in its "
                  f"outbox (pass --namespace {prefix} to a later replay to go on delivering them)", file=sys.stderr)
        else:
            asyncio.run(forget_namespace(args.store, prefix))
    for line in replay_summary(isolated, stats, args.report):
        print(line)
    if stopped_by:  # an interrupted replay exited 0 with a normal summary: its partial report looked complete
        from monitor.cli import stopped_exit_code

        print(f"error: stopped by {signal.Signals(stopped_by[0]).name} after {stats.read} rows; the report is "
              "partial", file=sys.stderr)
        return stopped_exit_code(stopped_by[0])
    return run_verdict(stats, rows_expected=not args.kafka_topic)


DROP_CHUNK = 500
"""Keys unlinked per command when a replay's own namespace is dropped."""


async def forget_namespace(url: str, prefix: str) -> None:
    """Delete a finished replay's generated Redis namespace (``{P}:*``, and its alerts' ``{P:alerts}:*``): nobody can
    name it again, and its alert states, outbox sets and epoch marker never expire (found by review: 9 keys, up to
    3 x 50,000 notification ids, left by every replay). A Redis that went away leaves them, with one line."""
    from monitor.redis_connect import connect

    try:
        client = await connect(url)
        try:
            for tag in (f"{{{prefix}}}", f"{{{prefix}:alerts}}"):
                batch: list[Any] = []
                async for key in client.scan_iter(match=f"{tag}:*", count=DROP_CHUNK):
                    batch.append(key)
                    if len(batch) >= DROP_CHUNK:
                        await client.unlink(*batch)
                        batch.clear()
                if batch:
                    await client.unlink(*batch)
        finally:
            await client.aclose()
    except Exception as exc:  # the replay's results are written; cleanup is best effort
        print(f"warning: could not delete this replay's Redis namespace {prefix} ({type(exc).__name__}: {exc}); its "
              "keys without a TTL stay (delete them with redis-cli --scan --pattern)", file=sys.stderr)


def refused_counts(stats: PipelineStats) -> str:
    """``, 2 implausible_time``: the rows read that the pipeline dead-lettered for another reason than late, so
    a summary's breakdown adds up to what was read (2 rows refused by the event-time jump guard were in neither
    count; found by review)."""
    return "".join(f", {count} {reason}" for reason, count in stats.refusals() if reason != "late")


def replay_summary(settings: Settings, stats: PipelineStats, report: Path) -> list[str]:
    """What a replay read and where each row went: counted, duplicate, late, rejected (with the dead-letter
    file), alerts (found by review: 293 records printed as "replayed 223 messages (216 new, 5 late)", nothing
    about the 70 rejected rows, the 2 duplicates or where the rejected ones were kept)."""
    from monitor.cli import where_things_went

    head = (f"replayed {stats.read} messages ({stats.applied} new, {stats.duplicates} duplicates, {stats.late} late"
            f"{refused_counts(stats)}); "
            f"{stats.notifications} alert notifications -> {report}; "
            f"detection evaluated until {iso_utc(stats.evaluated_until_s)}")
    # every replay dead-letters to the file (run_replay), whatever source.kind says
    return [head, *where_things_went(settings, stats, dead_letters_in=str(settings.source.dead_letter_path),
                                     report=report)]

