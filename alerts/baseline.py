"""Long-memory baselines for sparse keys: exponentially decayed rates against the stream's exposure.

The model, in one paragraph. A key's negatives in a fine bucket are Poisson with mean
``rate_k * exposure_k(t)``, where the *exposure* is the volume of the rest of the stream in that bucket
(``all`` minus the key itself). That one choice gives the time-of-day and weekday rhythm for free (the
stream is quiet at night, so is every key), and tells a collection gap from calm: a gap has no ``all``
volume, so it adds nothing to a key's exposure and nothing to its expected count, instead of reading as
a stretch of zeros (calm) or, after it, as a burst. ``rate_k`` is a gamma posterior over exponentially
decayed sums (half-life ``half_life_s``, weeks), shrunk toward the rate of the key's group (all
``ticker:`` keys, all ``topic:`` keys, ...) with ``prior_strength`` pseudo-negatives, so a key with
three messages in its life borrows the group's rate instead of claiming a rate of zero.

The rest of the stream sets the rhythm only where the key shares it: a key on its own rhythm (a Tokyo listing, a
coin traded all weekend) also keeps a ``RhythmProfile`` (alerts/rhythm.py) that weights its exposure by hour and day.

The baseline lags: it folds in a bucket only once it is older than ``lag_s`` (the longest test scale),
so a story building over a day is never part of its own baseline.

Everything here is pure: state advances bucket by bucket in event time, so a replay and a live run over
the same buckets hold the same numbers.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field

from alerts.rhythm import DAYS, HOURS, RhythmProfile, day_of, hour_of, zeros
from monitor.windows.buckets import ALL_KEY, BucketStats

MAX_QUIET_S = 3600
"""A whole stream silent for longer than this is a collection gap, not history (only for the
``min_history_s`` guard: the rates need no such rule, a gap carries no exposure)."""


def group_of(key: str) -> str:
    """Shrinkage group of a window key: its kind (``ticker``, ``topic``, ``topic_ticker``, ``all``)."""
    return key.split(":", 1)[0] if ":" in key else key


@dataclass(slots=True)
class Decayed:
    """Exponentially decayed sums, valued at the owner's horizon."""

    negative: float = 0.0
    volume: float = 0.0
    score: float = 0.0
    exposure: float = 0.0

    def scale(self, factor: float) -> None:
        self.negative *= factor
        self.volume *= factor
        self.score *= factor
        self.exposure *= factor

    def add(self, stats: BucketStats, weight: float) -> None:
        self.negative += weight * stats.negative
        self.volume += weight * stats.volume
        self.score += weight * stats.score_sum


@dataclass(frozen=True, slots=True)
class Rates:
    """A key's baseline as the tests use it (already shrunk toward its group)."""

    rate_shape: float
    """Gamma posterior shape of the negatives-per-exposure rate (pseudo + decayed negatives)."""
    rate_inverse_scale: float
    """Gamma posterior rate (pseudo + decayed exposure)."""
    neg_share: float
    """Baseline share of negatives among the key's messages."""
    share_weight: float
    """Decayed messages behind ``neg_share`` (plus pseudo-messages)."""
    mean_score: float
    history_s: int
    """Stream time with data (not gaps) inside the folded baseline."""

    @property
    def rate(self) -> float:
        return self.rate_shape / self.rate_inverse_scale if self.rate_inverse_scale > 0 else 0.0


@dataclass(slots=True)
class StreamState:
    """The whole stream: the ``all`` key's volume per fine bucket, folded and recent, plus the groups.

    ``recent`` holds the cumulative ``all`` volume of every bucket in ``(now - lag_s, now]`` (empty
    ones too), so the exposure of any window up to ``lag_s`` is one subtraction.
    """

    bucket_s: int
    lag_s: int
    half_life_s: float
    now_s: int | None = None
    horizon_s: int | None = None
    folded_all: float = 0.0
    """Decayed ``all`` volume folded up to ``horizon_s``."""
    folded_hours: array[float] = field(default_factory=lambda: zeros(HOURS))
    """``folded_all`` per UTC hour of day of the folded buckets (each key's rhythm exposure accrues from these)."""
    folded_days: array[float] = field(default_factory=lambda: zeros(DAYS))
    history_s: int = 0
    """Folded stream time, collection gaps (no message at all for over ``MAX_QUIET_S``) excluded."""
    last_data_s: int | None = None
    recent_cum: deque[tuple[int, int]] = field(default_factory=deque)
    """(bucket start, cumulative all volume through that bucket) for the recent buckets."""
    recent_all: deque[BucketStats] = field(default_factory=deque)
    recent_groups: deque[tuple[int, dict[str, BucketStats]]] = field(default_factory=deque)
    groups: dict[str, Decayed] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)
    cum_total: int = 0
    cum_at_horizon: int = 0

    @property
    def decay_per_s(self) -> float:
        return math.log(2.0) / self.half_life_s

    def weight(self, age_s: float) -> float:
        return math.exp(-self.decay_per_s * age_s)

    def advance(self, start_s: int, all_stats: BucketStats, group_sums: dict[str, BucketStats]) -> None:
        """Enter bucket ``start_s`` (consecutive buckets only; empty ones included)."""
        self.now_s = start_s
        self.cum_total += all_stats.volume
        self.recent_cum.append((start_s, self.cum_total))
        self.recent_groups.append((start_s, group_sums))
        if all_stats.volume:
            self.recent_all.append(all_stats)
        horizon = start_s - self.lag_s
        if self.horizon_s is None:
            self.horizon_s = horizon
        if horizon > self.horizon_s:
            factor = self.weight(horizon - self.horizon_s)
            self.folded_all *= factor
            for slots in (self.folded_hours, self.folded_days):
                for i in range(len(slots)):
                    slots[i] *= factor
            for g in self.groups.values():
                g.scale(factor)
            self.horizon_s = horizon
        while self.recent_cum and self.recent_cum[0][0] <= horizon:
            self.cum_at_horizon = self.recent_cum.popleft()[1]
        while self.recent_all and self.recent_all[0].start_s <= horizon:
            old = self.recent_all.popleft()
            w = self.weight(horizon - old.start_s)
            self.folded_all += w * old.volume
            self.folded_hours[hour_of(old.start_s)] += w * old.volume
            self.folded_days[day_of(old.start_s)] += w * old.volume
            for name, members in self.members.items():
                # exposure of the group's members: every member known when this bucket folds (each
                # key's own exposure runs from its creation on, see KeyBaseline.catch_up)
                self.groups.setdefault(name, Decayed()).exposure += w * members * old.volume
            since = old.start_s - self.last_data_s if self.last_data_s is not None else self.bucket_s
            self.history_s += since if since <= MAX_QUIET_S else self.bucket_s
            self.last_data_s = old.start_s
        while self.recent_groups and self.recent_groups[0][0] <= horizon:
            s, sums = self.recent_groups.popleft()
            w = self.weight(horizon - s)
            for name, stats in sums.items():
                self._fold_group(name, stats, w)

    def _fold_group(self, name: str, stats: BucketStats, w: float) -> None:
        g = self.groups.setdefault(name, Decayed())
        g.add(stats, w)
        g.exposure -= w * stats.volume

    def add_member(self, group: str) -> None:
        self.members[group] = self.members.get(group, 0) + 1

    def drop_member(self, group: str) -> None:
        self.members[group] = max(0, self.members.get(group, 0) - 1)

    def cumulative_through(self, start_s: int) -> int:
        """Cumulative ``all`` volume through the bucket at ``start_s`` (``start_s >= horizon``)."""
        if not self.recent_cum or start_s < self.recent_cum[0][0]:
            return self.cum_at_horizon
        index = (start_s - self.recent_cum[0][0]) // self.bucket_s
        return self.recent_cum[min(index, len(self.recent_cum) - 1)][1]

    def window_all_volume(self, window_s: int) -> int:
        """``all`` volume of the buckets in ``(now - window_s, now]``."""
        assert self.now_s is not None
        return self.cum_total - self.cumulative_through(self.now_s - window_s)

    def group_prior(self, group: str) -> tuple[float, float, float] | None:
        """(negatives per exposure, negative share, mean score) of ``group``; None before any history."""
        g = self.groups.get(group)
        if g is None or g.volume <= 0 or g.exposure <= 0:
            return None
        return g.negative / g.exposure, g.negative / g.volume, g.score / g.volume


@dataclass(slots=True)
class KeyBaseline:
    """One key's folded history (valued at ``horizon_s``) and its recent, not yet folded buckets."""

    key: str
    horizon_s: int
    folded_all_at_horizon: float
    """The stream's ``folded_all`` when this key was last brought to ``horizon_s``."""
    folded: Decayed = field(default_factory=Decayed)
    recent: deque[BucketStats] = field(default_factory=deque)
    rhythm: RhythmProfile | None = None
    """The key's own hour and weekday rhythm (alerts/rhythm.py), accrued from the stream since the key was created like
    its exposure; None: the stream's rhythm only."""

    def add_recent(self, stats: BucketStats) -> None:
        self.recent.append(stats)

    def catch_up(self, stream: StreamState) -> None:
        """Fold the key's buckets older than the stream's horizon and accrue its exposure since."""
        horizon = stream.horizon_s
        if horizon is None or horizon <= self.horizon_s:
            return
        factor = stream.weight(horizon - self.horizon_s)
        self.folded.scale(factor)
        self.folded.exposure += stream.folded_all - self.folded_all_at_horizon * factor
        self.folded_all_at_horizon = stream.folded_all
        self.horizon_s = horizon
        if self.rhythm is not None:
            self.rhythm.catch_up(factor)
        while self.recent and self.recent[0].start_s <= horizon:
            old = self.recent.popleft()
            w = stream.weight(horizon - old.start_s)
            self.folded.add(old, w)
            self.folded.exposure -= w * old.volume
            if self.rhythm is not None:
                self.rhythm.fold(old, w)

    def rates(self, stream: StreamState, prior_strength: float) -> Rates | None:
        """The shrunk baseline, or None while the key's group has no history at all."""
        prior = stream.group_prior(group_of(self.key)) if self.key != ALL_KEY else _all_prior(stream, self)
        if prior is None:
            return None
        group_rate, group_share, group_score = prior
        f = self.folded
        exposure = max(0.0, f.exposure)
        pseudo_exposure = prior_strength / group_rate if group_rate > 0 else 0.0
        pseudo_volume = prior_strength / group_share if group_share > 0 else prior_strength
        return Rates(
            rate_shape=prior_strength + f.negative,
            rate_inverse_scale=pseudo_exposure + exposure,
            neg_share=(prior_strength + f.negative) / (pseudo_volume + f.volume),
            share_weight=pseudo_volume + f.volume,
            mean_score=(pseudo_volume * group_score + f.score) / (pseudo_volume + f.volume),
            history_s=stream.history_s,
        )


def _all_prior(stream: StreamState, key: KeyBaseline) -> tuple[float, float, float] | None:
    """``all`` has no group and no rest-of-stream: its own folded share and score are its prior."""
    f = key.folded
    if f.volume <= 0:
        return None
    return 0.0, f.negative / f.volume, f.score / f.volume
