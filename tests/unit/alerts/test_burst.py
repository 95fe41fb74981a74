"""The negative-count burst test: the small-count gate and its one exception (a pair at the shortest scale)."""

from __future__ import annotations

import pytest

from alerts.baseline import Rates
from alerts.burst import BurstParams, burst_test, required_log10p
from alerts.tails import nbinom_log10_sf

# a quiet key: 0.001 negatives per unit of exposure, a weak prior (shape 2), 5% negative share
QUIET = Rates(rate_shape=2.0, rate_inverse_scale=2000.0, neg_share=0.05, share_weight=40.0, mean_score=0.1,
              history_s=10 * 86_400)
PAIR = BurstParams(short_min_negatives=2, short_log10p=6.0)


def test_a_pair_never_fires_by_default_however_unlikely() -> None:
    assert nbinom_log10_sf(2, 0.0005, 2.0) > 6
    assert burst_test(2, 2, 0.5, QUIET, 1800, BurstParams(), shortest=True) is None


def test_a_pair_at_the_shortest_scale_fires_at_the_stricter_level() -> None:
    found = burst_test(2, 2, 0.5, QUIET, 1800, PAIR, shortest=True)  # expected 0.0005 negatives
    assert found is not None and found.negatives == 2 and found.log10p >= 6.0
    assert found.detector == "burst" and found.scale_s == 1800


def test_a_pair_between_the_two_levels_does_not_fire() -> None:
    lp = nbinom_log10_sf(2, 0.002, 2.0)  # expected 0.002: p ~ 3e-6
    assert 5.0 <= lp < 6.0
    assert burst_test(2, 2, 2.0, QUIET, 1800, PAIR, shortest=True) is None
    assert burst_test(3, 3, 2.0, QUIET, 1800, PAIR, shortest=True) is not None, "three need only 1e-5"


def test_a_pair_at_a_longer_scale_never_fires() -> None:
    assert burst_test(2, 2, 0.5, QUIET, 7200, PAIR, shortest=False) is None


def test_a_pair_still_needs_the_share_gate() -> None:
    assert burst_test(2, 2, 0.5, QUIET, 1800, PAIR, shortest=True) is not None
    # two negatives among forty stories is no higher a share than the key's: a volume surge, not a story
    assert burst_test(2, 40, 0.5, QUIET, 1800, PAIR, shortest=True) is None


@pytest.mark.parametrize(("negatives", "shortest", "expected"), [
    (1, True, None), (2, True, 6.0), (2, False, None), (3, False, 5.0), (3, True, 5.0),
])
def test_required_level_by_count_and_scale(negatives: int, shortest: bool, expected: float | None) -> None:
    assert required_log10p(negatives, shortest, PAIR) == expected


def test_the_exception_is_never_looser_than_the_main_level() -> None:
    assert required_log10p(2, True, BurstParams(short_min_negatives=2, short_log10p=3.0)) == 5.0
    assert required_log10p(2, True, BurstParams(short_min_negatives=2)) == 5.0


def test_a_window_of_negatives_only_passes_the_share_gate_on_a_key_whose_share_is_ordinary() -> None:
    """Found by review: at a key share of 0.25 even 2 of 2 negatives could not reach p 0.05, so the gate
    vetoed clear small bursts for lack of power; a window with any other message still needs it."""
    from dataclasses import replace

    ordinary = replace(QUIET, neg_share=0.25)
    assert burst_test(2, 2, 0.5, ordinary, 1800, PAIR, shortest=True) is not None
    assert burst_test(3, 3, 0.5, ordinary, 7200, PAIR) is not None
    assert burst_test(2, 5, 0.5, ordinary, 1800, PAIR, shortest=True) is None  # 2 of 5: share not above


def test_a_window_cut_shorter_than_its_scale_gives_its_rates_per_hour_over_its_real_length() -> None:
    """Found by review: a window cut at the end of an earlier episode had its counts divided by the nominal scale."""
    nominal = burst_test(4, 4, 0.5, QUIET, 21600, BurstParams())
    cut = burst_test(4, 4, 0.5, QUIET, 21600, BurstParams(), window_s=7200)
    assert nominal is not None and cut is not None and cut.scale_s == 21600
    assert nominal.observed == pytest.approx(4 / 6) and cut.observed == pytest.approx(4 / 2)
    assert cut.baseline == pytest.approx(cut.expected / 2)
