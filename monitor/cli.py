"""``monitor`` command line: run | replay | backtest | train | eval | silences | alerts | config | check | init.

This is the only place that installs signal handlers: SIGTERM/SIGINT request a graceful stop
(drain in-flight batches, commit, flush the outbox) and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from monitor import __version__
from monitor.classify import ModelLoadError
from monitor.classify.topics import TaxonomyError
from monitor.classify.training.dataset import DatasetError
from monitor.cluster.solo import InstanceConflictError
from monitor.config import SECRET_KEYS, ConfigError, Settings, load_settings
from monitor.durations import iso_utc
from monitor.fatal import ShutdownIncompleteError, StartupError, one_line, report_fatal, root_cause

if TYPE_CHECKING:
    from monitor.engine.app import MonitorApp
    from monitor.engine.pipeline import PipelineStats
from monitor.logging import configure_logging

log = structlog.get_logger(__name__)


def _settings(args: argparse.Namespace) -> Settings:
    """The config with ``--log-format`` applied, so ``monitor config`` shows the format the logs really use."""
    settings = load_settings(args.config)
    if args.log_format:
        settings = settings.model_copy(update={"log": settings.log.model_copy(update={"format": args.log_format})})
    configure_logging(settings.log.level, settings.log.format)
    return settings


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""SIGHUP too: its default killed the daemon at once with no drain and no line, and systemd counts that as a
clean exit, so ``Restart=on-failure`` did not bring it back (found by review)."""


def install_stop_signals(request_stop: Callable[[], None], received: list[int] | None = None) -> None:
    """SIGTERM/SIGINT/SIGHUP request a graceful stop (drain, commit, flush); a second one while stopping exits at
    once (an operator's repeated Ctrl-C waited out the whole stop deadline; found by review). The only signal
    handling in the project: every command that runs the engine installs it through here. ``received`` collects
    the signals, for a command whose output is partial when one came (a replay)."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def on_signal(sig: int) -> None:
        if received is not None:
            received.append(sig)
        if seen:
            sys.stderr.write(f"error: {signal.Signals(sig).name} again while stopping: exiting now without finishing "
                             "the stop -- messages not yet committed are read again at the next start\n")
            sys.stderr.flush()
            os._exit(stopped_exit_code(sig))
        seen.append(sig)
        request_stop()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)


def exit_on_signals_while_building(exit_code: Callable[[int], int]) -> None:
    """Until ``install_stop_signals``: a stop signal while the engine is built (the model loads in this thread
    when it has no worker process) exits at once with one line, nothing having started. Without a handler the
    process died silently, or, as PID 1 in a container, ignored it: ``docker stop`` waited its 10 s and
    killed it (found by review)."""

    def on_signal(sig: int, _frame: object) -> None:
        sys.stderr.write(f"stopped by {signal.Signals(sig).name} while starting: nothing had started\n")
        sys.stderr.flush()
        os._exit(exit_code(sig))

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)


def stopped_exit_code(sig: int) -> int:
    """The shell's convention for a run cut short by a signal: 130 for SIGINT (Ctrl-C), 143 for SIGTERM."""
    return 128 + sig


HARD_EXIT_AFTER_S = 15.0
"""How long past ``shutdown_timeout_s`` a stopping process may still be alive (a thread stuck in native
code, a task that ignores cancellation) before it exits anyway: a supervisor never waits on a hung stop."""


def exit_if_still_running(after_s: float) -> threading.Timer:
    """A backstop for the engine's own stop deadline: one line, then exit 1 without further clean-up."""

    def hard_exit() -> None:
        sys.stderr.write(f"error: still stopping {after_s:.0f} s after the stop request; exiting now -- messages "
                         "not yet committed are read again at the next start\n")
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(after_s, hard_exit)
    timer.daemon = True
    timer.start()
    return timer


def arm_backstop(app: MonitorApp, settings: Settings) -> None:
    """``exit_if_still_running`` from the first stop request on, whatever made it (a signal, a lost lease)."""
    backstop: list[threading.Timer] = []

    def arm() -> None:
        if not backstop:
            backstop.append(exit_if_still_running(settings.shutdown_timeout_s + HARD_EXIT_AFTER_S))

    app.on_stop_request = arm


async def _serve(settings: Settings) -> int:
    from alerts.sinks import NO_SINKS
    from monitor.engine.app import MonitorApp

    if not settings.alerts.sinks:  # allowed (replay and backtest set their own sinks), but here nobody is alerted
        log.warning("alerts_go_nowhere", setting="alerts.sinks", detail=NO_SINKS)
    exit_on_signals_while_building(lambda sig: stopped_exit_code(sig) if sig == signal.SIGINT else 0)
    app = MonitorApp(settings)
    arm_backstop(app, settings)
    received: list[int] = []
    install_stop_signals(app.request_stop, received)
    # the backstop stays armed past the run: the interpreter's exit joins threads (a forward pass stuck in
    # the inference thread) and could hang there, long after "the graceful stop gave up" was printed
    stats = await app.run()
    print(
        f"processed {stats.read} messages: {stats.applied} new, {stats.duplicates} duplicates, "
        f"{stats.late} late; {stats.notifications} alert notifications",
        file=sys.stderr,
    )
    for line in notification_summary(app.pipeline.recent_notifications):
        print(line, file=sys.stderr)
    for line in where_things_went(settings, stats):
        print(line, file=sys.stderr)
    from monitor.replay import run_verdict

    # a SIGTERM before the first row (a daemon waiting for its Redis prefix) is a normal stop, not an empty input
    verdict = run_verdict(stats, rows_expected=settings.source.kind == "replay" and stats.exhausted)
    # a service manager's SIGTERM/SIGHUP is a clean stop (0); Ctrl-C is a run cut short, 130 as a shell expects
    return verdict or (stopped_exit_code(signal.SIGINT) if signal.SIGINT in received[:1] else 0)


def where_things_went(settings: Settings, stats: PipelineStats, *, dead_letters_in: str | None = None,
                      report: Path | None = None) -> list[str]:
    """Where a run's alerts and rejected rows are (a new user read "16 alert notifications" and nothing more:
    not the 3 rejected input rows, not the files; found by a walkthrough). ``dead_letters_in``: where the run's
    dead letters went when that is not what ``source.kind`` implies (a replay keeps them in a file, and starts it
    and its ``report`` afresh each run; the daemon appends to both, and to the sinks a replay borrows from it: a
    walkthrough read "file sinks append" after a replay that had replaced them, and "kept in var/dead-letter.jsonl"
    over 11 rows from four runs)."""
    from monitor.redact import redact_url

    daemon = dead_letters_in is None
    lines = []
    if stats.dead_letters:
        where = dead_letters_in or (f"Kafka topic {settings.kafka.dead_letter_topic}"
                                    if settings.source.kind == "kafka"
                                    else f"{settings.source.dead_letter_path} (appended across runs)")
        # rows read, then refused: the replay's "replayed N messages (...)" counts them too (found by review)
        after_read = stats.refusals()
        late = " (" + ", ".join(f"{n} {'of them ' * (i == 0)}{reason}"
                                for i, (reason, n) in enumerate(after_read)) + ")" if after_read else ""
        lines.append(f"{stats.dead_letters} input rows were rejected{late}; each is kept with its reason in {where}")
    if stats.notifications:
        from alerts.sinks.base import sink_name

        def shown(url: str) -> str:  # a sink that failed was listed as where the alerts went (found by review)
            missed = stats.undelivered.get(sink_name(url))
            # a replay's own report starts afresh; its --production-sinks files are the daemon's and grow (found
            # by the regression review)
            grows = not daemon and url.startswith("file://") and url != f"file://{report}"
            return (redact_url(url) + (f" ({missed} not delivered)" if missed else "")
                    + (" (appended across runs)" if grows else ""))

        lines.append("alerts went to: " + ", ".join(shown(sink) for sink in settings.alerts.sinks)
                     + (" (file sinks append across runs)" if daemon else ""))
    if settings.source.kind == "replay" and stats.read and stats.duplicates == stats.read:
        # a second `make run` into Redis exited 0 saying "0 new, 4230 duplicates" and nothing else (walkthrough)
        lines.append(f"warning: every message was already counted in {redact_url(settings.windows.store_url)} "
                     f"under key prefix {settings.windows.key_prefix!r}, so this run counted and alerted nothing -- "
                     "replay into a fresh namespace (`monitor replay` without --namespace) or set another "
                     "windows.key_prefix")
    return lines


def notification_summary(notes: Iterable[object]) -> list[str]:
    """One line per notification: event time (UTC) and title, for humans at the end of a run."""
    lines = []
    for note in notes:
        at, title = getattr(note, "event_time_s", None), getattr(note, "title", None)
        if isinstance(at, int) and isinstance(title, str):
            lines.append(f"  {iso_utc(at)}  {title}")
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(_settings(args)))


# Start-up failures a user fixes in config or infrastructure: one clear line, exit 1, no traceback.
# (StoreUnavailableError and KafkaUnavailableError are ConnectionErrors whose message names the setting.)
STARTUP_ERRORS = (ConnectionError, FileNotFoundError, ModelLoadError, DatasetError, TaxonomyError,
                  InstanceConflictError, StartupError, ShutdownIncompleteError)


def cmd_config(args: argparse.Namespace) -> int:
    """Every URL redacted (passwords, tokens in paths and queries), secrets shown as <set>/<unset>."""
    from monitor.redact import redact_settings

    settings = _settings(args)
    shown = redact_settings(settings.model_dump(mode="json"), SECRET_KEYS)
    shown["resolved"] = {
        "classifier_precision": _precision_line(settings, probe=args.probe),
        "classifier_worker": _worker_line(settings),
    }
    print(json.dumps(shown, indent=2))
    return 0


def _precision_line(settings: Settings, probe: bool) -> str:
    """The classifier precision on this machine: the rule (cheap), or with ``--probe`` the measured
    choice (loads the model, ~a few seconds)."""
    c = settings.classifier
    if probe and c.kind == "transformer" and c.runtime == "torch":
        from monitor.classify.transformer import TransformerClassifier

        chosen = TransformerClassifier(c)
        return f"{'int8' if chosen.quantized else chosen.precision.label} ({chosen.precision.reason})"
    from monitor.classify.cpu_features import cpu_bf16_flag, describe_precision

    return describe_precision(c.kind, c.dtype, c.device, c.quantize_int8, cpu_bf16_flag())


def _worker_line(settings: Settings) -> str:
    """Where the daemon will run the model here, and why (``classifier.worker``)."""
    from monitor.classify.cpu_features import available_cpus
    from monitor.engine.inference_process import use_worker_process

    c = settings.classifier
    where = "process" if use_worker_process(c) else "thread"
    if c.worker != "auto":
        return f"{where} (classifier.worker = {c.worker!r})"
    cores = available_cpus()
    return f"{where} (auto: kind {c.kind!r}, {cores} usable core{'s' if cores != 1 else ''})"


def _delegate(target: str, needs_settings: bool) -> Callable[[argparse.Namespace], int]:
    """Sub-commands implemented elsewhere take the remaining argv (they have their own parsers)."""

    def run(args: argparse.Namespace) -> int:
        module_name, func_name = target.split(":")
        func: Callable[..., int] = getattr(importlib.import_module(module_name), func_name)
        try:
            if needs_settings:
                return func(args.rest, _settings(args))
            configure_logging("INFO", args.log_format or "console")
            return func(args.rest)
        finally:
            if needs_settings and {"-h", "--help"} & set(args.rest):  # its own parser knows nothing of these
                print(GLOBAL_HELP)

    return run


GLOBAL_HELP = ("\nglobal options (before or after the command):\n"
               "  --config FILE         TOML config (default: $MONITOR_CONFIG, else configs/default.toml)\n"
               "  --log-format {json,console}")
"""Shown under a delegated command's ``--help`` (a walkthrough found ``monitor check --help`` silent about them)."""


# name: (module:function, help, whether the function takes the loaded Settings too)
DELEGATED = {
    "replay": ("monitor.replay:replay_command", "replay history from JSONL/CSV files or a Kafka topic", True),
    "backtest": ("monitor.backtest:backtest_command", "score alerts against labelled incidents", True),
    "train": ("monitor.classify.training.train:train_command", "train the topic + sentiment heads", False),
    "pretrain": (
        "monitor.classify.training.pretrain:pretrain_command",
        "adapt the encoder to finance text (masked LM)",
        False,
    ),
    "eval": ("monitor.classify.training.evaluate:eval_command", "evaluate a model on the held-out split", False),
    "silences": ("alerts.silences:silence_command", "create / list / expire alert silences", True),
    "alerts": ("alerts.redrive:alerts_command", "list / re-drive dead-lettered alert notifications", True),
    "check": ("monitor.preflight:check_command",
              "check every dependency the config names (Redis, Kafka, model, files) and what to fix", True),
    "init": ("monitor.starter:init_command", "write a starter config (monitor.toml, production.toml) into DIR", False),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="finsent real-time sentiment monitor")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML config (default: $MONITOR_CONFIG, else the packaged demo config)")
    parser.add_argument("--log-format", choices=["json", "console"], default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon (Kafka or file replay, per config)")
    run.set_defaults(func=cmd_run)
    cfg = sub.add_parser("config", help="print the effective configuration (secrets hidden)")
    cfg.set_defaults(func=cmd_config)
    cfg.add_argument("--probe", action="store_true", help="load the model and measure its precision choice")
    for p in (run, cfg):  # `monitor run --config X` works as well as `monitor --config X run`
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config")
        p.add_argument("--log-format", choices=["json", "console"], default=argparse.SUPPRESS)
    for name, (target, help_text, needs_settings) in DELEGATED.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.set_defaults(func=_delegate(target, needs_settings), rest=[])
    return parser


GLOBAL_OPTIONS = ("--config", "--log-format")


def _split_delegated(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``[global options] COMMAND [its own options]`` at a delegated command (argparse's
    REMAINDER mis-parses a remainder that starts with an option). Global options given after the
    command (``monitor replay --config X ...``) are moved in front of it."""
    for i, token in enumerate(argv):
        if token in DELEGATED and (i == 0 or argv[i - 1] not in GLOBAL_OPTIONS):
            head, rest, own = argv[: i], argv[i + 1 :], []
            j = 0
            while j < len(rest):
                name = rest[j].split("=", 1)[0]
                if name in GLOBAL_OPTIONS:
                    width = 1 if "=" in rest[j] else 2
                    head += rest[j : j + width]
                    j += width
                else:
                    own.append(rest[j])
                    j += 1
            return [*head, token], own
    return argv, []


def _early_logging(log_format: str | None) -> None:
    """Logging before the settings are loaded: WARNING, unless ``MONITOR_LOG__LEVEL`` asks for more. Unconfigured,
    structlog prints debug lines, so a config error printed its traceback (locals, sink tokens) before the one
    line meant for the operator."""
    level = os.environ.get("MONITOR_LOG__LEVEL", "").upper()
    fmt = log_format or os.environ.get("MONITOR_LOG__FORMAT", "").lower()
    configure_logging(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "WARNING",
                      fmt if fmt in ("json", "console") else "json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    head, rest = _split_delegated(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(head)
    args.rest = rest
    _early_logging(args.log_format)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:  # Ctrl-C outside the engine's stop handling (a backtest): one line, not a traceback
        print(f"error: monitor {args.command} interrupted (Ctrl-C); nothing it was writing is complete",
              file=sys.stderr)
        return stopped_exit_code(signal.SIGINT)
    except Exception as exc:  # one line, never a traceback wall (the traceback goes to the debug log)
        cause = root_cause(exc)
        if isinstance(cause, ConfigError):  # may list several keys, one per line
            print(f"error: {cause}", file=sys.stderr)
            return 2
        if isinstance(cause, STARTUP_ERRORS):
            print(f"error: {one_line(str(cause))}", file=sys.stderr)
            return 1
        print(f"error: {report_fatal(exc, args.command)}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
