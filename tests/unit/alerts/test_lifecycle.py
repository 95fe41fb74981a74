"""Alert lifecycle: pending/firing/resolved, cooldown, repeats, flapping, silences, grouping."""

from __future__ import annotations

from collections.abc import Sequence

from alerts.lifecycle import AlertState, LifecyclePolicy, dedup_key, group_key, step
from alerts.model import AlertStatus, Notification, Silence
from tests.unit.alerts.builders import DAY0_S, signal

B = 300
KEY = "ticker:TSLA"


def run(pattern: Sequence[bool], policy: LifecyclePolicy, silences: Sequence[Silence] = (),
        key: str = KEY) -> tuple[list[Notification], dict[str, AlertState]]:
    states: dict[str, AlertState] = {}
    out: list[Notification] = []
    for i, active in enumerate(pattern):
        now = DAY0_S + (i + 1) * B
        result = step(states, [signal(key, now, active)], now, policy, silences)
        states.update(result.states)
        out.extend(result.notifications)
    return out, states


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
