"""Value objects that leave the alerting core: notifications, their items and evidence, silences.

Frozen dataclasses, serialized with one pydantic ``TypeAdapter`` each, so the outbox, the state
store and every sink agree on one wire format (JSON) without hand-written converters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter

from alerts.detectors import Signal
from monitor.windows.buckets import EvidenceItem

MAX_FINDINGS_SHOWN = 3


def as_is(text: str) -> str:
    return text


def angle_link(url: str) -> str:
    return f"<{url}>"


class AlertStatus(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def signal_lines(s: Signal) -> list[str]:
    """Why an alert fired, one line per finding (the multi-scale detectors' counts against the expected count),
    or the per-bucket detectors' numbers; shared by every sink so they all show the same numbers."""
    if s.findings:
        return [f"{f.name} {f.negatives} negative of {f.volume} messages vs {f.expected:.1f} expected,"
                f" -log10 p {f.log10p:.1f}, baseline {f.baseline:.3g} observed {f.observed:.3g}"
                for f in s.findings[:MAX_FINDINGS_SHOWN]]
    return [f"neg_share {s.neg_share:.0%} vs baseline {s.baseline_neg_share:.0%} ({s.baseline_kind}),"
            f" z={s.z_ewma:.1f}/{s.z_robust:.1f}, cusum={s.cusum:.1f}, volume={s.volume},"
            f" mean_score={s.mean_score:+.2f}, detectors={','.join(s.triggered) or '-'}"]


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

    @property
    def item_id(self) -> str:
        """Stable id of this (alert, episode, state, sequence): the unit of exactly-once delivery.

        The episode start is part of it because ``sequence`` restarts when an old resolved state is
        pruned: without it a later, genuinely new episode would reuse an id the outbox already
        delivered and be dropped as a duplicate."""
        return f"{self.dedup_key}:{self.started_at_s}:{self.status}:{self.sequence}"


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

    def headline(self, escape: Callable[[str], str] = as_is) -> str:
        """The title, with each window key (user text: tickers, topics) passed through ``escape``."""
        keys = ", ".join(escape(a.window_key) for a in self.alerts)
        if self.status is AlertStatus.RESOLVED:
            return f"[RESOLVED] negative sentiment back to normal: {keys}"
        return f"[FIRING] negative sentiment spike: {keys}"

    def summary_lines(self, escape: Callable[[str], str] = as_is, link: Callable[[str], str] = angle_link
                      ) -> list[str]:
        """Human-readable lines (Slack, email): numbers first, then the masked evidence.

        User-derived pieces (window keys, evidence source and text) go through ``escape`` and evidence
        URLs through ``link``, so a markup target (Slack's mrkdwn) can neutralise them; the defaults
        keep plain text for email."""
        lines = [self.headline(escape)]
        for a in self.alerts:
            key = escape(a.window_key)
            flap = " [flapping]" if a.flapping else ""
            lines += [f"- {key}: {line}{flap}" for line in signal_lines(a.signal)]
            for ev in a.evidence:
                url = f" {link(ev.url)}" if ev.url else ""
                lines.append(f"    {ev.score:+.2f} [{escape(ev.source)}] {escape(ev.text)}{url}")
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
