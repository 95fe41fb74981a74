"""Upper-tail probabilities of count models, as ``-log10 p`` (pure math, no state).

Why these two: a key's negative count in a window is Poisson given its rate, but the rate is only
*estimated* (gamma posterior) and real rates wander (news days), so the predictive count is
negative-binomial: Poisson when the shape is large, fatter-tailed for sparse keys with little history.
The negatives among a window's messages are binomial given the key's negative share; the share too
is uncertain and overdispersed, so the predictive is beta-binomial.

Both are reported as ``-log10 p`` (0 = unremarkable, 6 = a one-in-a-million window under the baseline),
the unit the thresholds use, because it adds across independent tests and reads the same at every scale.
"""

from __future__ import annotations

import math

from scipy.special import betainc  # type: ignore[import-untyped]

MAX_LOG10P = 50.0
"""Cap: beyond 1e-50 every window is equally damning, and float underflow starts."""


def _log10p(p: float) -> float:
    if p <= 0.0:
        return MAX_LOG10P
    return min(MAX_LOG10P, max(0.0, -math.log10(p)))


def nbinom_log10_sf(count: int, mean: float, shape: float) -> float:
    """``-log10 P(X >= count)`` for X negative-binomial with ``mean`` and ``shape`` (variance
    ``mean + mean**2 / shape``). ``P(X >= c) = I_{mean/(shape+mean)}(c, shape)``."""
    if count <= 0:
        return 0.0
    if mean <= 0.0:
        return MAX_LOG10P
    p = float(betainc(count, shape, mean / (shape + mean)))
    return _log10p(p)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


EXACT_BETABINOM_MAX_N = 5_000
"""Windows up to this many messages get the exact beta-binomial tail (one term per possible count, ~3.5 ms
at the limit); larger ones the moment-matched Beta tail, O(1). The exact sum grew with the window: a day of
a busy topic (860k messages) took ~0.6 s per test, on the event loop. From 5,000 on the two agree to
within 0.03 in -log10 p where the thresholds sit (2-10; a 7% difference in p)."""


def betabinom_log10_sf(count: int, n: int, share: float, concentration: float) -> float:
    """``-log10 P(X >= count)`` for X beta-binomial(n, a, b) with ``a = share * concentration``,
    ``b = (1 - share) * concentration``: ``count`` negatives out of ``n`` against an uncertain share."""
    if count <= 0 or n <= 0:
        return 0.0
    if count > n:
        return MAX_LOG10P
    share = min(max(share, 1e-6), 1.0 - 1e-6)
    if n > EXACT_BETABINOM_MAX_N:
        return _beta_limit_log10_sf(count, n, share, concentration)
    return _exact_betabinom_log10_sf(count, n, share, concentration)


def _exact_betabinom_log10_sf(count: int, n: int, share: float, concentration: float) -> float:
    """The tail as the sum of its terms, exact to double precision. Each term is the previous one times
    ``(n - x)(x + a) / ((x + 1)(n - x - 1 + b))``, and the sum stops once the terms, past their peak, add
    less than 1e-17 of it: one ``lgamma`` per call instead of four per term over ``n - count`` terms (77% of a
    detection step's time went here, measured by review)."""
    a, b = share * concentration, (1.0 - share) * concentration
    log_first = (math.lgamma(n + 1) - math.lgamma(count + 1) - math.lgamma(n - count + 1)
                 + _log_beta(count + a, n - count + b) - _log_beta(a, b))
    term, total, log_scale = 1.0, 1.0, 0.0
    for x in range(count, n):
        ratio = (n - x) * (x + a) / ((x + 1) * (n - x - 1 + b))
        term *= ratio
        total += term
        if ratio < 1.0 and term < total * 1e-17:
            break
        if total > 1e250:  # still climbing to the peak: rescale, keep the log
            term, total, log_scale = term / total, 1.0, log_scale + math.log(total)
    return _log10p(min(1.0, math.exp(log_first + log_scale + math.log(total))))


def _beta_limit_log10_sf(count: int, n: int, share: float, concentration: float) -> float:
    """The share ``X / n`` of a large beta-binomial is close to a Beta with the same mean and variance
    (``share (1 - share) (n + c) / (n (1 + c))``); its upper tail at ``(count - 1/2) / n``."""
    k = n * (1.0 + concentration) / (n + concentration) - 1.0
    a, b = share * k, (1.0 - share) * k
    x = min(1.0, max(0.0, (count - 0.5) / n))
    return _log10p(float(betainc(b, a, 1.0 - x)))
