"""Tail probabilities agree with scipy's reference distributions and behave at the edges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats  # type: ignore[import-untyped]

from alerts.tails import (
    EXACT_BETABINOM_MAX_N,
    MAX_LOG10P,
    _beta_limit_log10_sf,
    _exact_betabinom_log10_sf,
    betabinom_log10_sf,
    nbinom_log10_sf,
)


@pytest.mark.parametrize(("count", "mean", "shape"), [(1, 0.5, 3.0), (5, 0.2, 10.0), (12, 3.0, 2.5), (40, 10.0, 50.0)])
def test_negative_binomial_tail_matches_scipy(count: int, mean: float, shape: float) -> None:
    p = shape / (shape + mean)
    expected = -math.log10(stats.nbinom.sf(count - 1, shape, p))
    assert nbinom_log10_sf(count, mean, shape) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("count", "n", "share", "conc"), [(3, 3, 0.1, 20.0), (8, 20, 0.15, 50.0), (1, 10, 0.5, 5.0)])
def test_beta_binomial_tail_matches_scipy(count: int, n: int, share: float, conc: float) -> None:
    expected = -math.log10(stats.betabinom.sf(count - 1, n, share * conc, (1 - share) * conc))
    assert betabinom_log10_sf(count, n, share, conc) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n", [5_001, 20_000, 100_000])
@pytest.mark.parametrize("share", [0.1, 0.2, 0.35])
@pytest.mark.parametrize("conc", [5.0, 20.0, 50.0])
def test_large_windows_use_a_beta_limit_within_0_03_of_the_exact_tail_where_thresholds_sit(
    n: int, share: float, conc: float,
) -> None:
    """Above EXACT_BETABINOM_MAX_N the tail is O(1) (the exact sum grew with the window: ~0.6 s for a day
    of a busy topic); it must still agree with the exact sum (checked against scipy above; scipy's own
    ``sf`` loses ~0.05 of -log10 p at these sizes) in the range the thresholds use."""
    assert n > EXACT_BETABINOM_MAX_N
    compared = 0
    for percent in range(20, 100, 5):
        count = n * percent // 100
        exact = _exact_betabinom_log10_sf(count, n, share, conc)
        if 2.0 <= exact <= 10.0:
            assert betabinom_log10_sf(count, n, share, conc) == pytest.approx(exact, abs=0.03)
            compared += 1
    assert compared >= 1


def test_the_beta_limit_is_used_for_large_windows() -> None:
    assert betabinom_log10_sf(3_000, 10_000, 0.2, 50.0) == pytest.approx(
        _beta_limit_log10_sf(3_000, 10_000, 0.2, 50.0))


def test_zero_count_is_never_significant_and_an_impossible_count_is_capped() -> None:
    assert nbinom_log10_sf(0, 5.0, 10.0) == 0.0
    assert betabinom_log10_sf(0, 10, 0.2, 10.0) == 0.0
    assert nbinom_log10_sf(3, 0.0, 10.0) == MAX_LOG10P
    assert betabinom_log10_sf(11, 10, 0.2, 10.0) == MAX_LOG10P


def test_fatter_tails_for_less_certain_rates() -> None:
    """A rate known from little history (small shape) makes the same count less surprising."""
    assert nbinom_log10_sf(6, 1.0, 2.0) < nbinom_log10_sf(6, 1.0, 50.0)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 200), st.floats(0.01, 100.0), st.floats(0.5, 100.0))
def test_tail_is_finite_and_monotone_in_the_count(count: int, mean: float, shape: float) -> None:
    a, b = nbinom_log10_sf(count, mean, shape), nbinom_log10_sf(count + 1, mean, shape)
    assert 0.0 <= a <= b <= MAX_LOG10P


def _reference_betabinom_log10_sf(count: int, n: int, share: float, conc: float) -> float:
    """Every term of the tail summed in log space (the previous implementation, 4 lgamma per term)."""
    a, b = share * conc, (1.0 - share) * conc

    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    terms = [math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1)
             + log_beta(x + a, n - x + b) - log_beta(a, b) for x in range(count, n + 1)]
    top = max(terms)
    p = min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))
    return 50.0 if p <= 0 else min(50.0, max(0.0, -math.log10(p)))


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 5_000), frac=st.floats(0.0, 1.0), share=st.floats(1e-6, 1 - 1e-6),
       conc=st.sampled_from([0.5, 2.0, 10.0, 50.0, 1e4]))
def test_exact_beta_binomial_tail_by_term_ratios_equals_the_full_sum(n: int, frac: float, share: float,
                                                                      conc: float) -> None:
    """The tail is now summed by the ratio of successive terms and stops once they no longer count."""
    count = max(1, round(frac * n))
    assert betabinom_log10_sf(count, n, share, conc) == pytest.approx(
        _reference_betabinom_log10_sf(count, n, share, conc), abs=1e-9)
