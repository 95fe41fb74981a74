"""Tail probabilities agree with scipy's reference distributions and behave at the edges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats  # type: ignore[import-untyped]

from alerts.tails import MAX_LOG10P, betabinom_log10_sf, nbinom_log10_sf


@pytest.mark.parametrize(("count", "mean", "shape"), [(1, 0.5, 3.0), (5, 0.2, 10.0), (12, 3.0, 2.5), (40, 10.0, 50.0)])
def test_negative_binomial_tail_matches_scipy(count: int, mean: float, shape: float) -> None:
    p = shape / (shape + mean)
    expected = -math.log10(stats.nbinom.sf(count - 1, shape, p))
    assert nbinom_log10_sf(count, mean, shape) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("count", "n", "share", "conc"), [(3, 3, 0.1, 20.0), (8, 20, 0.15, 50.0), (1, 10, 0.5, 5.0)])
def test_beta_binomial_tail_matches_scipy(count: int, n: int, share: float, conc: float) -> None:
    expected = -math.log10(stats.betabinom.sf(count - 1, n, share * conc, (1 - share) * conc))
    assert betabinom_log10_sf(count, n, share, conc) == pytest.approx(expected, rel=1e-6)


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
