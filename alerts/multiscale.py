"""Multi-scale detection over fine buckets: one incremental state per key, advanced bucket by bucket.

Per closed bucket the engine hands over every key's stats for that bucket; ``step`` advances the
stream state (the ``all`` volume = exposure, group priors), folds each touched key's old buckets into
its long-memory baseline, and tests every window scale (``scales_s``, e.g. 30 min, 2 h, 6 h, 24 h,
each ending with the bucket just closed) with the count burst, share and score tests, plus the Poisson
CUSUM. A sudden story is significant at 30 min, a slow one at 6 h or 24 h; the alert fires at the
first bucket where *any* scale is, and says which.

Pure and event-time driven: no clock, no I/O, the same bucket sequence always gives the same signals,
whether it arrives one bucket per call (live) or many (replay). ``until_s`` tells the engine where
the state stands, so after a restart or a failed evaluation it rebuilds from the store instead of
counting a bucket twice.

Multiple testing: a key is tested at ``len(scales_s)`` scales per bucket, but overlapping windows
are strongly correlated (a 24 h window moved by 5 minutes is nearly the same test), so a key sees
roughly ``sum(1 day / scale)`` effectively independent tests a day per detector, ~66 for the default
scales. With a few hundred active keys that is ~10^4 tests a day: ``-log10 p >= 5`` keeps the chance
of a false alarm from the tests themselves well under one a day (production's burst level, 4, about one
a day at that many keys); the remaining ones are model error
(stories the baseline could not know about), which is what the backtest measures.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import structlog

from alerts.baseline import KeyBaseline, Rates, StreamState, group_of
from alerts.burst import HOUR_S, BurstParams, PoissonCusum, burst_test
from alerts.detectors import Finding, Signal
from alerts.rhythm import RhythmProfile, Weights, hour_segments, weighted_volume
from alerts.shift import ShiftParams, score_test, share_test
from monitor.windows.buckets import ALL_KEY, BucketStats, topic_key

if TYPE_CHECKING:
    from monitor.config import AlertSettings

log = structlog.get_logger("alerts.multiscale")


@dataclass(frozen=True, slots=True)
class MultiScaleConfig:
    bucket_s: int
    scales_s: tuple[int, ...] = (1800, 7200, 21600, 86400)
    half_life_s: float = 21 * 86400.0
    prior_strength: float = 2.0
    min_history_s: int = 12 * 3600
    max_keys: int = 20_000
    hour_profile: bool = True
    """Each key's own hour and weekday rhythm weights its exposure (alerts/rhythm.py); False: the stream's only."""
    burst: BurstParams = field(default_factory=BurstParams)
    shift: ShiftParams = field(default_factory=ShiftParams)

    def __post_init__(self) -> None:
        rounded = sorted({max(self.bucket_s, -(-s // self.bucket_s) * self.bucket_s) for s in self.scales_s})
        object.__setattr__(self, "scales_s", tuple(rounded))

    @property
    def lag_s(self) -> int:
        """The baseline excludes this much recent history (the longest scale)."""
        return max(self.scales_s)

    @classmethod
    def from_settings(cls, s: AlertSettings, bucket_s: int) -> MultiScaleConfig:
        return cls(
            bucket_s=bucket_s,
            scales_s=tuple(s.scales_s),
            half_life_s=float(s.baseline_half_life_s),
            prior_strength=s.prior_strength,
            min_history_s=s.min_history_s,
            max_keys=s.max_tracked_keys,
            hour_profile=s.hour_profile,
            burst=BurstParams(
                log10p=s.burst_log10p, min_negatives=s.burst_min_negatives,
                short_min_negatives=s.burst_short_min_negatives, short_log10p=s.burst_short_log10p,
                short_max_scale_s=s.burst_short_max_scale_s,
                share_gate_log10p=s.burst_share_gate_log10p, dispersion_shape=s.dispersion_shape,
                share_concentration=s.share_concentration, cusum_rate_ratio=s.cusum_rate_ratio,
                cusum_threshold_nats=s.cusum_threshold_nats,
            ),
            shift=ShiftParams(
                log10p=s.shift_log10p, min_volume=s.shift_min_volume, min_neg_share=s.min_neg_share,
                score_drop=s.score_drop_threshold, share_concentration=s.share_concentration,
            ),
        )


@dataclass(slots=True)
class KeyState:
    baseline: KeyBaseline
    cusum: PoissonCusum = field(default_factory=PoissonCusum)
    last_seen_s: int = 0
    active: bool = False
    spent_until_s: int | None = None
    """Once an episode ends, windows start here: a new episode needs evidence of its own, not the
    tail of a story that already paged (a 24 h window holds a story for a whole day)."""
    latest: deque[tuple[int, int]] = field(default_factory=deque)
    """(bucket start, messages) of the key's latest buckets holding ``MIN_MEMBER_MESSAGES`` messages."""
    member: bool = False
    expiry_ticket: int = 0
    """The ticket of this state's entry in the detector's expiry heap (0: none): one entry per key, pushed again
    when it comes due while the key is still a member (one entry per key-bucket grew the heap to 22 entries per key
    in a week of a real stream, ~200 KB per busy key: found by review). An entry whose ticket is not its key's
    current one belonged to an evicted state and is dropped."""
    sightings: float = 0.0
    """Buckets the key had messages in, decayed with the baseline's half-life to ``last_seen_s``: how established
    it is (a spam burst is one sighting however many messages it holds; a sparse real key is seen day after day)."""

    def member_until_s(self) -> int | None:
        """When its ``MIN_MEMBER_MESSAGES`` latest messages grow older than ``MEMBER_TTL_S`` (None: fewer seen)."""
        if sum(n for _, n in self.latest) < MIN_MEMBER_MESSAGES:
            return None
        return self.latest[0][0] + MEMBER_TTL_S


STEP_CHUNK_KEYS = 1000
"""Keys a ``stepping`` part observes or evaluates (about a tenth of a second of CPU)."""

EVICT_TO_SHARE = 0.9
"""Eviction goes down to this share of ``max_keys``: a full state is ranked once per tenth of it, not per bucket."""

MIN_MEMBER_MESSAGES = 3
"""Messages within ``MEMBER_TTL_S`` a key needs to count toward its group's exposure (the shrinkage prior's
denominator)."""
MEMBER_TTL_S = 7 * 86_400
"""A key is a member of its group while its ``MIN_MEMBER_MESSAGES`` latest messages are this recent (shorter than
``rebuild_history_s``, so a state rebuilt after a restart has the same members; a count without expiry let a
cashtag seen three times over weeks join: found by the regression review). Before, every key ever seen stayed a
member for good and added the whole stream's exposure: each one-off cashtag lowered its
group's rate, so brand-new keys paged on a pair and steady sparse keys, whose prior outweighed their own
history, saw bursts in their normal flow (found by review: 1,000 one-off tickers a day cut the ticker group's
rate 130-fold; 85 false key-days in 10 days on 50 steady tickers)."""


@dataclass(frozen=True, slots=True)
class _Window:
    negatives: int
    volume: int
    score_sum: float
    exposure: float
    start_s: int
    """Where the window starts: ``end - scale``, or later once an episode spent the key's earlier buckets."""


def _strength(f: Finding, cfg: MultiScaleConfig) -> float:
    threshold = {"burst": cfg.burst.log10p, "cusum": cfg.burst.cusum_threshold_nats}.get(f.detector, cfg.shift.log10p)
    return f.log10p / threshold if threshold > 0 else 0.0


class MultiScaleDetector:
    """The per-key states plus the stream state; see the module docstring."""

    def __init__(self, cfg: MultiScaleConfig) -> None:
        self.cfg = cfg
        self.stream = StreamState(cfg.bucket_s, cfg.lag_s, cfg.half_life_s)
        self.keys: dict[str, KeyState] = {}
        self.until_s: int | None = None
        """End of the last bucket stepped (None = fresh state)."""
        self.active: set[str] = set()
        """Keys whose last signal had a finding: they are evaluated until it ends (which marks their
        windows spent), also while the state is rebuilt from history."""
        self.expiries: list[tuple[int, str, int]] = []
        """Heap of (member until, key, ticket): at most one live entry per member key (``KeyState.expiry_ticket``)."""
        self._tickets = itertools.count(1)
        self._segment_cache: dict[tuple[int, int], list[tuple[int, int, int]]] = {}

    def step(self, start_s: int, buckets: Mapping[str, BucketStats], evaluate: Iterable[str]) -> list[Signal]:
        """Advance through the bucket at ``start_s`` (consecutive buckets only) and return a signal
        for every key in ``evaluate`` (keys with data there, keys with live alerts)."""
        return [sig for part in self.stepping(start_s, buckets, evaluate) for sig in part]

    def stepping(self, start_s: int, buckets: Mapping[str, BucketStats], evaluate: Iterable[str],
                 chunk_keys: int = STEP_CHUNK_KEYS) -> Iterator[list[Signal]]:
        """``step`` in parts of at most ``chunk_keys`` keys observed or evaluated, each part's signals yielded as it
        ends, so an async caller can let other tasks run between them: a bucket naming 96k spam tickers was one step
        of 12 s that froze the event loop (found by review). ``until_s`` is None until the bucket is observed, so a
        step left unfinished is never taken for a state standing at its start."""
        if self.until_s is not None and start_s != self.until_s:
            raise ValueError(f"buckets must be stepped in order: expected {self.until_s}, got {start_s}")
        self.until_s = None
        all_stats = buckets.get(ALL_KEY, BucketStats(ALL_KEY, start_s))
        groups: dict[str, BucketStats] = {}
        for key, stats in buckets.items():
            if key != ALL_KEY:
                g = group_of(key)
                groups[g] = stats if g not in groups else groups[g].merge(stats)
        self.stream.advance(start_s, all_stats, groups)
        self._segment_cache.clear()
        done = 0
        for key, stats in buckets.items():
            if stats.volume:
                self._observe(key, stats)
                done += 1
                if done % chunk_keys == 0:
                    yield []
        self._expire_members(start_s)
        self.until_s = start_s + self.cfg.bucket_s
        signals: list[Signal] = []
        for key in sorted(set(evaluate)):
            signals.append(self._signal(key, start_s))
            done += 1
            if done % chunk_keys == 0:
                yield signals
                signals = []
        self._evict()
        yield signals

    def _state(self, key: str, start_s: int) -> KeyState:
        state = self.keys.get(key)
        if state is None:
            horizon = self.stream.horizon_s if self.stream.horizon_s is not None else start_s - self.cfg.lag_s
            rhythm = RhythmProfile.starting(self.stream) if self.cfg.hour_profile and key != ALL_KEY else None
            state = KeyState(KeyBaseline(key, horizon, self.stream.folded_all, rhythm=rhythm))
            self.keys[key] = state
        return state

    def _count_member(self, key: str, st: KeyState, stats: BucketStats) -> None:
        """A key is in its group while it has ``MIN_MEMBER_MESSAGES`` messages within ``MEMBER_TTL_S``."""
        if key == ALL_KEY:
            return
        st.latest.append((stats.start_s, stats.volume))
        while len(st.latest) > 1 and sum(n for _, n in st.latest) - st.latest[0][1] >= MIN_MEMBER_MESSAGES:
            st.latest.popleft()
        until = st.member_until_s()
        if until is None or until < stats.start_s:
            return
        if not st.member:
            st.member = True
            self.stream.add_member(group_of(key))
        if not st.expiry_ticket:
            st.expiry_ticket = next(self._tickets)
            heapq.heappush(self.expiries, (until, key, st.expiry_ticket))

    def _leave_group(self, st: KeyState) -> None:
        if st.member:
            st.member = False
            self.stream.drop_member(group_of(st.baseline.key))

    def _expire_members(self, start_s: int) -> None:
        while self.expiries and self.expiries[0][0] < start_s:
            _, key, ticket = heapq.heappop(self.expiries)
            st = self.keys.get(key)
            if st is None or st.expiry_ticket != ticket:  # its state was evicted
                continue
            until = st.member_until_s()
            if st.member and until is not None and until >= start_s:
                heapq.heappush(self.expiries, (until, key, ticket))  # newer messages keep it a member: check again
                continue
            st.expiry_ticket = 0
            self._leave_group(st)

    def _weights(self, st: KeyState) -> Weights | None:
        """The key's rhythm weights as last recomputed (``RhythmProfile.refresh``, when the key was observed); a
        ``topic_ticker`` key borrows its ticker's (far more messages tell the same company's rhythm: a topic of a Tokyo
        ticker kept the stream's, and paged at night). Reading them recomputes nothing, so it may happen at any
        bucket: borrowing once also moved the ticker's refresh schedule (found by review)."""
        key = st.baseline.key
        if key.startswith("topic_ticker:") and "|" in key:
            ticker = self.keys.get("ticker:" + key.rsplit("|", 1)[1])
            if ticker is not None and ticker.baseline.rhythm is not None:
                st = ticker
        rhythm = st.baseline.rhythm
        return None if rhythm is None else rhythm.weights

    def _segments(self, start_s: int, end_s: int) -> list[tuple[int, int, int]]:
        """``hour_segments`` of the window, cached for the bucket being stepped (every key asks the same windows)."""
        window = (start_s, end_s)
        found = self._segment_cache.get(window)
        if found is None:
            found = self._segment_cache[window] = hour_segments(self.stream, start_s, end_s)
        return found

    def _exposure(self, st: KeyState, start_s: int, end_s: int, own_volume: int, weights: Weights | None,
                  own_weighted: float | None = None) -> float:
        """Rest-of-stream volume in the buckets ``[start_s, end_s)`` (all of it for ``all``... which has no rest: its
        count tests are off), each hour at the key's rhythm ``weights`` (``_weights``, asked once by the caller). The
        key's own ``own_volume`` is taken out at its own buckets' weights: ``own_weighted`` (default: all of it in the
        window's first bucket). At the window's average weight, a Tokyo key's own night flow, most of the stream then,
        inflated its expected count 3 to 7 times (found by review)."""
        if st.baseline.key == ALL_KEY:
            return 0.0
        s = self.stream
        if weights is None:
            raw = s.cumulative_through(end_s - self.cfg.bucket_s) - s.cumulative_through(start_s - self.cfg.bucket_s)
            return float(max(0, raw - own_volume))
        mine = weights.at(start_s) * own_volume if own_weighted is None else own_weighted
        return max(0.0, weighted_volume(self._segments(start_s, end_s), weights) - mine)

    def _advance_cusum(self, st: KeyState, start_s: int, rates: Rates | None) -> None:
        """Drift the CUSUM down over the buckets the key was silent in, up to ``start_s``."""
        c = st.cusum
        if c.last_s is None or rates is None:
            return
        gap_start = c.last_s + self.cfg.bucket_s
        if gap_start >= start_s:
            return
        horizon = self.stream.horizon_s or 0
        if gap_start <= horizon:
            c.quiet(float("inf"), self.cfg.burst.cusum_rate_ratio)
        else:
            c.quiet(self._exposure(st, gap_start, start_s, 0, self._weights(st)) * rates.rate,
                    self.cfg.burst.cusum_rate_ratio)
        c.last_s = start_s - self.cfg.bucket_s

    def _observe(self, key: str, stats: BucketStats) -> None:
        st = self._state(key, stats.start_s)
        st.baseline.catch_up(self.stream)
        if st.baseline.rhythm is not None:
            st.baseline.rhythm.refresh(self.stream)
        rates = st.baseline.rates(self.stream, self.cfg.prior_strength)
        self._advance_cusum(st, stats.start_s, rates)
        st.baseline.add_recent(stats)
        st.sightings = st.sightings * self.stream.weight(stats.start_s - st.last_seen_s) + 1.0
        st.last_seen_s = stats.start_s
        self._count_member(key, st, stats)
        if rates is not None and key != ALL_KEY:
            end_s = stats.start_s + self.cfg.bucket_s
            exposure = self._exposure(st, stats.start_s, end_s, stats.volume, self._weights(st))
            st.cusum.update(stats.start_s, stats.negative, stats.volume, exposure * rates.rate,
                            self.cfg.burst.cusum_rate_ratio)

    def _windows(self, st: KeyState, start_s: int) -> list[_Window]:
        """Negatives, volume, score and exposure of every scale's window ending with this bucket
        (one pass over the key's recent buckets, newest first)."""
        end_s = start_s + self.cfg.bucket_s
        out: list[_Window] = []
        newest_first = reversed(st.baseline.recent)
        pending = next(newest_first, None)
        neg, vol, score, mine = 0, 0, 0.0, 0.0
        weights = self._weights(st)
        spent = st.spent_until_s if st.spent_until_s is not None else end_s - self.cfg.lag_s
        for scale in self.cfg.scales_s:
            lo = max(end_s - scale, spent)
            while pending is not None and pending.start_s >= lo:
                neg, vol, score = neg + pending.negative, vol + pending.volume, score + pending.score_sum
                mine += pending.volume * (1.0 if weights is None else weights.at(pending.start_s))
                pending = next(newest_first, None)
            out.append(_Window(neg, vol, score, self._exposure(st, lo, end_s, vol, weights, mine), lo))
        return out

    def _signal(self, key: str, start_s: int) -> Signal:
        cfg = self.cfg
        st = self._state(key, start_s)
        st.baseline.catch_up(self.stream)
        rates = st.baseline.rates(self.stream, cfg.prior_strength)
        self._advance_cusum(st, start_s + cfg.bucket_s, rates)
        windows = self._windows(st, start_s)
        findings: list[Finding] = []
        suppressed: str | None = None
        if rates is None or rates.history_s < cfg.min_history_s:
            suppressed = "insufficient_history"
        else:
            previous_start_s: int | None = None
            for scale, w in zip(cfg.scales_s, windows, strict=True):
                if w.start_s == previous_start_s:
                    # cut to the same start as the shorter scale (the end of an episode): the same messages, so
                    # the same tests; reported once, at the shorter scale (four "burst@30m..24h" findings with one
                    # window's numbers read as a 24 h story: found by review)
                    continue
                previous_start_s = w.start_s
                shortest = scale == cfg.scales_s[0] or scale <= cfg.burst.short_max_scale_s
                window_s = start_s + cfg.bucket_s - w.start_s
                for f in (burst_test(w.negatives, w.volume, w.exposure, rates, scale, cfg.burst, shortest=shortest,
                                     window_s=window_s),
                          share_test(w.negatives, w.volume, rates, scale, cfg.shift),
                          score_test(w.negatives, w.volume, w.score_sum, rates, scale, cfg.shift)):
                    if f is not None:
                        findings.append(replace(f, start_s=w.start_s))
            cusum = st.cusum.finding(start_s + cfg.bucket_s, rates, cfg.burst)
            if cusum is not None:
                findings.append(cusum)
        findings.sort(key=lambda f: (-_strength(f, cfg), f.scale_s, f.detector))
        if st.active and not findings:
            st.spent_until_s = start_s + cfg.bucket_s
        st.active = bool(findings)
        if st.active:
            self.active.add(key)
        else:
            self.active.discard(key)
        return _to_signal(key, start_s, cfg.bucket_s, windows[0], rates, st, tuple(findings), suppressed)

    def _evict(self) -> None:
        """Over ``max_keys`` states, drop the least established keys (fewest decayed sightings) down to
        ``EVICT_TO_SHARE`` of it; ``all`` and the topics (a bounded set) stay, and a key with a finding goes only
        after every quiet key as established. Before, the keys seen least recently went first: one bucket of spam
        naming 10,560 new tickers evicted every real ticker without a message in it, then ``all`` (ties by name),
        and the rebuilt-from-nothing baselines paged on ordinary flow; the whole state was also sorted at every
        bucket once full (found by review). Keys with a finding are not exempt: a negative spam wave's keys all
        have one, and exempting them let the state grow past the bound while real keys were evicted at every
        bucket (found by the regression review)."""
        if len(self.keys) <= self.cfg.max_keys:
            return
        keep = int(self.cfg.max_keys * EVICT_TO_SHARE)
        candidates = [(key, st) for key, st in self.keys.items()
                      if key != ALL_KEY and not key.startswith(topic_key(""))]
        now_s = self.until_s or 0
        victims = heapq.nsmallest(
            max(0, len(self.keys) - keep), candidates,
            key=lambda kv: (kv[1].sightings * self.stream.weight(now_s - kv[1].last_seen_s), kv[0] in self.active,
                            kv[1].last_seen_s, kv[0]))
        for key, st in victims:
            self._leave_group(st)
            del self.keys[key]
            self.active.discard(key)
        self._drop_stale_expiries()
        log.warning("multiscale_keys_evicted", evicted=len(victims), kept=len(self.keys),
                    max_tracked_keys=self.cfg.max_keys,
                    fix="the least established keys' baselines were dropped; raise alerts.max_tracked_keys if "
                        "they are real (a flood of one-off tickers is what this bound is for)")


    def _drop_stale_expiries(self) -> None:
        """Evicted keys' heap entries stay until they come due (7 days of event time): a flood of one-off tickers
        grew the heap to 200,000 entries for 900 live keys, outside ``max_tracked_keys`` (found by review). Once
        stale entries outnumber the live keys, the heap is rebuilt from the live ones."""
        if len(self.expiries) <= 2 * len(self.keys) + 1024:
            return
        self.expiries = [entry for entry in self.expiries
                         if (st := self.keys.get(entry[1])) is not None and st.expiry_ticket == entry[2]]
        heapq.heapify(self.expiries)


def _to_signal(key: str, start_s: int, bucket_s: int, first: _Window, rates: Rates | None, st: KeyState,
               findings: tuple[Finding, ...], suppressed: str | None) -> Signal:
    """The key's signal; its expected rate per hour is over the shortest window's real length (cut at the end of an
    earlier episode, it is shorter than the scale: found by review)."""
    top = findings[0] if findings else None
    first_s = start_s + bucket_s - first.start_s
    volume = top.volume if top else first.volume
    negatives = top.negatives if top else first.negatives
    neg_share = negatives / volume if volume else 0.0
    mean_score = first.score_sum / first.volume if first.volume else 0.0
    base_share = rates.neg_share if rates else 0.0
    base_score = rates.mean_score if rates else 0.0
    return Signal(
        key=key, bucket_start_s=start_s, bucket_end_s=start_s + bucket_s, volume=volume, neg_share=neg_share,
        mean_score=mean_score, baseline_kind="multiscale",
        baseline_samples=(rates.history_s // bucket_s) if rates else 0,
        baseline_neg_share=base_share, baseline_median_neg_share=base_share, baseline_sigma=0.0,
        baseline_mad_sigma=0.0, baseline_mean_score=base_score, z_ewma=top.log10p if top else 0.0,
        z_robust=top.log10p if top else 0.0, cusum=st.cusum.value, score_drop=base_score - mean_score,
        triggered=tuple(f.name for f in findings), suppressed=suppressed, findings=findings,
        scale_s=top.scale_s if top else 0,
        expected_negatives_per_h=first.exposure * rates.rate * HOUR_S / first_s if rates else 0.0,
    )
