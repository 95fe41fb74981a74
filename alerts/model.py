"""Value objects that leave the alerting core: notifications, their items and evidence, silences.

Frozen dataclasses, serialized with one pydantic ``TypeAdapter`` each, so the outbox, the state
store and every sink agree on one wire format (JSON) without hand-written converters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter

from alerts.detectors import Finding, Signal
from monitor.durations import duration
from monitor.windows.buckets import EvidenceItem

MAX_FINDINGS_SHOWN = 3
_WHITESPACE = re.compile(r"\s+")
MULTISCALE = "multiscale"


def as_is(text: str) -> str:
    return text


def angle_link(url: str) -> str:
    return f"<{url}>"


_INVISIBLE = re.compile("[\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
"""Zero-width spaces and direction controls: a U+202E in a tweet reversed the rest of its line in Slack and
e-mail, the link label the engine adds after it too (found by review). The joiners U+200C/U+200D stay: emoji
sequences and Persian and Indic words need them."""


def one_line(text: str) -> str:
    """``text`` with every whitespace run (line breaks, tabs, U+2028/2029 included) as one space and invisible
    direction controls removed: evidence is untrusted, and a line break in a tweet broke the layout and could
    forge a line that read as a finding."""
    return _WHITESPACE.sub(" ", _INVISIBLE.sub("", text)).strip()


class AlertStatus(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def clock(epoch_s: float, ref_s: float | None = None) -> str:
    """``22:25`` (UTC), with the day (``Jan 26 22:25``) when it is not the day of ``ref_s``: a reminder or a
    6 h window may start the day before the notice."""
    t = datetime.fromtimestamp(epoch_s, tz=UTC)
    if ref_s is not None and t.date() == datetime.fromtimestamp(ref_s, tz=UTC).date():
        return t.strftime("%H:%M")
    return t.strftime("%b %d %H:%M")


def two_figures(x: float) -> str:
    """``0.021``, ``1.2``, ``38``, ``150``: two significant figures without exponents above 100. One decimal
    printed an expected count of 0.021 as "0.0", hiding how unusual 4 negatives were."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2g}"


def _usual_vs_now(f: Finding) -> str:
    """The finding's baseline and observed value with their unit (alerts/detectors.py ``Finding``)."""
    if f.detector in ("burst", "cusum"):
        return f"usual {two_figures(f.baseline)} negatives/h, now {two_figures(f.observed)}/h"
    if f.detector == "share":
        return f"negative share usual {f.baseline:.0%}, now {f.observed:.0%}"
    if f.detector == "score":
        return f"mean score usual {f.baseline:+.2f}, now {f.observed:+.2f}"
    return f"baseline {f.baseline:.3g}, observed {f.observed:.3g}"


def finding_line(f: Finding, bucket_end_s: int, ref_s: float | None = None) -> str:
    """One multi-scale finding: its window in UTC, the count against the expected count, the test's strength and
    the rates behind it, each with its unit."""
    start_s = f.start_s or bucket_end_s - f.scale_s
    strength = f"LLR {f.log10p:.1f} nats" if f.detector == "cusum" else f"-log10 p {f.log10p:.1f}"
    return (f"{f.name} {clock(start_s, ref_s)}\u2013{clock(bucket_end_s, ref_s)} UTC: {f.negatives} negative of"
            f" {f.volume} messages vs {two_figures(f.expected)} expected ({strength}); {_usual_vs_now(f)}")


def signal_lines(s: Signal, ref_s: float | None = None) -> list[str]:
    """Why an alert fired, one line per finding (the multi-scale detectors' counts against the expected count),
    or the per-bucket detectors' numbers; shared by every sink so they all show the same numbers. A multi-scale
    signal without a finding has no z-scores (its z fields hold -log10 p, its CUSUM is in nats): it says so."""
    if s.findings:
        return [finding_line(f, s.bucket_end_s, ref_s) for f in s.findings[:MAX_FINDINGS_SHOWN]]
    if s.baseline_kind == MULTISCALE:
        return [f"no finding: {s.volume} message{'' if s.volume == 1 else 's'}, {s.neg_share:.0%} negative"
                f" (usual {s.baseline_neg_share:.0%})"]
    return [f"neg_share {s.neg_share:.0%} vs baseline {s.baseline_neg_share:.0%} ({s.baseline_kind}),"
            f" z={s.z_ewma:.1f}/{s.z_robust:.1f}, cusum={s.cusum:.1f}, volume={s.volume},"
            f" mean_score={s.mean_score:+.2f}, detectors={','.join(s.triggered) or '-'}"]


def evidence_line(ev: EvidenceItem, ref_s: float | None = None, quote: Callable[[str], str] = as_is) -> str:
    """``22:23 UTC -0.95 [news] text``: the message's time, score, source and text (one line, through ``quote``)."""
    source, text = quote(one_line(ev.source)), quote(one_line(ev.text))
    return f"{clock(ev.event_time_s, ref_s)} UTC {ev.score:+.2f} [{source}] {text}"


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One alert (rule x window key) inside a notification."""

    dedup_key: str
    rule: str
    window_key: str
    status: AlertStatus
    sequence: int
    started_at_s: int
    signal: Signal
    flapping: bool = False
    repeat: bool = False
    evidence: tuple[EvidenceItem, ...] = ()
    """The most negative messages of the bucket, PII-masked (alerts/evidence.py)."""
    firing_signal: Signal | None = None
    """RESOLVED: the signal the episode was last paged with (``signal`` is the quiet bucket that resolved it, whose
    numbers read as a surge while the notice said "back to normal"). None in notices from before it existed."""
    quiet_for_s: int | None = None
    """RESOLVED: how long the key went without a finding before it resolved (the resolve rule, alerts/lifecycle.py)."""
    peak_signal: Signal | None = None
    """RESOLVED: the episode's strongest signal, when it is not ``firing_signal`` (how bad it got after the page)."""

    @property
    def item_id(self) -> str:
        """Stable id of this (alert, episode, state, sequence): the unit of exactly-once delivery.

        The episode start is part of it because ``sequence`` restarts when an old resolved state is
        pruned: without it a later, genuinely new episode would reuse an id the outbox already
        delivered and be dropped as a duplicate."""
        return f"{self.dedup_key}:{self.started_at_s}:{self.status}:{self.sequence}"

    @property
    def why(self) -> Signal:
        """The numbers that explain the notice: what fired, also in a RESOLVED one."""
        return self.firing_signal or self.signal

    def state_line(self, now_s: int) -> str:
        """Since when it fires (and whether this is a reminder), or, resolved, when it fired, for how long, and
        why it counts as resolved: ``quiet_for_s`` without a finding, not a share back at its baseline."""
        since = clock(self.started_at_s, now_s)
        flap = ", flapping" if self.flapping else ""
        if self.status is AlertStatus.RESOLVED:
            quiet = f"no finding for {duration(self.quiet_for_s)}" if self.quiet_for_s else "no finding"
            return (f"quiet again at {clock(now_s, now_s)} UTC: {quiet}; fired {since} UTC,"
                    f" lasted {duration(now_s - self.started_at_s)}{flap}")
        if self.repeat:
            return f"still firing since {since} UTC (reminder){flap}"
        return f"firing since {since} UTC{flap}"


def fit_keys(keys: list[str], max_chars: int | None) -> str:
    """``keys`` joined, or as many whole keys as fit in ``max_chars`` and ``+N more``: a cut inside a key named
    another key (``topic_ticker:mergers_acquisitions|GOOGL`` lost its ``|GOOGL``)."""
    text = ", ".join(keys)
    if max_chars is None or len(text) <= max_chars:
        return text
    shown, width = 0, -len(", ")
    while width + len(", ") + len(keys[shown]) + len(f" +{len(keys) - shown - 1} more") <= max_chars:
        width += len(", ") + len(keys[shown])
        shown += 1
    if shown:
        return ", ".join(keys[:shown]) + f" +{len(keys) - shown} more"
    more = f" +{len(keys) - 1} more" if len(keys) > 1 else ""
    return keys[0][: max(0, max_chars - len(more) - 1)] + "\u2026" + more


@dataclass(frozen=True, slots=True)
class Notification:
    """What a sink delivers: related alerts (same group) that changed state in one evaluation."""

    id: str
    group_key: str
    status: AlertStatus
    event_time_s: int
    alerts: tuple[AlertItem, ...]

    @property
    def title(self) -> str:
        return self.headline()

    def _tag(self) -> str:
        """``[FIRING]``, ``[RESOLVED]``, or for reminders only ``[FIRING · reminder, since 22:25 UTC]``: a
        reminder looked exactly like a new page."""
        if self.status is AlertStatus.FIRING and self.alerts and all(a.repeat for a in self.alerts):
            since = clock(min(a.started_at_s for a in self.alerts), self.event_time_s)
            return f"[FIRING \u00b7 reminder, since {since} UTC]"
        return f"[{self.status.upper()}]"

    def headline(self, escape: Callable[[str], str] = as_is, max_chars: int | None = None) -> str:
        """The title, with each window key (user text: tickers, topics) passed through ``escape``; with
        ``max_chars`` (plain text only: an escaped key may be cut) whole keys and ``+N more``."""
        words = "quiet again" if self.status is AlertStatus.RESOLVED else "spike"
        head = f"{self._tag()} negative sentiment {words}: "
        keys = [escape(one_line(a.window_key)) for a in self.alerts]
        return head + fit_keys(keys, None if max_chars is None else max_chars - len(head))

    def summary_lines(self, escape: Callable[[str], str] = as_is, link: Callable[[str], str] = angle_link,
                      quote: Callable[[str], str] | None = None) -> list[str]:
        """Human-readable lines (Slack, email): per alert its state and times, its numbers, then the masked
        evidence with each message's time.

        Window keys go through ``escape``, evidence source and text (free text from anyone) through ``quote``
        (default: ``escape``) and evidence URLs through ``link``, so a markup target (Slack's mrkdwn) can
        neutralise them; the defaults keep plain text for email."""
        quote = quote or escape
        now_s = self.event_time_s
        lines = [self.headline(escape)]
        for a in self.alerts:
            lines.append(f"- {escape(one_line(a.window_key))}: {a.state_line(now_s)}")
            why = "" if a.status is not AlertStatus.RESOLVED else "why it fired: " if a.firing_signal else "latest: "
            lines += [f"  {why}{line}" for line in signal_lines(a.why, now_s)]
            if a.peak_signal is not None:
                lines += [f"  at its peak: {line}" for line in signal_lines(a.peak_signal, now_s)]
            for ev in a.evidence:
                url = f" {link(ev.url)}" if ev.url else ""
                lines.append(f"    {evidence_line(ev, now_s, quote)}{url}")
        return lines

    def to_json(self) -> bytes:
        return _NOTIFICATION.dump_json(self)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _NOTIFICATION.dump_python(self, mode="json")
        return result

    @classmethod
    def from_json(cls, data: bytes | str) -> Notification:
        return _NOTIFICATION.validate_json(data)


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes notifications whose window key (or group key) matches ``matcher`` until ``ends_at_s``.

    ``matcher`` is an exact key (``ticker:TSLA``) or a prefix ending in ``*`` (``topic:*``).
    Times are epoch seconds, compared with the evaluated bucket's end (event time, = wall time live).
    """

    id: str
    matcher: str
    starts_at_s: int
    ends_at_s: int
    comment: str = ""
    created_by: str = ""

    def matches_key(self, key: str) -> bool:
        if self.matcher.endswith("*"):
            return key.startswith(self.matcher[:-1])
        return key == self.matcher

    def active_at(self, now_s: int) -> bool:
        return self.starts_at_s <= now_s < self.ends_at_s

    def to_json(self) -> bytes:
        return _SILENCE.dump_json(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Silence:
        return _SILENCE.validate_json(data)


_NOTIFICATION: TypeAdapter[Notification] = TypeAdapter(Notification)
_SILENCE: TypeAdapter[Silence] = TypeAdapter(Silence)
