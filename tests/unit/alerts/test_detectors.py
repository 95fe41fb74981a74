"""Detectors: spike (EWMA and robust), CUSUM drift, score drop, guards, seasonality, per-key thresholds."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.detectors import (
    DAY_S,
    THRESHOLD_NAMES,
    DetectorConfig,
    DetectorThresholds,
    Finding,
    KeySeries,
    Signal,
    detect,
    peak_strength,
    thresholds_for,
)
from monitor.config import AlertSettings
from monitor.windows.buckets import BucketStats
from tests.unit.alerts.builders import DAY0_S, bucket, shares, signal

B = 300
KEY = "ticker:TSLA"
CFG = DetectorConfig(bucket_s=B, seasonal_days=0)


def flat_then(last: list[float], n_flat: int = 30, volume: int = 40) -> tuple[KeySeries, int]:
    series = shares(KEY, DAY0_S, B, [0.1] * n_flat + last, volume=volume)
    return KeySeries(KEY, series), series[-1].start_s


def test_negative_share_spike_over_flat_history_triggers_spike() -> None:
    ks, t = flat_then([0.7])
    sig = detect(ks, t, CFG)
    assert "spike" in sig.triggered
    assert sig.z_ewma >= 3 and sig.z_robust >= 3
    assert sig.baseline_kind == "rolling" and abs(sig.baseline_neg_share - 0.1) < 0.05
    assert sig.volume == 40 and sig.bucket_end_s == t + B


def test_normal_bucket_after_flat_history_triggers_nothing() -> None:
    ks, t = flat_then([0.12])
    sig = detect(ks, t, CFG)
    assert sig.triggered == () and sig.suppressed == "below_min_neg_share"


def test_spike_below_minimum_volume_is_suppressed() -> None:
    history = shares(KEY, DAY0_S, B, [0.1] * 30)
    spike = bucket(KEY, DAY0_S + 30 * B, negative=8, neutral=2)  # 80% negative, but only 10 messages
    sig = detect(KeySeries(KEY, [*history, spike]), spike.start_s, CFG)
    assert sig.triggered == () and sig.suppressed == "low_volume"


def test_spike_without_enough_history_is_suppressed_on_cold_start() -> None:
    ks, t = flat_then([0.8], n_flat=8)  # rolling baseline excludes the 5 buckets before: 3 samples
    sig = detect(ks, t, CFG)
    assert sig.triggered == () and sig.suppressed == "insufficient_history"


def test_sustained_moderate_drift_triggers_cusum_but_not_spike() -> None:
    ks, t = flat_then([0.45] * 6, volume=200)
    sig = detect(ks, t, DetectorConfig(bucket_s=B, seasonal_days=0, min_sigma_share=0.1,
                                        default=DetectorThresholds(z_threshold=4.0, score_drop_threshold=0)))
    assert "cusum" in sig.triggered and "spike" not in sig.triggered
    assert sig.cusum >= 5


def test_single_moderate_bucket_does_not_trigger_cusum() -> None:
    ks, t = flat_then([0.45], volume=200)
    sig = detect(ks, t, DetectorConfig(bucket_s=B, seasonal_days=0, min_sigma_share=0.1,
                                        default=DetectorThresholds(z_threshold=4.0, score_drop_threshold=0)))
    assert sig.triggered == ()


def test_mean_score_drop_triggers_score_drop() -> None:
    history = [bucket(KEY, DAY0_S + i * B, negative=4, neutral=16, positive=20) for i in range(30)]
    crash = bucket(KEY, DAY0_S + 30 * B, negative=20, neutral=20, positive=0)
    sig = detect(KeySeries(KEY, [*history, crash]), crash.start_s, CFG)
    assert "score_drop" in sig.triggered and sig.score_drop >= 0.5


def test_seasonal_baseline_is_used_once_enough_previous_days_exist() -> None:
    cfg = DetectorConfig(bucket_s=3600, seasonal_days=7, seasonal_min_days=3, seasonal_halfwidth_s=3600)
    hours = 4 * 24
    # every day 13:00-16:00 is 50% negative, the rest 10%
    history = shares(KEY, DAY0_S, 3600, [0.5 if 13 <= h % 24 < 16 else 0.1 for h in range(hours)])
    t = DAY0_S + 3 * DAY_S + 14 * 3600
    sig = detect(KeySeries(KEY, history), t, cfg)
    assert sig.baseline_kind == "seasonal" and sig.baseline_samples == 9
    assert sig.triggered == ()
    rolling = detect(KeySeries(KEY, history), t, DetectorConfig(bucket_s=3600, seasonal_days=0))
    assert rolling.baseline_kind == "rolling" and "spike" in rolling.triggered


def test_seasonal_baseline_falls_back_to_rolling_with_too_few_days() -> None:
    cfg = DetectorConfig(bucket_s=B, seasonal_days=7, seasonal_min_days=3)
    history = shares(KEY, DAY0_S + DAY_S - 40 * B, B, [0.1] * 40 + [0.1] * 20)
    sig = detect(KeySeries(KEY, history), history[-1].start_s, cfg)
    assert sig.baseline_kind == "rolling"


def test_exact_key_override_beats_prefix_and_longer_prefix_beats_shorter() -> None:
    overrides = {"ticker:*": {"z_threshold": 4.0, "min_volume": 50}, "ticker:TS*": {"z_threshold": 5.0},
                 "ticker:TSLA": {"min_neg_share": 0.2}}
    default = DetectorThresholds()
    tsla = thresholds_for("ticker:TSLA", default, overrides)
    assert (tsla.z_threshold, tsla.min_volume, tsla.min_neg_share) == (5.0, 50, 0.2)
    aapl = thresholds_for("ticker:AAPL", default, overrides)
    assert (aapl.z_threshold, aapl.min_volume, aapl.min_neg_share) == (4.0, 50, default.min_neg_share)
    assert thresholds_for("topic:earnings", default, overrides) == default


def test_per_key_override_can_silence_a_noisy_key() -> None:
    ks, t = flat_then([0.7])
    assert detect(ks, t, CFG).triggered != ()
    cfg = DetectorConfig(bucket_s=B, seasonal_days=0, overrides={"ticker:*": {"min_neg_share": 0.9}})
    assert detect(ks, t, cfg).triggered == ()


def test_config_rejects_unknown_threshold_names_and_accepts_every_known_one() -> None:
    with pytest.raises(ValidationError, match="z_treshold"):
        AlertSettings(thresholds={"ticker:TSLA": {"z_treshold": 4.0}})
    AlertSettings(thresholds={"ticker:*": dict.fromkeys(THRESHOLD_NAMES, 1.0)})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=40))
def test_signal_numbers_are_finite_for_any_series(counts: list[tuple[int, int]]) -> None:
    series = [bucket(KEY, DAY0_S + i * B, n, m) for i, (n, m) in enumerate(counts) if n + m]
    sig = detect(KeySeries(KEY, series), DAY0_S + (len(counts) - 1) * B, CFG)
    for value in (sig.z_ewma, sig.z_robust, sig.cusum, sig.score_drop, sig.baseline_sigma):
        assert math.isfinite(value)
    assert sig.cusum >= 0


def test_a_thin_seasonal_baseline_gives_way_to_a_full_rolling_one() -> None:
    """Found by review: four days with one bucket at this hour made a 4-sample seasonal baseline win over 19
    rolling buckets, and the key read ``insufficient_history``: a 90%-negative bucket raised nothing."""
    cfg = DetectorConfig(bucket_s=300)
    key, today = "topic:earnings", DAY0_S + 4 * 86_400
    digests = [BucketStats(key, DAY0_S + d * 86_400 + 9 * 3600, 3, 22) for d in range(4)]
    morning = [BucketStats(key, today + 7 * 3600 + i * 300, 3, 27) for i in range(24)]
    t = today + 9 * 3600
    sig = detect(KeySeries(key, [*digests, *morning, BucketStats(key, t, 27, 3)]), t, cfg)
    assert sig.baseline_kind == "rolling" and sig.suppressed is None and "spike" in sig.triggered


def test_an_episode_peak_is_the_signal_whose_finding_counted_the_most_negatives_then_the_strongest_test() -> None:
    def with_findings(*findings: Finding) -> Signal:
        return replace(signal("ticker:X", DAY0_S, True), baseline_kind="multiscale", volume=2, findings=findings)

    small = Finding("burst", 1800, negatives=4, volume=5, expected=0.2, log10p=6.0, baseline=0.4, observed=8.0)
    wide = Finding("burst", 7200, negatives=9, volume=20, expected=2.0, log10p=4.5, baseline=1.0, observed=4.5)
    assert peak_strength(with_findings(small, wide)) == (9, 4.5)
    assert peak_strength(with_findings(small)) < peak_strength(with_findings(wide))
    assert peak_strength(with_findings(replace(wide, log10p=5.0))) > peak_strength(with_findings(wide))
    # per-bucket detectors: the bucket's negative messages
    assert peak_strength(signal("ticker:X", DAY0_S, True, 0.5))[0] == 25
