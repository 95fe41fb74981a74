"""Pure scoring of fired alerts against labelled incidents.

Matching rule (documented in the README): an alert (one window key of a firing notification) *detects*
an incident when its key is the incident key or belongs to its group (``topic_ticker:*|BA`` belongs to
``ticker:BA``) and it fires inside ``[incident.start - early_s, incident.end + late_s]``, or its episode
was already firing when the incident started (detected early). One alert detects one incident: the one
under way, else the latest that just ended, else the next one. Only an episode's first notification picks an
incident: a reminder (same dedup key and start) takes the verdict of the episode. Aggregate keys (``all``,
``topic:*``) and keys related to the incident (sharing its ticker, ``ticker:BA`` for
``topic_ticker:earnings|BA``, or, where one of them names no ticker, its topic) that fire inside an incident
window are *attributed* to it (the incident moved them): neither hits nor false alarms. Everything else is a
false alarm; a notification that detects an incident and also names an unrelated key counts as a hit *and* a
false alarm. Lead time is detection delay: first detection minus incident start (negative = early); it is also
measured from the incident's first negative message (when the caller knows it), which is what a detector can
react to at the earliest.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path

from consumers.replay import lines_inside_fields
from consumers.schema import TICKER, InvalidMessage, epoch_or_text, normalise_ticker, parse_event_time
from monitor.config import InputError
from monitor.windows.buckets import ALL_KEY, KEY_FORMS, KEY_KINDS, ticker_key, topic_ticker_key

DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Incident:
    key: str
    start_s: int
    end_s: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """One firing notification, reduced to what scoring needs."""

    at_s: int
    keys: tuple[str, ...]
    episodes: tuple[str, ...] = ()
    """Per key, the alert episode it announces (``dedup_key@started_at_s``); empty = a new one per key.
    A reminder repeats its episode's id: scored as the episode was, not as a new alert."""

    def episode_ids(self) -> tuple[str, ...]:
        return self.episodes or tuple(f"{k}@{self.at_s}" for k in self.keys)


@dataclass(frozen=True, slots=True)
class Scores:
    alerts: int
    hits: int
    attributed: int
    false_alarms: int
    incidents: int
    detected: int
    precision: float
    recall: float
    false_alarms_per_day: float
    lead_time_median_s: float | None
    lead_time_p90_s: float | None
    lead_times_s: tuple[int | None, ...]
    span_s: int = 0
    """Event time the replayed history has data for: the rates per day are over it."""
    spanned_s: int = 0
    """Event time it spans, first message to last, gaps in the data included."""
    false_alarm_indices: tuple[int, ...] = ()
    """Positions (in the scored alert list) of the false alarms, for the report."""
    from_first_negative_s: tuple[int | None, ...] = ()
    """Per incident: first match minus the incident's first negative message (None = missed/unknown)."""

    @property
    def precision_text(self) -> str:
        """Precision for people: "n/a" when nothing was scored (0.00 read as "every alert was wrong")."""
        return f"{self.precision:.2f}" if self.hits + self.false_alarms else "n/a"

    @property
    def recall_text(self) -> str:
        """Recall for people: "n/a" without incidents (0.00 read as "every incident was missed")."""
        return f"{self.recall:.2f}" if self.incidents else "n/a"

    @property
    def alerts_per_day(self) -> float:
        """Firing notifications per day over the history with data (hits, attributed and false alarms)."""
        return self.alerts / max(self.span_s / DAY_S, 1e-9)

    @property
    def from_first_negative_median_s(self) -> float | None:
        found = [v for v in self.from_first_negative_s if v is not None]
        return float(statistics.median(found)) if found else None


def _same(symbol: str) -> str:
    return symbol


def load_incidents(path: Path, ticker_of: Callable[[str], str] = _same, naive_zone: tzinfo = UTC) -> list[Incident]:
    """CSV with columns key,start,end[,description]; times ISO-8601 or epoch seconds. ``ticker_of`` maps a symbol to
    the ticker its windows are kept under (the watchlist's other symbols: ``ticker:FB`` is scored against
    ``ticker:META``, where FB stories are counted; an incident on a former ticker was otherwise missed). A bad row is a
    ``ValueError`` naming the file, the line, the column and the fix (a missing cell was an AttributeError,
    a bad time blamed ``published_at``, and an end before its start or a key like ``BA`` scored recall 0); so is
    a row repeating an earlier one's key, start and end (it was counted as a second incident)."""
    try:
        return _read_incidents(path, ticker_of, naive_zone)
    except (UnicodeDecodeError, csv.Error) as exc:  # a generic "monitor backtest failed" that named no file
        raise InputError(f"--events {path}: not a UTF-8 CSV file the csv module can read ({exc}) -- save it as UTF-8 "
                         "CSV with columns key,start,end[,description], every quote closed") from exc


def _read_incidents(path: Path, ticker_of: Callable[[str], str], naive_zone: tzinfo) -> list[Incident]:
    with path.open(encoding="utf-8-sig", newline="") as fh:  # -sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(fh)
        # names read without case and surrounding spaces, as a messages CSV's header is (consumers.replay.csv_columns):
        # "Key, Start, End" was "missing ['end', 'key', 'start']" (found by review)
        header = list(reader.fieldnames or ())
        reader.fieldnames = names = [name.strip().lower() for name in header]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:  # DictReader keeps the last one: an empty ``Key`` after ``key`` emptied every row
            raise InputError(f"--events {path}: the header names column(s) {', '.join(repeated)} more than once "
                             f"(names are read without case and surrounding spaces; found {', '.join(header)}) -- "
                             "rename or remove the extra column(s)")
        missing = {"key", "start", "end"} - set(names)
        if missing:
            raise InputError(f"--events {path}: incident file needs a header with columns "
                             f"key,start,end[,description] (missing {sorted(missing)})")
        incidents: list[Incident] = []
        first_line: dict[tuple[str, int, int], int] = {}
        line_before = reader.line_num
        for row in reader:
            where = f"--events {path}:{reader.line_num}"
            if _swallows_a_row(row):  # the next incident became this one's description: recall over one fewer
                raise InputError(f"--events {path}:{line_before + 1}: a quote opened here closes only on line "
                                 f"{reader.line_num}, and a line inside it is an incident of its own -- close the "
                                 "quote")
            line_before = reader.line_num
            incident = _incident(row, where, ticker_of, naive_zone)
            same = (incident.key, incident.start_s, incident.end_s)
            if same in first_line:  # counted twice: "detected 0/2" for one incident
                raise InputError(f"{where}: repeats line {first_line[same]} (same key, start and end) -- "
                                 "remove the duplicate row")
            first_line[same] = reader.line_num
            incidents.append(incident)
        return incidents


def _swallows_a_row(row: dict[str, str | None]) -> bool:
    """A multi-line cell with a line that is an incident row of its own: a window key (``ticker:BA``, ``all``; a
    description line such as ``Timeline: FAA grounding at 02:00, ...`` is not one: found by review), then at least
    start and end."""
    def is_key(cell: str) -> bool:
        kind, colon, rest = cell.strip().partition(":")
        return cell.strip() == ALL_KEY or bool(colon and f"{kind.lower()}:" in KEY_KINDS and rest and " " not in rest)

    return any(len(cells) >= 3 and is_key(cells[0])
               for cells in (next(csv.reader([line]), []) for line in lines_inside_fields(row)))


_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")


def _incident(row: dict[str, str | None], where: str, ticker_of: Callable[[str], str], naive_zone: tzinfo) -> Incident:
    cells = {name: (row.get(name) or "").strip() for name in ("key", "start", "end", "description")}
    for name in ("key", "start", "end"):
        if not cells[name]:
            raise InputError(f"{where}: column {name!r} is empty -- every incident needs key, start and end")
    key = _canonical_key(cells["key"], where, ticker_of)
    times = {}
    for name in ("start", "end"):
        if _DATE_ONLY.fullmatch(cells[name]):  # a whole day read as its first second: the incident was missed
            raise InputError(f"{where}: column {name!r} = {cells[name]!r} has no time of day -- give one "
                             f"({cells[name]}T14:00:00Z), as messages must")
        try:
            # a time without an offset is read as messages are (source.naive_time_zone): labelled in the feed's
            # local clock, every incident was shifted by its offset from UTC (found by review)
            times[name] = int(parse_event_time(epoch_or_text(cells[name]), naive_zone).timestamp())
        except InvalidMessage as exc:
            raise InputError(f"{where}: column {name!r} = {cells[name]!r} is not a time -- use ISO-8601 "
                             "(2015-10-14T12:00:00Z) or epoch seconds") from exc
    if times["end"] < times["start"]:
        raise InputError(f"{where}: end {cells['end']!r} is before start {cells['start']!r}")
    return Incident(key=key, start_s=times["start"], end_s=times["end"], description=cells["description"])


def _canonical_key(raw: str, where: str, ticker_of: Callable[[str], str] = _same) -> str:
    """The key as the window key builders spell it: its ticker normalised as a message's is (``ticker:ba``,
    ``ticker:$BA``, ``TICKER: BA``, ``ticker:BRK-B`` never matched a window and scored recall 0, the real
    detections false alarms; found by review), the kind and a topic in lower case (topics are lower_snake names:
    ``topic:Earnings`` matched no window either); an ``InputError`` naming the fix when it names no window."""
    kind, colon, rest = raw.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if raw.strip().lower() == ALL_KEY:
        return ALL_KEY
    if colon and f"{kind}:" in KEY_KINDS and rest:
        if kind == "topic":
            return f"topic:{rest.lower()}"
        if kind == "ticker" and TICKER.fullmatch(ticker := normalise_ticker(rest)):
            return ticker_key(ticker_of(ticker))
        topic, _, symbol = rest.rpartition("|")
        if kind == "topic_ticker" and topic.strip() and TICKER.fullmatch(ticker := normalise_ticker(symbol)):
            return topic_ticker_key(topic.strip().lower(), ticker_of(ticker))
    guess = normalise_ticker(rest if colon else raw)
    hint = f" (did you mean ticker:{guess}?)" if TICKER.fullmatch(guess) else ""
    raise InputError(f"{where}: key {raw!r} names no window -- use {KEY_FORMS}{hint}")


def belongs(key: str, incident_key: str) -> bool:
    """Is window ``key`` the incident's key or one of its group (``topic_ticker:*|BA`` for ``ticker:BA``)?"""
    if key == incident_key:
        return True
    if incident_key.startswith("ticker:") and key.startswith("topic_ticker:"):
        return key.rsplit("|", 1)[-1] == incident_key.split(":", 1)[1]
    return False


def _topic_and_ticker(key: str) -> tuple[str | None, str | None]:
    kind, _, value = key.partition(":")
    if kind == "topic_ticker":
        topic, _, ticker = value.rpartition("|")
        return topic, ticker
    return (value, None) if kind == "topic" else (None, value) if kind == "ticker" else (None, None)


def related(key: str, incident_key: str) -> bool:
    """Does window ``key`` share the incident's ticker (``ticker:BA`` and ``topic_ticker:*|BA``) or, where one of
    them names no ticker, its topic (``topic:earnings`` and ``topic_ticker:earnings|*``)? The engine pages such keys
    together; firing with the incident, they were counted as false alarms (found by review)."""
    topic, ticker = _topic_and_ticker(key)
    inc_topic, inc_ticker = _topic_and_ticker(incident_key)
    if ticker is not None and inc_ticker is not None:
        return ticker == inc_ticker
    return topic is not None and topic == inc_topic


def _aggregate(key: str) -> bool:
    return key == "all" or key.startswith("topic:")


def _percentile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def incident_for(key: str, at_s: int, incidents: Sequence[Incident], early_s: int, late_s: int) -> int | None:
    """The one incident an alert on ``key`` at ``at_s`` detects: the one under way, else the latest that
    ended within ``late_s`` before it, else the next starting within ``early_s`` (one alert detected two
    incidents when the first one's late margin reached into the second)."""
    near = [(i, inc) for i, inc in enumerate(incidents)
            if belongs(key, inc.key) and inc.start_s - early_s <= at_s <= inc.end_s + late_s]
    during = [(inc.start_s, i) for i, inc in near if inc.start_s <= at_s <= inc.end_s]
    ended = [(inc.end_s, i) for i, inc in near if inc.end_s < at_s]
    if during or ended:
        return max(during or ended)[1]
    return min(((inc.start_s, i) for i, inc in near), default=(0, None))[1]


def _ongoing(alerts: Sequence[FiredAlert], incidents: Sequence[Incident], early_s: int, late_s: int,
             resolved_at_s: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Episodes that started before an incident's early margin, detected no incident of their own, and were still
    firing at its start: episode id -> (incident, episode's first notification time). The desk was already paged
    about the key (before, the first notice was a false alarm and a reminder hours later the detection). One that
    detected an incident is not credited with the next one on its key: a story firing for a day "detected" a
    follow-up label with no burst in the data, 20 hours early (found by review)."""
    first: dict[str, tuple[int, str]] = {}
    for alert in alerts:
        for key, episode in zip(alert.keys, alert.episode_ids(), strict=True):
            first.setdefault(episode, (alert.at_s, key))
    found: dict[str, tuple[int, int]] = {}
    # earliest incident first: in file order, an unsorted CSV credited the episode to a later incident (review)
    for i, inc in sorted(enumerate(incidents), key=lambda pair: (pair[1].start_s, pair[1].end_s)):
        for episode, (at_s, key) in first.items():
            if (at_s < inc.start_s - early_s and resolved_at_s.get(episode, inc.start_s) >= inc.start_s
                    and belongs(key, inc.key) and episode not in found
                    and incident_for(key, at_s, incidents, early_s, late_s) is None):
                found[episode] = (i, at_s)
    return found


def score(
    alerts: Sequence[FiredAlert],
    incidents: Sequence[Incident],
    *,
    span_s: int,
    spanned_s: int | None = None,
    early_s: int = 0,
    late_s: int = 3600,
    first_negative_s: Sequence[int | None] = (),
    resolved_at_s: Mapping[str, int] | None = None,
) -> Scores:
    """``alerts`` in firing order; ``span_s``: event time with data (the rates per day are over it), ``spanned_s``:
    first to last message, gaps included (default ``span_s``); ``resolved_at_s``: episode id -> when it resolved
    (absent = it never did, or episodes are unknown)."""
    first_hit: dict[int, int] = {}
    detected_by: dict[str, int] = {}
    for episode, (i, at_s) in _ongoing(alerts, incidents, early_s, late_s, resolved_at_s or {}).items():
        detected_by[episode] = i
        first_hit[i] = min(first_hit.get(i, at_s), at_s)
    hits = attributed = false_alarms = 0
    false_idx: list[int] = []
    seen: set[str] = set()
    for n, alert in enumerate(alerts):
        hit = stray = False
        during = [inc for inc in incidents if inc.start_s - early_s <= alert.at_s <= inc.end_s + late_s]
        for key, episode in zip(alert.keys, alert.episode_ids(), strict=True):
            first = episode not in seen
            seen.add(episode)
            if episode in detected_by:
                hit = True  # a reminder of an episode that detected an incident, or one already firing at its start
            elif first and (target := incident_for(key, alert.at_s, incidents, early_s, late_s)) is not None:
                # only an episode's first notification picks an incident: a 4-hourly reminder "detected" the next
                # incident on its key, so recall depended on alerts.repeat_interval_s (found by review)
                first_hit[target] = min(first_hit.get(target, alert.at_s), alert.at_s)
                detected_by[episode] = target
                hit = True
            elif not (_aggregate(key) or any(related(key, inc.key) and not belongs(key, inc.key) for inc in during)):
                # an unrelated key; or a reminder, on an incident's key, of an episode that detected nothing: a false
                # alarm as its first notice was (it began before the early margin and ended before the start)
                stray = True
        hits += hit
        if hit and not stray:
            continue
        if not hit and not stray and during:
            attributed += 1
        else:
            false_alarms += 1
            false_idx.append(n)
    lead = tuple(first_hit[i] - inc.start_s if i in first_hit else None for i, inc in enumerate(incidents))
    found = [v for v in lead if v is not None]
    scored = hits + false_alarms
    return Scores(
        alerts=len(alerts),
        hits=hits,
        attributed=attributed,
        false_alarms=false_alarms,
        incidents=len(incidents),
        detected=len(found),
        precision=hits / scored if scored else 0.0,
        recall=len(found) / len(incidents) if incidents else 0.0,
        false_alarms_per_day=false_alarms / max(span_s / DAY_S, 1e-9),
        lead_time_median_s=float(statistics.median(found)) if found else None,
        lead_time_p90_s=_percentile(found, 0.9) if found else None,
        lead_times_s=lead,
        span_s=span_s,
        spanned_s=span_s if spanned_s is None else spanned_s,
        false_alarm_indices=tuple(false_idx),
        from_first_negative_s=tuple(
            first_hit[i] - neg if i in first_hit and neg is not None else None
            for i, neg in enumerate(first_negative_s)
        ),
    )
