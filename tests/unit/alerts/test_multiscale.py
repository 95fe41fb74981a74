"""Multi-scale detection on sparse counts: bursts at the right scale, gaps, shrinkage, determinism."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest

from alerts.burst import BurstParams
from alerts.detectors import Signal
from alerts.multiscale import MultiScaleConfig, MultiScaleDetector
from alerts.rhythm import day_of
from monitor.windows.buckets import ALL_KEY, BucketStats
from tests.unit.alerts.builders import DAY0_S, bucket

B = 300
DAY = 86_400
KEY = "ticker:SPRS"
OTHER = "ticker:BUSY"


def cfg(**kw: object) -> MultiScaleConfig:
    return MultiScaleConfig(bucket_s=B, **kw)  # type: ignore[arg-type]


def background(i: int) -> dict[str, BucketStats]:
    """Bucket ``i``: a busy ticker with 4 messages (1 negative every 4th bucket) and the sparse key
    with one message every 96 buckets (3 a day), every 5th of them negative."""
    t = DAY0_S + i * B
    out = {OTHER: bucket(OTHER, t, int(i % 4 == 0), 4 - int(i % 4 == 0))}
    if i % 96 == 0:
        neg = int((i // 96) % 5 == 0)
        out[KEY] = bucket(KEY, t, neg, 1 - neg)
    return out


def with_all(keys: dict[str, BucketStats], t: int) -> dict[str, BucketStats]:
    total = BucketStats(ALL_KEY, t)
    for stats in keys.values():
        total = total.merge(BucketStats(ALL_KEY, t, stats.negative, stats.neutral, stats.positive, stats.score_sum))
    return {**keys, ALL_KEY: total} if total.volume else keys


def run(det: MultiScaleDetector, buckets: Iterator[tuple[int, dict[str, BucketStats]]]) -> list[Signal]:
    out: list[Signal] = []
    for i, keys in buckets:
        t = DAY0_S + i * B
        full = with_all(keys, t)
        out += det.step(t, full, [k for k, s in full.items() if s.volume])
    return out


def history(days: int) -> Iterator[tuple[int, dict[str, BucketStats]]]:
    for i in range(days * DAY // B):
        yield i, background(i)


def test_a_sudden_burst_on_a_sparse_key_fires_at_the_shortest_scale() -> None:
    det = MultiScaleDetector(cfg())
    assert not [s for s in run(det, history(4)) if s.active]
    start = 4 * DAY // B
    burst = ((start + j, {**background(start + j), KEY: bucket(KEY, DAY0_S + (start + j) * B, 2, 0)})
             for j in range(3))
    fired = [s for s in run(det, burst) if s.active and s.key == KEY]
    assert fired, "six negatives in 15 minutes on a key with ~0.6 a day must fire"
    top = fired[0].top
    assert top is not None and top.detector == "burst" and top.scale_s == 1800
    assert top.negatives >= 4 and top.expected < 0.25 and top.log10p >= 5  # its messages come at midnight: weighs more
    assert fired[0].triggered[0] == "burst@30m"


def test_a_slow_story_fires_at_a_long_scale_and_never_at_the_short_one() -> None:
    det = MultiScaleDetector(cfg())
    run(det, history(4))
    start = 4 * DAY // B
    slow = []
    for j in range(14 * 12):  # 14 hours, one negative every 40 minutes
        i = start + j
        keys = background(i)
        if j % 8 == 0:
            keys[KEY] = bucket(KEY, DAY0_S + i * B, 1, 0)
        slow.append((i, keys))
    fired = [s for s in run(det, iter(slow)) if s.active and s.key == KEY]
    assert fired
    assert all(f.scale_s >= 6 * 3600 for s in fired for f in s.findings if f.detector == "burst")


def test_a_collection_gap_is_neither_calm_nor_a_burst() -> None:
    """Two days without any data (the whole stream) change neither the key's rate nor alert after."""
    det = MultiScaleDetector(cfg())
    run(det, history(4))
    before = det.keys[KEY].baseline.rates(det.stream, det.cfg.prior_strength)
    gap_end = 6 * DAY // B
    run(det, ((i, {}) for i in range(4 * DAY // B, gap_end)))
    after_gap = [(i, background(i)) for i in range(gap_end, gap_end + 2 * DAY // B)]
    signals = run(det, iter(after_gap))
    assert not [s for s in signals if s.active]
    after = det.keys[KEY].baseline.rates(det.stream, det.cfg.prior_strength)
    assert before is not None and after is not None
    assert after.rate == pytest.approx(before.rate, rel=0.5)


def test_calm_tail_of_zeros_lowers_the_rate_but_a_gap_does_not() -> None:
    calm, gap = MultiScaleDetector(cfg()), MultiScaleDetector(cfg())
    run(calm, history(3))
    run(gap, history(3))
    start = 3 * DAY // B
    run(calm, ((i, {OTHER: background(i)[OTHER]}) for i in range(start, start + 4 * DAY // B)))  # key silent
    run(gap, ((i, {}) for i in range(start, start + 4 * DAY // B)))  # nothing at all
    for det in (calm, gap):
        det.keys[KEY].baseline.catch_up(det.stream)
    calm_rate = calm.keys[KEY].baseline.rates(calm.stream, 2.0)
    gap_rate = gap.keys[KEY].baseline.rates(gap.stream, 2.0)
    assert calm_rate is not None and gap_rate is not None
    assert calm_rate.rate < 0.8 * gap_rate.rate


def test_a_key_with_one_message_borrows_its_groups_rate() -> None:
    det = MultiScaleDetector(cfg())
    run(det, history(3))
    t_i = 3 * DAY // B
    run(det, iter([(t_i, {**background(t_i), "ticker:NEW": bucket("ticker:NEW", DAY0_S + t_i * B, 0, 1)})]))
    new = det.keys["ticker:NEW"].baseline.rates(det.stream, 2.0)
    group = det.stream.group_prior("ticker")
    assert new is not None and group is not None
    assert new.rate == pytest.approx(group[0], rel=0.05)


def test_a_volume_surge_with_ordinary_sentiment_does_not_alert() -> None:
    det = MultiScaleDetector(cfg())
    run(det, history(4))
    start = 4 * DAY // B
    surge = []
    for j in range(6):  # 30 messages in 30 minutes, 20% negative (the key's usual share)
        i = start + j
        surge.append((i, {**background(i), KEY: bucket(KEY, DAY0_S + i * B, 1, 4)}))
    assert not [s for s in run(det, iter(surge)) if s.active and s.key == KEY]


def test_buckets_must_be_stepped_in_order() -> None:
    det = MultiScaleDetector(cfg())
    det.step(DAY0_S, {}, ())
    with pytest.raises(ValueError, match="in order"):
        det.step(DAY0_S + 2 * B, {}, ())


def test_no_alert_before_the_baseline_has_history() -> None:
    det = MultiScaleDetector(cfg(min_history_s=12 * 3600))
    t = DAY0_S
    sig = det.step(t, with_all({KEY: bucket(KEY, t, 9, 0)}, t), [KEY])
    assert sig[0].suppressed == "insufficient_history" and not sig[0].active


def test_poisson_cusum_accumulates_a_sustained_excess_and_reports_its_run() -> None:
    det = MultiScaleDetector(cfg(burst=BurstParams(log10p=50, cusum_threshold_nats=6.0), scales_s=(1800, 7200)))
    run(det, history(4))
    start = 4 * DAY // B
    story = []
    for j in range(6 * 12):
        i = start + j
        keys = background(i)
        if j % 6 == 0:
            keys[KEY] = bucket(KEY, DAY0_S + i * B, 1, 0)
        story.append((i, keys))
    fired = [s for s in run(det, iter(story)) if s.active and s.key == KEY]
    assert fired and fired[0].top is not None and fired[0].top.detector == "cusum"
    assert fired[0].top.scale_s >= 3600 and fired[0].top.log10p >= 6.0
    assert fired[0].top.start_s == fired[0].bucket_end_s - fired[0].top.scale_s, "its run: where its evidence starts"


def _pair_then_quiet(det: MultiScaleDetector) -> list[Signal]:
    """Four days of background, then two negative stories in one bucket on the sparse key."""
    run(det, history(4))
    start = 4 * DAY // B
    pair = [(start, {**background(start), KEY: bucket(KEY, DAY0_S + start * B, 2, 0)})]
    return [s for s in run(det, iter(pair)) if s.key == KEY]


def test_a_pair_of_negatives_fires_only_at_the_shortest_scale_when_allowed() -> None:
    loose = BurstParams(log10p=1.0, short_min_negatives=2, short_log10p=1.0)  # every scale would find it
    [sig] = _pair_then_quiet(MultiScaleDetector(cfg(burst=loose, scales_s=(1800, 7200))))
    bursts = [f for f in sig.findings if f.detector == "burst"]
    assert [f.scale_s for f in bursts] == [1800] and bursts[0].negatives == 2


def test_a_pair_of_negatives_also_fires_at_the_scales_up_to_short_max_scale_s() -> None:
    loose = BurstParams(log10p=1.0, short_min_negatives=2, short_log10p=1.0, short_max_scale_s=7200)
    [sig] = _pair_then_quiet(MultiScaleDetector(cfg(burst=loose, scales_s=(1800, 7200, 21600))))
    bursts = [f for f in sig.findings if f.detector == "burst"]
    assert sorted(f.scale_s for f in bursts) == [1800, 7200]


def test_a_pair_of_negatives_never_fires_without_the_exception() -> None:
    [sig] = _pair_then_quiet(MultiScaleDetector(cfg(burst=BurstParams(log10p=1.0), scales_s=(1800, 7200))))
    assert not [f for f in sig.findings if f.detector == "burst"]


def test_the_pair_settings_reach_the_detector() -> None:
    from monitor.config import AlertSettings

    s = AlertSettings(burst_short_min_negatives=2, burst_short_log10p=6.5, burst_short_max_scale_s=7200)
    burst = MultiScaleConfig.from_settings(s, B).burst
    assert (burst.short_min_negatives, burst.short_log10p, burst.short_max_scale_s) == (2, 6.5, 7200)


def test_one_off_keys_do_not_join_their_group_so_they_cannot_dilute_its_rate() -> None:
    """Found by review: every key ever seen stayed a member and added the whole stream's exposure, so one-off
    cashtags drove the ticker group's rate toward zero and new keys paged on a pair of negatives."""
    det = MultiScaleDetector(cfg())

    def with_junk(days: int) -> Iterator[tuple[int, dict[str, BucketStats]]]:
        for i, keys in history(days):
            junk = f"ticker:J{i}"  # a new one-off ticker in every bucket, one neutral message each
            yield i, {**keys, junk: bucket(junk, DAY0_S + i * B, 0, 1)}

    run(det, with_junk(4))
    assert det.stream.members["ticker"] == 2, "the busy and the sparse ticker, no one-off"
    clean = MultiScaleDetector(cfg())
    run(clean, history(4))
    junk_rate = det.stream.group_prior("ticker")
    clean_rate = clean.stream.group_prior("ticker")
    assert junk_rate is not None and clean_rate is not None
    assert junk_rate[0] > clean_rate[0] / 3, "diluted at most by the larger stream, not 1,000-fold"


def test_a_member_unseen_for_a_week_leaves_its_group() -> None:
    det = MultiScaleDetector(cfg())
    run(det, history(2))
    assert det.keys[KEY].member
    quiet = ((i, {OTHER: background(i)[OTHER]}) for i in range(2 * DAY // B, 10 * DAY // B))
    run(det, quiet)
    assert not det.keys[KEY].member and det.stream.members["ticker"] == 1


def test_membership_expiry_keeps_one_heap_entry_per_member_key_however_long_it_runs() -> None:
    """Found by review: an entry per key and bucket with messages, kept for a week: ~200 KB per busy key."""
    det = MultiScaleDetector(cfg())
    run(det, history(9))
    members = sum(st.member for st in det.keys.values())
    assert members == 2
    assert len(det.expiries) <= members


def test_a_member_key_evicted_and_seen_again_leaves_its_group_once_on_its_own_schedule() -> None:
    det = MultiScaleDetector(cfg())
    run(det, history(2))
    del det.keys[KEY]  # as eviction does, after _leave_group
    det.stream.drop_member("ticker")
    run(det, ((i, background(i)) for i in range(2 * DAY // B, 3 * DAY // B)))
    assert det.keys[KEY].member and det.stream.members["ticker"] == 2
    quiet = ((i, {OTHER: background(i)[OTHER]}) for i in range(3 * DAY // B, 11 * DAY // B))
    run(det, quiet)
    assert not det.keys[KEY].member and det.stream.members["ticker"] == 1, "left once, not once per heap entry"
    assert len(det.expiries) <= 1


def test_a_key_needs_its_messages_within_a_week_so_a_cashtag_seen_now_and_then_never_joins() -> None:
    """Found by the regression review: a count without expiry let a cashtag seen three times over weeks join, and a
    pool of such keys diluted the group's rate 50-fold again."""
    det = MultiScaleDetector(cfg())
    rare = "ticker:RARE"

    def sightings() -> Iterator[tuple[int, dict[str, BucketStats]]]:
        for i, keys in history(30):
            if i % (8 * DAY // B) == 0:  # one message every 8 days
                keys = {**keys, rare: bucket(rare, DAY0_S + i * B, 0, 1)}
            yield i, keys

    run(det, sightings())
    assert not det.keys[rare].member and det.stream.members["ticker"] == 2


def test_the_score_test_needs_negatives_a_positive_key_going_neutral_is_not_negative_sentiment() -> None:
    """Found by review: it paged on 0 negatives of 28 because the mean score fell from +0.69 to 0."""
    from alerts.baseline import Rates
    from alerts.shift import ShiftParams, score_test

    positive_key = Rates(rate_shape=2.0, rate_inverse_scale=1_000.0, neg_share=0.1, share_weight=500.0,
                         mean_score=0.69, history_s=30 * DAY)
    assert score_test(0, 28, 0.0, positive_key, 21_600, ShiftParams()) is None
    assert score_test(20, 28, -16.0, positive_key, 21_600, ShiftParams()) is not None


def test_a_second_story_right_after_an_episode_is_reported_once_not_at_every_scale() -> None:
    """Found by review: once an episode ends every window starts where it ended, so all four scales held the same
    messages and the notice listed "burst@30m .. burst@24h" with one window's numbers, reading as a 24 h story."""
    det = MultiScaleDetector(cfg())
    run(det, history(4))
    start = 4 * DAY // B

    def step(j: int, negatives: int) -> Signal:
        keys = background(start + j)
        if negatives:
            keys[KEY] = bucket(KEY, DAY0_S + (start + j) * B, negatives, 0)
        full = with_all(keys, DAY0_S + (start + j) * B)
        return next(s for s in det.step(DAY0_S + (start + j) * B, full, [*full, KEY]) if s.key == KEY)

    assert [step(j, 3).active for j in range(3)][-1], "the first story fires"
    j = 3
    while step(j, 0).active:  # its episode lasts while a window (up to 24 h) still holds it
        j += 1
    second = [step(j + k, 3) for k in range(1, 3)]
    assert any(s.active for s in second), "the second story fires"
    for sig in second:
        counts = [(f.detector, f.negatives, f.volume) for f in sig.findings]
        assert len(counts) == len(set(counts)), sig.triggered


def test_a_window_cut_at_the_end_of_an_episode_gives_its_rates_per_hour_over_its_real_length() -> None:
    """Found by review: a window cut to 2 h 15 m at the end of an earlier episode was reported as "burst@6h ...
    usual 0.17 negatives/h, now 1.3/h": its counts divided by the nominal 6 h, a third of the real rates."""
    det = MultiScaleDetector(cfg())
    run(det, history(4))
    start = 4 * DAY // B

    def step(j: int, negatives: int) -> Signal:
        t = DAY0_S + (start + j) * B
        keys = background(start + j)
        if negatives:
            keys[KEY] = bucket(KEY, t, negatives, 0)
        full = with_all(keys, t)
        return next(s for s in det.step(t, full, [*full, KEY]) if s.key == KEY)

    assert [step(j, 3).active for j in range(3)][-1], "the first story fires"
    j = 3
    while step(j, 0).active:
        j += 1
    second = [step(j + k, 3) for k in range(1, 3)]
    cut = [(sig, f) for sig in second for f in sig.findings
           if f.detector == "burst" and f.start_s is not None and f.start_s > sig.bucket_end_s - f.scale_s]
    assert cut, "the second story fires on windows cut at the end of the first"
    for sig, f in cut:
        assert f.start_s is not None
        hours = (sig.bucket_end_s - f.start_s) / 3600
        assert f.observed == pytest.approx(f.negatives / hours) and f.baseline == pytest.approx(f.expected / hours)
        if f.scale_s == det.cfg.scales_s[0]:
            assert sig.expected_negatives_per_h == pytest.approx(f.expected / hours)


def test_a_flood_of_one_off_keys_evicts_them_not_the_established_keys_or_all() -> None:
    """Found by review: eviction by last sighting dropped every real key without a message in the spam bucket, then
    ``all`` (ties by name); their baselines restarted from nothing and paged on ordinary flow."""
    det = MultiScaleDetector(cfg(max_keys=50))
    run(det, history(3))
    i = 3 * DAY // B
    flood = {f"ticker:J{n:04d}": bucket(f"ticker:J{n:04d}", DAY0_S + i * B, 0, 1) for n in range(200)}
    run(det, iter([(i, {**background(i), **flood})]))
    assert {KEY, OTHER, ALL_KEY} <= set(det.keys), "the established keys keep their baselines"
    assert len(det.keys) == 45, "evicted down to 90% of the bound, so a full state is not ranked at every bucket"
    run(det, iter([(i + 1, {**background(i + 1), "ticker:NEW1": bucket("ticker:NEW1", DAY0_S + (i + 1) * B, 0, 1)})]))
    assert len(det.keys) == 46


def test_a_wave_of_negative_one_off_keys_with_findings_is_evicted_before_an_established_key() -> None:
    """Found by the regression review: keys with a finding were exempt from eviction, so a negative spam wave (each
    junk key with a finding for hours) held the state past its bound while the real keys were evicted every bucket."""
    det = MultiScaleDetector(cfg(max_keys=50))
    run(det, history(3))
    i = 3 * DAY // B
    wave = {f"ticker:J{n:03d}": bucket(f"ticker:J{n:03d}", DAY0_S + i * B, 10, 0) for n in range(64)}
    run(det, iter([(i, {**background(i), **wave})]))
    for j in range(1, 13):
        run(det, iter([(i + j, background(i + j))]))
        assert len(det.keys) <= 50 and {KEY, OTHER, ALL_KEY} <= set(det.keys)


def _two_rhythms(days: int) -> Iterator[tuple[int, dict[str, BucketStats]]]:
    """A US-hours stream (busy 14-21 UTC, a trickle at night) and a Tokyo-hours ticker (busy 0-6 UTC, one message a
    bucket, each negative with probability 1/8): ordinary flow for both, no story anywhere."""
    rnd = random.Random(3)
    for i in range(days * DAY // B):
        t = DAY0_S + i * B
        hour = (t // 3600) % 24
        busy = 14 <= hour < 21
        out = {f"ticker:US{n}": bucket(f"ticker:US{n}", t, int(busy and (i + n) % 10 == 0), 3 if busy else 0)
               for n in range(4) if busy or (i + n) % 2 == 0}
        out = {k: v if v.volume else bucket(k, t, 0, 1) for k, v in out.items()}
        if hour < 6:
            negative = int(rnd.random() < 1 / 8)
            out["ticker:TKY"] = bucket("ticker:TKY", t, negative, 1 - negative)
        yield i, out


@pytest.mark.parametrize("profile", [True, False])
def test_a_key_busy_in_other_hours_than_the_stream_is_judged_by_its_own_rhythm(profile: bool) -> None:
    """Found by review: expected counts followed the whole stream's rhythm, so a Tokyo-hours ticker was expected to
    be near silent at its own busy hours and paged there on ordinary flow (36 false pages on 15 such tickers in 8
    weeks)."""
    det = MultiScaleDetector(cfg(hour_profile=profile))
    fired = [s for s in run(det, _two_rhythms(21)) if s.active and s.key == "ticker:TKY"]
    assert (len(fired) == 0) is profile


def test_the_rhythm_of_a_key_on_the_streams_rhythm_stays_near_one_and_a_key_off_it_weighs_its_own_hours() -> None:
    det = MultiScaleDetector(cfg())
    run(det, _two_rhythms(14))
    us = det.keys["ticker:US1"].baseline.rhythm
    assert us is not None
    weights = us.weights
    assert weights is not None
    busy = [weights.hours[h] for h in range(14, 21)]
    assert max(busy) / min(busy) < 1.5 and 0.6 < busy[3] < 1.6
    tokyo = det.keys["ticker:TKY"].baseline.rhythm
    assert tokyo is not None
    tokyo_weights = tokyo.weights
    assert tokyo_weights is not None
    assert min(tokyo_weights.hours[:6]) > 5 * max(tokyo_weights.hours[14:21]), "its own hours weigh more"


def _round_the_clock(days: int) -> Iterator[tuple[int, dict[str, BucketStats]]]:
    """A stream busy on weekdays (a trickle at weekends) and a coin with one message a bucket every day, each negative
    with probability 1/8."""
    rnd = random.Random(5)
    for i in range(days * DAY // B):
        t = DAY0_S + i * B
        weekend = day_of(t) >= 5
        out = {f"ticker:US{n}": bucket(f"ticker:US{n}", t, int(not weekend and (i + n) % 10 == 0), 2)
               for n in range(4) if not weekend or (i + n) % 6 == 0}
        negative = int(rnd.random() < 1 / 8)
        out["ticker:COIN"] = bucket("ticker:COIN", t, negative, 1 - negative)
        yield i, out


@pytest.mark.parametrize("profile", [True, False])
def test_a_key_busy_at_weekends_when_the_stream_is_not_is_judged_by_its_own_week(profile: bool) -> None:
    """Found by review: round-the-clock tickers in a weekday stream paged at weekends and nights (31 against 11)."""
    det = MultiScaleDetector(cfg(hour_profile=profile))
    fired = [s for s in run(det, _round_the_clock(28)) if s.active and s.key == "ticker:COIN"
             and s.bucket_start_s >= DAY0_S + 14 * DAY]  # its first weekends have no history to go by
    assert (len(fired) == 0) is profile
    if profile:
        rhythm = det.keys["ticker:COIN"].baseline.rhythm
        assert rhythm is not None
        w = rhythm.weights
        assert w is not None
        assert min(w.days[5:]) > 3 * max(w.days[:5])


def test_each_rhythm_marginal_keeps_the_keys_exposure_so_its_rate_stays_a_rate() -> None:
    from array import array

    from alerts.rhythm import Marginal

    marginal = Marginal(array("d", [0.0] * 4), array("d", [40.0, 2.0, 0.0, 1.0]), array("d", [10.0, 80.0, 0.0, 30.0]))
    factors = marginal.factors(48.0)
    assert factors is not None and factors[2] == 1.0, "no stream exposure in a slot: no weight to give"
    exposure = list(marginal.exposure)
    assert sum(f * e for f, e in zip(factors, exposure, strict=True)) == pytest.approx(sum(exposure))
    assert factors[0] > 3 * factors[1], "the key's busy slot, quiet for the stream, weighs more"


def test_an_off_rhythm_keys_exposure_takes_its_own_messages_out_at_their_own_hours_weight() -> None:
    """Found by review: the key's own volume was taken out at the window's average weight, so a Tokyo key's own night
    flow, most of the stream then, inflated its expected count 3 to 7 times at its session's open."""
    det = MultiScaleDetector(cfg())
    volumes: dict[int, tuple[int, int]] = {}  # bucket start -> (all volume, the key's)
    for i, keys in itertools.islice(_two_rhythms(15), 14 * DAY // B + 24):
        t = DAY0_S + i * B
        full = with_all(keys, t)
        volumes[t] = (full[ALL_KEY].volume if ALL_KEY in full else 0,
                      keys["ticker:TKY"].volume if "ticker:TKY" in keys else 0)
        det.step(t, full, [k for k, v in full.items() if v.volume])
    st = det.keys["ticker:TKY"]
    weights = det._weights(st)
    assert weights is not None
    end = DAY0_S + 14 * DAY + 24 * B
    for scale in (1800, 7200, 21600, 86400):
        lo = end - scale
        own = [b for b in st.baseline.recent if lo <= b.start_s < end]
        exact = sum(weights.at(t) * (total - mine) for t, (total, mine) in volumes.items() if lo <= t < end)
        got = det._exposure(st, lo, end, sum(b.volume for b in own), weights,
                            sum(weights.at(b.start_s) * b.volume for b in own))
        assert got == pytest.approx(exact), scale
    [window] = [w for w in det._windows(st, end - B) if w.start_s == end - 7200][:1]
    assert window.exposure == pytest.approx(
        sum(weights.at(t) * (total - mine) for t, (total, mine) in volumes.items() if end - 7200 <= t < end))


def test_the_expiry_heap_stays_within_a_small_multiple_of_the_key_bound_under_a_flood_of_one_off_keys() -> None:
    """Found by review: evicted keys' heap entries stayed until due (7 days): 200,000 entries for 900 live keys."""
    det = MultiScaleDetector(cfg(max_keys=100))
    serial = itertools.count()
    for b in range(30):
        start = DAY0_S + b * B
        buckets = {ALL_KEY: BucketStats(ALL_KEY, start, neutral=600)}
        for key in (f"ticker:X{next(serial):05d}" for _ in range(200)):
            buckets[key] = BucketStats(key, start, neutral=3)  # three messages: a member of its group
        det.step(start, buckets, [])
    assert len(det.keys) <= 100
    assert len(det.expiries) <= 2 * len(det.keys) + 1024 + 200, "one bucket's members on top of the rebuild bound"


def test_a_keys_rhythm_weights_do_not_depend_on_how_often_it_is_evaluated() -> None:
    """Found by review: the weights were recomputed every 12 catch-ups of the key, so a key also evaluated at its empty
    buckets (a live alert is, a rebuild after a restart does not) got other weights, and other alerts, from then on."""
    sparse, often = MultiScaleDetector(cfg()), MultiScaleDetector(cfg())
    seen: list[dict[int, float]] = [{}, {}]
    for i, keys in _two_rhythms(4):
        t = DAY0_S + i * B
        full = with_all(keys, t)
        for det, out, extra in ((sparse, seen[0], []), (often, seen[1], ["ticker:TKY"] if i % 7 == 0 else [])):
            for s in det.step(t, full, [k for k, v in full.items() if v.volume] + extra):
                if s.key == "ticker:TKY" and "ticker:TKY" in keys:
                    out[t] = s.expected_negatives_per_h
    assert len(seen[0]) > 100 and seen[0].keys() == seen[1].keys()
    assert seen[1] == pytest.approx(seen[0], rel=1e-9)


def test_stepping_in_parts_gives_the_signals_of_one_step_and_is_never_taken_for_a_finished_state() -> None:
    """The engine lets other tasks run between parts (a bucket of 96k spam keys was one 12 s step: found by review);
    a step abandoned between them must not look like a state standing at the bucket's start."""
    whole, parts = MultiScaleDetector(cfg()), MultiScaleDetector(cfg())
    run(whole, history(1))
    run(parts, history(1))
    t = DAY0_S + DAY
    keys = with_all({f"ticker:J{n:03d}": bucket(f"ticker:J{n:03d}", t, 1, 1) for n in range(45)}, t)
    expected = whole.step(t, keys, list(keys))
    stepping = parts.stepping(t, keys, list(keys), chunk_keys=10)
    assert next(stepping) == [] and parts.until_s is None, "mid-step: valid for no bucket sequence"
    got = [sig for part in stepping for sig in part]
    assert [(s.key, s.expected_negatives_per_h, s.triggered) for s in got] == [
        (s.key, s.expected_negatives_per_h, s.triggered) for s in expected]
    assert parts.until_s == whole.until_s == t + B
