"""Negative-count tests against a key's expected rate: the window burst test and a Poisson CUSUM.

``burst``: the negatives of a window (30 min .. 24 h) against the negative-binomial predictive of the
key's baseline (alerts/baseline.py). The predictive's shape is the gamma posterior's, capped at
``dispersion_shape`` so even a key with years of history keeps some extra-Poisson variance (real
rates wander from day to day). A count burst alone is not a *negative* story (an earnings beat
triples every kind of message), so it also needs the window's negative share to be at least mildly
above the key's (``share_gate_log10p``, beta-binomial).

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


def burst_test(negatives: int, volume: int, exposure: float, rates: Rates, scale_s: int,
               p: BurstParams) -> Finding | None:
    """The window's negative count against its expected count; a Finding when significant."""
    mean = exposure * rates.rate
    if exposure <= 0 or negatives < p.min_negatives or negatives <= mean or rates.rate <= 0:
        return None
    shape = min(rates.rate_shape, p.dispersion_shape)
    lp = nbinom_log10_sf(negatives, mean, shape)
    if lp < p.log10p:
        return None
    if share_log10p(negatives, volume, rates, p.share_concentration) < p.share_gate_log10p:
        return None
    hours = scale_s / HOUR_S
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
                       baseline=self.expected / hours, observed=self.negatives / hours)
