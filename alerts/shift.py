"""Sentiment-shift tests of one window: negative share (beta-binomial) and mean score drop.

They complement the count test (alerts/burst.py): a story that does not raise the volume of a key but
turns its messages negative. Both need ``min_volume`` messages in the window, so at real density the
30-minute scale rarely qualifies and the 6 h / 24 h scales carry them; both compare against the key's
long-memory baseline, shrunk toward its group (alerts/baseline.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alerts.baseline import Rates
from alerts.burst import share_log10p
from alerts.detectors import Finding
from alerts.tails import MAX_LOG10P

MIN_SCORE_VARIANCE = 0.05
"""Floor of the per-message score variance (scores live in -1..1; a flat history must not make
a small wobble look like a crash)."""


@dataclass(frozen=True, slots=True)
class ShiftParams:
    log10p: float = 5.0
    """Significance of the share and score tests, as -log10 p."""
    min_volume: int = 10
    """Messages a window needs before either test may fire."""
    min_neg_share: float = 0.3
    """Absolute floor of the window's negative share for the share test."""
    score_drop: float = 0.5
    """The window's mean score must be at least this far below the key's (0 = score test off)."""
    share_concentration: float = 50.0
    """Cap of the beta-binomial concentration (see alerts/burst.py ``BurstParams``)."""


def share_test(negatives: int, volume: int, rates: Rates, scale_s: int, p: ShiftParams) -> Finding | None:
    if volume < p.min_volume or negatives < p.min_neg_share * volume:
        return None
    lp = share_log10p(negatives, volume, rates, p.share_concentration)
    if lp < p.log10p:
        return None
    return Finding("share", scale_s, negatives, volume, rates.neg_share * volume, lp,
                   baseline=rates.neg_share, observed=negatives / volume)


def _normal_log10_sf(z: float) -> float:
    p = 0.5 * math.erfc(z / math.sqrt(2.0))
    return MAX_LOG10P if p <= 0 else min(MAX_LOG10P, -math.log10(p))


def score_test(negatives: int, volume: int, score_sum: float, rates: Rates, scale_s: int,
               p: ShiftParams) -> Finding | None:
    """One-sided z-test of the window's mean score against the baseline, variance bounded by
    ``1 - mean**2`` (the most a -1..1 score with that mean can vary). Like the share test it needs a negative
    share of ``min_neg_share``: a usually positive key going neutral is a drop of the mean, not negative
    sentiment, and paged with no negative message at all (found by review: 0 of 28 negative, p 10^-5.4)."""
    if p.score_drop <= 0 or volume < p.min_volume or negatives < p.min_neg_share * volume:
        return None
    mean = score_sum / volume
    drop = rates.mean_score - mean
    if drop < p.score_drop:
        return None
    variance = max(1.0 - rates.mean_score**2, MIN_SCORE_VARIANCE)
    lp = _normal_log10_sf(drop / math.sqrt(variance / volume))
    if lp < p.log10p:
        return None
    return Finding("score", scale_s, negatives, volume, rates.neg_share * volume, lp,
                   baseline=rates.mean_score, observed=mean)
