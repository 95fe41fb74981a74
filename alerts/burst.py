"""Negative-count tests against a key's expected rate: the window burst test and a Poisson CUSUM.

``burst``: the negatives of a window (30 min .. 24 h) against the negative-binomial predictive of the
key's baseline (alerts/baseline.py). The predictive's shape is the gamma posterior's, capped at
``dispersion_shape`` so even a key with years of history keeps some extra-Poisson variance (real
rates wander from day to day). A count burst alone is not a *negative* story (an earnings beat
triples every kind of message), so it also needs the window's negative share to be at least mildly
above the key's (``share_gate_log10p``, beta-binomial). A window of negatives only passes: with a handful of
messages even 2 of 2 cannot reach p 0.05 against a key whose share is 0.21 or more, so the gate vetoed
clear small bursts for lack of power, not for mixed sentiment.

Small counts. A window needs ``min_negatives`` (3) distinct negatives: at counts that small one more or
one fewer message moves p by orders of magnitude, so the p-value leans on the model more than on the
data. The one exception (``short_min_negatives``, off by default) is a *pair* at the *shortest* scale,
at a stricter level (``short_log10p``). Why that is sound: ``P(X >= 2) ~ mean^2 (1 + 1/shape) / 2``, so
p <= 10^-4.5 (production's level) needs an expected count of about 0.008 or less in the window (1e-6: 0.0015):
only a key that is quiet at
that hour (the exposure is the stream's volume, so nights and weekends are quiet too) gets there, and
for such a key two distinct negative stories within 30 minutes is itself the news: the first thing a
real story looks like on sparse flow, before a third one comes in hours later. At longer scales a pair
is a loose coincidence whose p depends on the rate estimate more than on the data, so by default it never
counts there (``short_max_scale_s`` lets it: on the dev set a pair at 2 h at p <= 1e-4 halves the median delay
and doubles the pages, about half of the new ones noise; benchmarks/RESULTS.md, Issue 9).
Repeats (retweets, reissues) are still folded before counting: the pair is two *stories*. The
share gate still applies. Production sets it (pair, p <= 10^-4.5); the dev-set numbers it was chosen by
are in configs/production.toml and benchmarks/RESULTS.md (Issue 9).

``cusum``: the one-sided Poisson CUSUM ``S = max(0, S + n log(rho) - (rho - 1) mu)`` per fine bucket,
the log-likelihood ratio of "the rate is ``rho`` times the baseline" since the run began. It catches a
story that builds slower than any single window notices; its "scale" is the run's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alerts.baseline import Rates
from alerts.detectors import Finding
from alerts.tails import betabinom_log10_sf, nbinom_log10_sf

HOUR_S = 3600


@dataclass(frozen=True, slots=True)
class BurstParams:
    log10p: float = 5.0
    """Significance of the count test, as -log10 p."""
    min_negatives: int = 3
    """Fewest negatives in a window that may alert (a lone message is never a burst)."""
    short_min_negatives: int = 0
    """Fewest negatives at the *shortest* scale, when below ``min_negatives`` (0 = ``min_negatives``):
    a tight pair of distinct negative stories on a quiet key, at the stricter ``short_log10p``."""
    short_log10p: float = 0.0
    """Significance a shortest-scale window below ``min_negatives`` needs (0 = ``log10p``)."""
    short_max_scale_s: int = 0
    """Longest scale the pair exception also applies to (0 = the shortest scale only)."""
    share_gate_log10p: float = 1.3
    """The window's negative share must be above the key's at least at this -log10 p (1.3 = p 0.05)."""
    dispersion_shape: float = 10.0
    """Cap of the negative-binomial shape (variance >= mean + mean^2 / shape)."""
    share_concentration: float = 50.0
    """Cap of the beta-binomial concentration of the share (overdispersion of shares between windows)."""
    cusum_rate_ratio: float = 3.0
    """The rate increase the CUSUM is tuned to detect (rho)."""
    cusum_threshold_nats: float = 0.0
    """CUSUM decision threshold (log-likelihood ratio, nats); 0 = CUSUM off."""


def share_log10p(negatives: int, volume: int, rates: Rates, concentration_cap: float) -> float:
    """-log10 p of at least ``negatives`` of ``volume`` messages being negative under the key's share."""
    if volume <= 0 or negatives <= rates.neg_share * volume:
        return 0.0
    return betabinom_log10_sf(negatives, volume, rates.neg_share, min(rates.share_weight, concentration_cap))


def required_log10p(negatives: int, shortest: bool, p: BurstParams) -> float | None:
    """The -log10 p a window with ``negatives`` needs, or None when it is too small to alert at all."""
    if negatives >= p.min_negatives:
        return p.log10p
    if shortest and p.short_min_negatives and negatives >= p.short_min_negatives:
        return max(p.short_log10p, p.log10p)  # never looser; 0 = the main level
    return None


def burst_test(negatives: int, volume: int, exposure: float, rates: Rates, scale_s: int,
               p: BurstParams, *, shortest: bool = False, window_s: int | None = None) -> Finding | None:
    """The window's negative count against its expected count; a Finding when significant.
    ``shortest``: the window is the shortest scale's (see ``BurstParams.short_min_negatives``). ``window_s``: its
    real length when cut shorter than ``scale_s`` (at the end of an earlier episode): the per-hour rates are over it,
    not the nominal scale (dividing by 6 h a window cut to 2 h 15 m showed a third of the real rates: found by
    review)."""
    mean = exposure * rates.rate
    needed = required_log10p(negatives, shortest, p)
    if exposure <= 0 or needed is None or negatives <= mean or rates.rate <= 0:
        return None
    shape = min(rates.rate_shape, p.dispersion_shape)
    lp = nbinom_log10_sf(negatives, mean, shape)
    if lp < needed:
        return None
    if negatives < volume and share_log10p(negatives, volume, rates, p.share_concentration) < p.share_gate_log10p:
        return None  # a window of negatives only is no mixed volume surge: the gate could veto it on power alone
    hours = (window_s or scale_s) / HOUR_S
    return Finding("burst", scale_s, negatives, volume, mean, lp, baseline=mean / hours, observed=negatives / hours)


@dataclass(slots=True)
class PoissonCusum:
    """One key's CUSUM run. ``last_s`` is the last bucket it was advanced through."""

    value: float = 0.0
    run_start_s: int | None = None
    negatives: int = 0
    volume: int = 0
    expected: float = 0.0
    last_s: int | None = None

    def _reset(self) -> None:
        self.value, self.run_start_s, self.negatives, self.volume, self.expected = 0.0, None, 0, 0, 0.0

    def quiet(self, expected: float, ratio: float) -> None:
        """Buckets without the key's messages: the statistic only drifts down."""
        self.value -= (ratio - 1.0) * expected
        self.expected += expected
        if self.value <= 0.0:
            self._reset()

    def update(self, start_s: int, negatives: int, volume: int, expected: float, ratio: float) -> None:
        step = negatives * math.log(ratio) - (ratio - 1.0) * expected
        if self.value + step <= 0.0:
            self._reset()
        else:
            if self.run_start_s is None:
                self.run_start_s = start_s
            self.value += step
            self.negatives += negatives
            self.volume += volume
            self.expected += expected
        self.last_s = start_s

    def finding(self, now_end_s: int, rates: Rates, p: BurstParams) -> Finding | None:
        if p.cusum_threshold_nats <= 0 or self.value < p.cusum_threshold_nats or self.run_start_s is None:
            return None
        if self.negatives < p.min_negatives:
            return None
        span_s = now_end_s - self.run_start_s
        hours = span_s / HOUR_S
        return Finding("cusum", span_s, self.negatives, self.volume, self.expected, self.value,
                       baseline=self.expected / hours, observed=self.negatives / hours, start_s=self.run_start_s)
