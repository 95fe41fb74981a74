"""Alert lifecycle: pending/firing/resolved, cooldown, repeats, flapping, silences, grouping."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from alerts.detectors import Signal
from alerts.lifecycle import AlertState, LifecyclePolicy, dedup_key, group_key, prunable, step
from alerts.model import AlertStatus, Notification, Silence
from monitor.config import AlertSettings, ConfigError, load_settings
from tests.unit.alerts.builders import DAY0_S, signal

B = 300
KEY = "ticker:TSLA"
Bucket = bool | Callable[[int], Signal]
"""Active or quiet, or a function of the bucket end making the signal."""


def run(pattern: Sequence[Bucket], policy: LifecyclePolicy, silences: Sequence[Silence] = (),
        key: str = KEY) -> tuple[list[Notification], dict[str, AlertState]]:
    states: dict[str, AlertState] = {}
    out: list[Notification] = []
    for i, bucket in enumerate(pattern):
        now = DAY0_S + (i + 1) * B
        sig = signal(key, now, bucket) if isinstance(bucket, bool) else bucket(now)
        result = step(states, [sig], now, policy, silences)
        states.update(result.states)
        out.extend(result.notifications)
    return out, states


def share(value: float) -> Callable[[int], Signal]:
    """An active bucket of ``KEY`` whose negative share is ``value``."""
    return lambda now: signal(KEY, now, True, value)


def statuses(notifications: Sequence[Notification]) -> list[str]:
    return [str(n.status) for n in notifications]


def test_persistent_condition_fires_exactly_once_then_resolves_once() -> None:
    out, states = run([False] * 3 + [True] * 10 + [False] * 5, LifecyclePolicy(repeat_interval_s=0))
    assert statuses(out) == ["firing", "resolved"]
    assert states[dedup_key("negative_sentiment", KEY)].status is AlertStatus.RESOLVED


def test_for_s_keeps_alert_pending_until_the_condition_held_long_enough() -> None:
    out, _ = run([True] * 2 + [False] + [True] * 3, LifecyclePolicy(for_s=2 * B))
    assert statuses(out) == ["firing"]
    assert out[0].event_time_s == DAY0_S + 6 * B  # pending since bucket 4, fires 2 buckets later


def test_resolution_needs_n_consecutive_quiet_buckets() -> None:
    out, states = run([True] + [False, True] * 5 + [False], LifecyclePolicy(resolve_after_buckets=2))
    assert statuses(out) == ["firing"]
    assert states[dedup_key("negative_sentiment", KEY)].status is AlertStatus.FIRING


def test_still_firing_alert_is_repeated_after_repeat_interval() -> None:
    out, _ = run([True] * 13, LifecyclePolicy(repeat_interval_s=6 * B))
    assert statuses(out) == ["firing"] * 3
    assert [a.repeat for n in out for a in n.alerts] == [False, True, True]


def test_flapping_series_does_not_spam() -> None:
    flapping = ([True] * 2 + [False] * 3) * 12  # 12 episodes in 5 hours
    naive, _ = run(flapping, LifecyclePolicy(cooldown_s=0, flap_max_episodes=50, repeat_interval_s=0))
    assert len(naive) == 24  # the series really flaps: one firing + one resolved per episode
    policy = LifecyclePolicy(cooldown_s=1800, flap_window_s=4 * 3600, flap_max_episodes=3,
                             repeat_interval_s=0)
    damped, states = run(flapping, policy)
    assert len(damped) <= 5
    assert max(n.event_time_s for n in damped) <= DAY0_S + 20 * B  # quiet once marked flapping
    assert states[dedup_key("negative_sentiment", KEY)].status is AlertStatus.FIRING  # held while flapping
    assert any(a.flapping for n in damped for a in n.alerts)
    calmed, _ = run([*flapping, *[False] * 6], policy)
    assert calmed[:-1] == damped and calmed[-1].status is AlertStatus.RESOLVED


def test_a_story_back_every_35_minutes_stays_one_silent_firing_episode() -> None:
    """Found by review: 6 quiet buckets met the flap rule (2 x 3), so a story back every 7 buckets resolved and
    paged again each time: 28 pages in 8 hours, all marked flapping."""
    slow = ([True] + [False] * 6) * 14
    policy = LifecyclePolicy(repeat_interval_s=0)
    out, states = run(slow, policy)
    assert statuses(out) == ["firing", "resolved", "firing", "resolved", "firing"]  # flapping from the 3rd
    assert out[-1].event_time_s == DAY0_S + 15 * B and out[-1].alerts[0].flapping
    assert states[dedup_key("negative_sentiment", KEY)].status is AlertStatus.FIRING
    calmed, _ = run([*slow, False], policy)  # quiet for its whole 35-minute cycle: the story is over
    assert calmed[:-1] == out and calmed[-1].status is AlertStatus.RESOLVED
    assert calmed[-1].event_time_s == DAY0_S + (len(slow) + 1) * B


@pytest.mark.parametrize("quiet", [16, 19, 22])  # a story back every 85, 100 and 115 minutes
def test_a_story_back_more_slowly_than_the_cooldown_stays_one_episode_once_flapping(quiet: int) -> None:
    """Found by review: the flap count looked back from the quiet bucket, so while the alert waited out its cycle the
    oldest start left the 4 h window, the plain rule resolved it, and each comeback paged again: ~34 pages a day."""
    cycle = [True] + [False] * quiet
    out, states = run(cycle * 30, LifecyclePolicy(repeat_interval_s=0))
    assert len(out) <= 5, statuses(out)  # until it is seen to flap (3 starts), then one silent episode
    assert states[dedup_key("negative_sentiment", KEY)].status is AlertStatus.FIRING
    calmed, _ = run([*cycle * 30, *[False] * (quiet + 1)], LifecyclePolicy(repeat_interval_s=0))
    assert calmed[-1].status is AlertStatus.RESOLVED  # quiet for a whole cycle: over


def test_an_alert_that_flapped_then_fired_steadily_for_hours_resolves_like_any_other() -> None:
    policy = LifecyclePolicy(repeat_interval_s=0)
    flapped = [True] + [False] * 10 + [True] + [False] * 10  # two comebacks within the flap window
    steady = [True] * (policy.flap_window_s // B + 12)  # then firing for longer than the window
    out, _ = run([*flapped, *steady, *[False] * policy.resolve_after_buckets], policy)
    assert out[-1].status is AlertStatus.RESOLVED  # after the plain 2 quiet buckets, not hours later


def thin(neg_share: float, volume: int = 15) -> Callable[[int], Signal]:
    """A bucket the detectors did not judge: too few messages (the builders' baseline share is 0.1)."""
    return lambda now: replace(signal(KEY, now, False, neg_share), volume=volume, suppressed="low_volume")


def test_a_thin_bucket_more_negative_than_usual_does_not_resolve_the_alert() -> None:
    """Found by review: two buckets of 15 messages at 90% negative resolved the alert and the next normal-volume
    bucket paged again (three pages for one story)."""
    out, _ = run([True] * 4 + [thin(0.9)] * 2 + [True] * 8, LifecyclePolicy(repeat_interval_s=0))
    assert statuses(out) == ["firing"]
    out, _ = run([True] * 4 + [thin(0.9)] * 6, LifecyclePolicy(repeat_interval_s=0))
    assert out[1:] == [], "nor does a run of them: the story may still be going on"


@pytest.mark.parametrize("quiet", [thin(0.0, volume=0), thin(0.1, volume=3)], ids=["empty", "thin-at-baseline"])
def test_an_alert_on_a_key_that_falls_silent_still_resolves(quiet: Bucket) -> None:
    out, _ = run([True] * 4 + [quiet] * 2, LifecyclePolicy(repeat_interval_s=0))
    assert statuses(out) == ["firing", "resolved"]
    paused, _ = run([True] * 4 + [thin(0.9), quiet] * 2, LifecyclePolicy(repeat_interval_s=0))
    assert statuses(paused) == ["firing", "resolved"], "a thin negative bucket pauses the quiet count, no reset"


def test_an_inactive_state_on_a_key_with_steady_data_is_pruned_once_its_memory_ends() -> None:
    """Found by review: a state that went resolved -> pending -> inactive was updated by every quiet bucket of
    its key and never pruned (then the state cap evicted alerts still in cooldown instead)."""
    policy = LifecyclePolicy(for_s=B, repeat_interval_s=0)
    blip = [True] * 3 + [False] * 3 + [True, False]  # fires, resolves at bucket 5, one-bucket blip stays pending
    key = dedup_key("negative_sentiment", KEY)
    _, states = run([*blip, *[False] * (policy.memory_s // B - 4)], policy)
    assert states[key].status is AlertStatus.INACTIVE
    assert not prunable(states[key], states[key].updated_at_s, policy), "cooldown/flap memory still counts"
    _, states = run([*blip, *[False] * (policy.memory_s // B - 3)], policy)
    assert states[key].updated_at_s == DAY0_S + 5 * B + policy.memory_s  # memory_s after its resolution
    assert prunable(states[key], states[key].updated_at_s, policy)


def test_reminders_more_often_than_the_cooldown_are_refused_at_start(tmp_path: Path) -> None:
    """``cooldown_s`` is the minimum time between two firing notifications, and a reminder is one."""
    path = tmp_path / "c.toml"
    path.write_text("[alerts]\ncooldown_s = 1800\nrepeat_interval_s = 600\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    [line] = str(info.value).splitlines()[1:]
    assert "alerts.repeat_interval_s = 600" in line and "alerts.cooldown_s (1800)" in line
    assert AlertSettings(cooldown_s=1800, repeat_interval_s=0).repeat_interval_s == 0  # no reminders is fine


def test_new_episode_within_cooldown_is_announced_only_after_cooldown_if_still_firing() -> None:
    pattern = [True] + [False] * 2 + [True] * 8  # resolved at bucket 3, refires at bucket 4
    out, _ = run(pattern, LifecyclePolicy(cooldown_s=6 * B, repeat_interval_s=0, flap_max_episodes=10))
    assert statuses(out) == ["firing", "resolved", "firing"]
    assert out[2].event_time_s == DAY0_S + 7 * B  # first firing at bucket 1 + cooldown of 6 buckets


def test_silenced_key_stays_quiet_and_is_announced_when_silence_ends_if_still_firing() -> None:
    silence = Silence(id="s1", matcher="ticker:*", starts_at_s=DAY0_S, ends_at_s=DAY0_S + 8 * B)
    out, _ = run([True] * 7, LifecyclePolicy(repeat_interval_s=0), [silence])
    assert out == []
    out, _ = run([True] * 10, LifecyclePolicy(repeat_interval_s=0), [silence])
    assert statuses(out) == ["firing"] and out[0].event_time_s == DAY0_S + 8 * B


def test_silenced_episode_that_ends_while_silenced_never_notifies() -> None:
    silence = Silence(id="s1", matcher="ticker:TSLA", starts_at_s=DAY0_S, ends_at_s=DAY0_S + 10 * B)
    out, _ = run([True] * 4 + [False] * 10, LifecyclePolicy(), [silence])
    assert out == []


def test_an_announced_alert_that_resolves_under_a_silence_still_sends_its_resolved() -> None:
    silence = Silence(id="s1", matcher="ticker:TSLA", starts_at_s=DAY0_S + 2 * B, ends_at_s=DAY0_S + 6 * B)
    out, states = run([True] * 3 + [False] * 7, LifecyclePolicy(repeat_interval_s=0), [silence])
    assert statuses(out) == ["firing", "resolved"]
    assert out[1].event_time_s < DAY0_S + 6 * B, "sent when it resolved, inside the silence"
    assert states[dedup_key("negative_sentiment", KEY)].status is AlertStatus.RESOLVED


def test_silence_on_a_ticker_also_mutes_its_topic_ticker_keys() -> None:
    silence = Silence(id="s1", matcher="ticker:TSLA", starts_at_s=DAY0_S, ends_at_s=DAY0_S + 99 * B)
    out, _ = run([True] * 3, LifecyclePolicy(), [silence], key="topic_ticker:earnings|TSLA")
    assert out == []
    out, _ = run([True] * 3, LifecyclePolicy(), [silence], key="topic_ticker:earnings|AAPL")
    assert len(out) == 1


def test_silence_on_a_topic_also_mutes_its_topic_ticker_keys() -> None:
    # found by review: muting topic:earnings still paged its pair keys, grouped as "topic:earnings"
    silence = Silence(id="s1", matcher="topic:earnings", starts_at_s=DAY0_S, ends_at_s=DAY0_S + 99 * B)
    out, _ = run([True] * 3, LifecyclePolicy(), [silence], key="topic_ticker:earnings|TSLA")
    assert out == []
    out, _ = run([True] * 3, LifecyclePolicy(), [silence], key="topic_ticker:macro|TSLA")
    assert len(out) == 1


def test_related_keys_firing_together_are_grouped_into_one_notification() -> None:
    now = DAY0_S + B
    keys = ["ticker:TSLA", "topic_ticker:earnings|TSLA", "topic:earnings", "ticker:AAPL", "topic:macro"]
    result = step({}, [signal(k, now, True) for k in keys], now, LifecyclePolicy())
    by_group = {n.group_key: sorted(a.window_key for a in n.alerts) for n in result.notifications}
    assert by_group == {
        "ticker:AAPL": ["ticker:AAPL"],
        "ticker:TSLA": ["ticker:TSLA", "topic:earnings", "topic_ticker:earnings|TSLA"],
        "topic:macro": ["topic:macro"],
    }
    with_all = step({}, [signal(k, now, True) for k in [*keys, "all"]], now, LifecyclePolicy())
    assert [n.group_key for n in with_all.notifications] == ["all"]  # market-wide: one page
    assert group_key("topic_ticker:earnings|TSLA") == "ticker:TSLA"


def test_a_group_spanning_several_tickers_is_labelled_by_their_shared_topic_not_by_one_of_them() -> None:
    """Found by review: earnings|AAPL with earnings|TSLA was labelled ``ticker:AAPL``."""
    now = DAY0_S + B

    def labels(*keys: str) -> list[str]:
        result = step({}, [signal(k, now, True) for k in keys], now, LifecyclePolicy())
        return [n.group_key for n in result.notifications]

    assert labels("topic_ticker:earnings|AAPL", "topic_ticker:earnings|TSLA") == ["topic:earnings"]
    assert labels("topic_ticker:earnings|AAPL", "topic_ticker:earnings|TSLA", "topic_ticker:guidance|TSLA") == ["all"]
    assert labels("topic_ticker:earnings|TSLA", "topic_ticker:guidance|TSLA") == ["ticker:TSLA"]


def test_replaying_the_same_signals_yields_the_same_notification_ids() -> None:
    pattern = [True] * 3 + [False] * 3 + [True] * 2
    first, _ = run(pattern, LifecyclePolicy(cooldown_s=0))
    second, _ = run(pattern, LifecyclePolicy(cooldown_s=0))
    assert [n.id for n in first] == [n.id for n in second]
    assert len({n.id for n in first}) == len(first) == 3


def test_notification_round_trips_through_json() -> None:
    now = DAY0_S + B
    n = step({}, [signal(KEY, now, True)], now, LifecyclePolicy()).notifications[0]
    assert Notification.from_json(n.to_json()) == n


def test_the_pause_is_bounded_and_a_key_without_history_resolves_on_busy_normal_buckets() -> None:
    """Found by a regression review: busy normal buckets of a key whose history was rebuilt or evicted
    (suppressed insufficient_history, baseline share 0) paused the quiet count for up to 12 hours, and a key
    whose flow stays thin and a little negative never resolved."""
    policy = LifecyclePolicy(repeat_interval_s=0)

    def no_history(now: int) -> Signal:
        return replace(signal(KEY, now, False, 0.05), volume=200, suppressed="insufficient_history",
                       baseline_neg_share=0.0)

    out, _ = run([True] * 4 + [no_history] * 2, policy)
    assert statuses(out) == ["firing", "resolved"]
    thin_for_hours = [thin(0.9)] * (policy.flap_window_s // B + 2)
    out, _ = run([True] * 4 + thin_for_hours, policy)
    assert statuses(out) == ["firing", "resolved"]


def test_a_resolved_notice_tells_the_episode_what_fired_and_how_long_it_was_quiet() -> None:
    """Found by review: it carried only the quiet bucket that resolved it (``detectors=-``, numbers of one thin
    bucket) and said neither when the alert fired nor how long it lasted."""
    out, _ = run([True, True, False, False], LifecyclePolicy(resolve_after_buckets=2, repeat_interval_s=0))
    fired, resolved = out
    [item] = resolved.alerts
    assert item.firing_signal == fired.alerts[0].signal and item.firing_signal.active
    assert item.quiet_for_s == 2 * B
    lines = resolved.summary_lines()
    assert lines[0] == f"[RESOLVED] negative sentiment quiet again: {KEY}"
    assert lines[1] == f"- {KEY}: quiet again at 00:20 UTC: no finding for 10m; fired 00:05 UTC, lasted 15m"
    assert lines[2].startswith("  why it fired: neg_share 70% vs baseline 10%") and "detectors=spike" in lines[2]


def test_a_resolved_notice_says_how_bad_the_episode_got_after_its_page() -> None:
    """The page goes out on an episode's first, often small, bucket; RESOLVED showed only that, so a story
    that kept growing after the page looked as small as it started."""
    out, _ = run([share(0.5), share(0.9), share(0.6), False, False],
                      LifecyclePolicy(resolve_after_buckets=2, repeat_interval_s=0))
    fired, resolved = out
    [item] = resolved.alerts
    assert item.firing_signal == fired.alerts[0].signal
    assert item.peak_signal is not None and item.peak_signal.neg_share == 0.9
    assert item.peak_signal.bucket_end_s == DAY0_S + 2 * B
    lines = resolved.summary_lines()
    assert lines[2].startswith("  why it fired: neg_share 50%")
    assert lines[3].startswith("  at its peak: neg_share 90%")


def test_a_resolved_notice_whose_page_was_its_peak_does_not_repeat_it() -> None:
    out, _ = run([share(0.9), share(0.5), False, False], LifecyclePolicy(resolve_after_buckets=2, repeat_interval_s=0))
    [item] = out[-1].alerts
    assert item.peak_signal is None
    assert not any("at its peak" in line for line in out[-1].summary_lines())


def test_a_new_episode_starts_its_peak_afresh() -> None:
    policy = LifecyclePolicy(resolve_after_buckets=1, repeat_interval_s=0, cooldown_s=0)
    out, _ = run([share(0.9), False, share(0.4), share(0.5), False], policy)
    assert statuses(out) == ["firing", "resolved", "firing", "resolved"]
    [item] = out[-1].alerts
    assert item.peak_signal is not None and item.peak_signal.neg_share == 0.5


def test_a_pending_episode_shows_its_own_peak_and_a_bucket_while_pending_can_be_it() -> None:
    """Found by the regression review: a pending alert showed the previous episode's peak, and with ``for_s`` the
    pending buckets never counted."""
    policy = LifecyclePolicy(for_s=2 * B, resolve_after_buckets=1, repeat_interval_s=0)
    _, states = run([share(0.9), share(0.9), share(0.9), False, share(0.3)], policy)
    [state] = states.values()
    assert state.status is AlertStatus.PENDING
    assert state.peak_signal is not None and state.peak_signal.neg_share == 0.3
    out, _ = run([share(0.9), share(0.5), share(0.6), False], policy)
    [resolved] = out[-1].alerts
    assert resolved.firing_signal is not None and resolved.firing_signal.neg_share == 0.6
    assert resolved.peak_signal is not None and resolved.peak_signal.neg_share == 0.9, "its pending start was the peak"


def test_a_state_saved_before_peaks_existed_takes_its_next_active_bucket_as_peak() -> None:
    _, states = run([True], LifecyclePolicy(repeat_interval_s=0))
    [(key, state)] = states.items()
    old = {key: replace(state, peak_signal=None)}
    now = DAY0_S + 2 * B
    result = step(old, [signal(KEY, now, True, 0.8)], now, LifecyclePolicy(repeat_interval_s=0))
    assert result.states[key].peak_signal is not None and result.states[key].peak_signal.neg_share == 0.8


def run_from(pattern: Sequence[Bucket], policy: LifecyclePolicy, page_from_s: int) -> list[Notification]:
    states: dict[str, AlertState] = {}
    out: list[Notification] = []
    for i, active in enumerate(pattern):
        now = DAY0_S + (i + 1) * B
        sig = signal(KEY, now, active) if isinstance(active, bool) else active(now)
        result = step(states, [sig], now, policy, page_from_s=page_from_s)
        states.update(result.states)
        out.extend(result.notifications)
    return out


def test_an_episode_that_starts_and_ends_in_old_data_is_not_paged_at_all() -> None:
    """Found by review: a new consumer group on a topic with a month of history paged every incident in it."""
    policy = LifecyclePolicy(resolve_after_buckets=2, repeat_interval_s=0)
    assert run_from([True, True, False, False, False], policy, page_from_s=DAY0_S + 10 * B) == []


def test_an_episode_from_old_data_still_firing_on_recent_data_pages_then_and_resolves_later() -> None:
    policy = LifecyclePolicy(resolve_after_buckets=2, repeat_interval_s=0)
    out = run_from([True, True, True, True, False, False], policy, page_from_s=DAY0_S + 3 * B)
    assert statuses(out) == ["firing", "resolved"]
    assert out[0].event_time_s == DAY0_S + 3 * B
    assert out[0].alerts[0].started_at_s == DAY0_S + B, "the page says since when it really fires"


def test_reminders_are_not_sent_for_old_buckets_either() -> None:
    policy = LifecyclePolicy(repeat_interval_s=2 * B, cooldown_s=0)
    states: dict[str, AlertState] = {}
    sent = []
    for i in range(8):
        now = DAY0_S + (i + 1) * B
        result = step(states, [signal(KEY, now, True)], now, policy, page_from_s=DAY0_S + 6 * B if i >= 1 else None)
        states.update(result.states)
        sent += [(n.event_time_s, n.alerts[0].repeat) for n in result.notifications]
    assert sent == [(DAY0_S + B, False), (DAY0_S + 6 * B, True), (DAY0_S + 8 * B, True)]


def test_a_resolved_notice_from_before_the_episode_fields_still_reads_and_renders() -> None:
    out, _ = run([True, False, False], LifecyclePolicy(resolve_after_buckets=2))
    payload = out[-1].to_dict()
    for item in payload["alerts"]:
        del item["firing_signal"], item["quiet_for_s"]
    old = Notification.from_json(json.dumps(payload))
    assert old.alerts[0].firing_signal is None and old.alerts[0].quiet_for_s is None
    assert old.summary_lines()[1].endswith("quiet again at 00:15 UTC: no finding; fired 00:05 UTC, lasted 10m")
    assert old.summary_lines()[2].startswith("  latest: neg_share")
