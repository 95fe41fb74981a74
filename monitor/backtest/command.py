"""``monitor backtest``: replay history, score alerts vs labelled incidents, sweep thresholds, report.

Isolated by construction: in-memory windows, no production sinks (alerts go to the report only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from tqdm import tqdm

from alerts.model import AlertItem, AlertStatus
from monitor.backtest.report import markdown, plot_incident
from monitor.backtest.runner import (
    CachedClassifier,
    ContradictoryCombination,
    RunResult,
    parse_sweep,
    run_once,
    settings_with,
)
from monitor.backtest.scoring import FiredAlert, Incident, Scores, load_incidents, score
from monitor.bundled import DEMO_INCIDENTS, DEMO_STREAM
from monitor.classify import build_classifier
from monitor.config import Settings
from monitor.durations import parse_duration_s
from monitor.engine.enrich import build_enricher
from monitor.engine.pipeline import PipelineStats
from monitor.engine.time_jumps import MAX_CLOSURE_S
from monitor.progress import bar_wanted
from monitor.replay import (
    clear_dead_letters,
    isolated_settings,
    own_dead_letters,
    refused_counts,
    require_files,
    require_writable_dir,
    run_verdict,
)
from monitor.windows.buckets import ALL_KEY

DEAD_LETTER_FILE = "dead-letter.jsonl"
"""In ``--out``: the run's rejected rows, each with its reason."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor backtest", description=__doc__)
    p.add_argument("--input", type=Path, nargs="+", default=[DEMO_STREAM])
    p.add_argument("--events", type=Path, default=DEMO_INCIDENTS,
                   help="labelled incidents CSV: key,start,end[,description]")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2",
                   help="[alerts] setting to sweep, repeatable (cartesian product)")
    p.add_argument("--late-s", "--late", type=parse_duration_s, default=3600,
                   help="alerts this long after an incident still count (seconds, or 30m, 1h ...)")
    p.add_argument("--early-s", "--early", type=parse_duration_s, default=0,
                   help="alerts this long before an incident still count (seconds, or 30m, 1h ...)")
    p.add_argument("--out", type=output_dir, default=Path("reports/backtest"),
                   help="directory for the report, the plots and the dead letters")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (messages of each run, and the sweep's runs) on stderr")
    return p


def output_dir(value: str) -> Path:
    """``--out``: a directory (made if missing); a file there gave a hint about a setting --out overrides."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a file -- give a directory (made if missing)")
    return path


def _episode(item: AlertItem) -> str:
    return f"{item.dedup_key}@{item.started_at_s}"


def fired_alerts(result: RunResult) -> list[FiredAlert]:
    """The run's firing notifications, each key with the episode it announces (reminders repeat one)."""
    return [FiredAlert(n.event_time_s, tuple(a.window_key for a in n.alerts), tuple(_episode(a) for a in n.alerts))
            for n in result.firing]


def resolved_at_s(result: RunResult) -> dict[str, int]:
    """Episode id -> when its RESOLVED went out."""
    return {_episode(a): n.event_time_s for n in result.notifications if n.status is AlertStatus.RESOLVED
            for a in n.alerts}


def _rank(s: Scores) -> tuple[float, float, float, float]:
    """Best = most incidents found, then fewest false alarms a day, then precision, then the shortest delay
    (precision alone preferred a setting with 3x the false alarms that paged more often on its hits)."""
    lead = s.lead_time_median_s if s.lead_time_median_s is not None else float("inf")
    return (s.recall, -s.false_alarms_per_day, s.precision, -lead)


async def run_backtest(
    settings: Settings, incidents: Sequence[Incident], sweep: Sequence[str], *, early_s: int, late_s: int,
    progress: bool = False,
) -> list[tuple[RunResult, Scores]]:
    combos, contradictory = [], []
    for params in parse_sweep(sweep):  # checked before the first run (one was refused mid-progress-bar)
        try:
            settings_with(settings, params)
        except ContradictoryCombination as exc:  # crossing baseline_buckets with min_baseline_buckets
            contradictory.append((params, exc))
            continue
        combos.append(params)
    if contradictory and not combos:
        raise contradictory[0][1]
    if contradictory:
        print(f"backtest: skipping {len(contradictory)} contradictory combination(s) (min_baseline_buckets above "
              "baseline_buckets: nothing could alert): "
              + "; ".join(", ".join(f"{k}={v:g}" for k, v in params.items()) for params, _ in contradictory),
              file=sys.stderr)
    classifier = CachedClassifier(build_classifier(settings.classifier))
    results: list[tuple[RunResult, Scores]] = []
    keys = sorted({inc.key for inc in incidents})
    bar = tqdm(combos, desc="backtest runs", unit="run", disable=not bar_wanted(progress) or len(combos) < 2,
               file=sys.stderr)
    for n, params in enumerate(bar):
        if n == 1:  # every parameter set replays the same input: report its malformed lines once
            settings = settings.model_copy(update={
                "source": settings.source.model_copy(update={"dead_letter_path": Path(os.devnull)})})
        result = await run_once(settings, classifier, params, trace_keys=keys, progress=progress)
        with_data, spanned = await _spans_s(result)
        first_neg = [result.store.first_negative_s(inc.key, inc.start_s, inc.end_s) for inc in incidents]
        results.append((result, score(fired_alerts(result), incidents, span_s=with_data, spanned_s=spanned,
                                      early_s=early_s, late_s=late_s, first_negative_s=first_neg,
                                      resolved_at_s=resolved_at_s(result))))
    return results


async def _spans_s(result: RunResult) -> tuple[int, int]:
    """(with data, spanned) event time of the replayed history: spanned from the first bucket to the end of the last;
    with data, what the rates per day are over, leaves out every stretch with no message longer than any market
    closure (``MAX_CLOSURE_S``, the jump guard's bound for a real gap in the data). Over the span, a 58-day
    collection gap read 11 false alarms in 4 days with data as 0.18/day (found by review); weekends and holidays
    still count, as days the desk watches."""
    starts = [b.start_s for b in await result.store.buckets(ALL_KEY, 0, 2**40)]
    if not starts:
        return 0, 0
    bucket_s = result.store.bucket_s
    spanned = starts[-1] - starts[0] + bucket_s
    gaps = sum(gap for before, after in pairwise(starts) if (gap := after - before - bucket_s) > MAX_CLOSURE_S)
    return spanned - gaps, spanned


def input_line(stats: PipelineStats, dead_letters: Path) -> str:
    """Where every input row went (the backtest said only "recall 0.00" when every row was rejected or late;
    found by review)."""
    after_read = [reason for reason, _ in stats.refusals()]
    included = f" (the {' and '.join(after_read)} ones included)" if after_read else ""
    kept = f", kept with their reasons in {dead_letters}" if stats.dead_letters else ""
    return (f"input: {stats.read} valid messages ({stats.applied} counted, {stats.duplicates} duplicates, "
            f"{stats.late} late{refused_counts(stats)}); {stats.dead_letters} rows rejected{included}{kept}")


async def incident_notes(result: RunResult, incidents: Sequence[Incident],
                         lead_times_s: Sequence[int | None] = ()) -> list[str]:
    """Per incident, why it could not be detected at all ("" when it could, or when ``lead_times_s`` says it was): a
    key that never occurs in the input (a typo, another spelling), a span outside the replayed history or inside a
    gap of the input (found by review) looked like a detector's miss."""
    every = await result.store.buckets(ALL_KEY, 0, 2**40)
    bucket_s = result.store.bucket_s
    detected = [lead is not None for lead in lead_times_s] or [False] * len(incidents)
    notes = []
    for inc, found in zip(incidents, detected, strict=True):
        if found:  # an episode already firing, or an alert in the late margin, can detect an incident in a gap
            notes.append("")
        elif not await result.store.buckets(inc.key, 0, 2**40):
            notes.append("no message on this key in the input")
        elif not every or inc.end_s < every[0].start_s or inc.start_s > every[-1].start_s + bucket_s:
            notes.append("outside the replayed history")
        elif not await result.store.buckets(ALL_KEY, inc.start_s - bucket_s + 1, inc.end_s + 1):
            notes.append("no message in the input during the incident")
        else:
            notes.append("")
    return notes


def _days(s: Scores) -> str:
    """The days the rates per day are over, and the span when gaps were left out of them."""
    with_data = f"{s.span_s / 86_400:.1f} days"
    return with_data if s.spanned_s <= s.span_s else f"{with_data} with data, {s.spanned_s / 86_400:.1f} spanned"


def plot_name(index: int, key: str) -> str:
    """A file name for any key (``ticker:BRK/B`` made a path into a missing directory after the whole run)."""
    return f"incident_{index}_{re.sub(r'[^A-Za-z0-9._-]', '_', key)}.png"


def ticker_mapping(settings: Settings) -> Callable[[str], str]:
    """How the run's entity linking names a company's other symbols (the watchlist's ``symbols``: FB is META), so
    incident keys are scored against the windows their stories are counted in; unchanged without linking."""
    enricher = build_enricher(settings)
    linker = enricher.linker if enricher is not None else None
    return linker.company_ticker if linker is not None else (lambda symbol: symbol)


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    dead_letters = args.out / DEAD_LETTER_FILE
    isolated = isolated_settings(settings, sinks=[], dead_letter_path=dead_letters, replay_paths=args.input)
    incidents = load_incidents(args.events, ticker_mapping(isolated), ZoneInfo(isolated.source.naive_time_zone))
    results = await run_backtest(isolated, incidents, args.sweep, early_s=args.early_s, late_s=args.late_s,
                                 progress=not args.no_progress)
    best = max(range(len(results)), key=lambda i: _rank(results[i][1]))
    args.out.mkdir(parents=True, exist_ok=True)
    best_result = results[best][0]
    read = input_line(results[0][0].stats, dead_letters)  # every run reads the same input
    print(read)
    s = results[best][1]
    notes = await incident_notes(best_result, incidents, s.lead_times_s)
    for i, (inc, why) in enumerate(zip(incidents, notes, strict=True)):
        if why:
            print(f"warning: incident {i} ({inc.key}, {inc.description or 'no description'}): {why} -- check its "
                  "key's spelling and the times in --events", file=sys.stderr)
    plots = []
    for i, inc in enumerate(incidents):
        path = args.out / plot_name(i, inc.key)
        await plot_incident(best_result, inc, path, why=notes[i])
        plots.append(path)
    rows = [(r.params, s) for r, s in results]
    false_alarms = [best_result.firing[i] for i in results[best][1].false_alarm_indices]
    (args.out / "report.md").write_text(
        markdown(rows, best, incidents, plots, args.out, false_alarms, read=read, notes=notes), encoding="utf-8")
    with (args.out / "alerts.jsonl").open("w", encoding="utf-8") as fh:
        for note in best_result.notifications:
            fh.write(json.dumps(note.to_dict(), ensure_ascii=False) + "\n")
    print(f"best {best_result.params or 'defaults'}: precision {s.precision_text}, recall {s.recall_text}, "
          f"false alarms/day {s.false_alarms_per_day:.2f}, median detection delay "
          f"{'-' if s.lead_time_median_s is None else f'{s.lead_time_median_s / 60:.0f} min'}")
    undetectable = sum(1 for note in notes if note)  # recall counts them as misses: say so beside it (review)
    of_rest = f" ({undetectable} could not be detected, see the report)" if undetectable else ""
    print(f"detected {s.detected}/{s.incidents}{of_rest}; firing notifications {s.alerts} "
          f"({s.alerts_per_day:.2f}/day over {_days(s)}); median delay from first negative message "
          f"{'-' if s.from_first_negative_median_s is None else f'{s.from_first_negative_median_s / 60:.0f} min'}")
    print(f"report: {args.out / 'report.md'}")
    return run_verdict(results[0][0].stats, rows_expected=True)


def backtest_command(argv: Sequence[str], settings: Settings) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    require_files(parser, "--input", args.input, "pass JSONL/CSV message files")
    require_files(parser, "--events", [args.events], "pass a CSV with key,start,end[,description] rows",
                  "*.csv")
    require_writable_dir(parser, "--out", args.out, args.out)
    clear_outputs(parser, args, settings)
    return asyncio.run(_main(args, settings))


def clear_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> None:
    """Start the run's dead-letter file afresh (``clear_dead_letters``: it was appended to across runs while the
    input line counted one run's rejected rows; found by review), refusing an ``--input`` that is that file or a
    rotation of it, and an ``--out`` where they would be the daemon's dead letters (``own_dead_letters``)."""
    isolated = isolated_settings(settings, sinks=[], dead_letter_path=args.out / DEAD_LETTER_FILE,
                                 replay_paths=args.input)
    dead_letters = own_dead_letters(parser, settings, isolated, args.input, "backtest", "choose another --out")
    try:
        clear_dead_letters(dead_letters)
    except OSError as exc:
        parser.error(f"--out {args.out}: cannot replace its dead-letter file ({exc.strerror or exc}) -- choose another "
                     "directory")

