"""Stored alert states stay bounded: over ``max_alert_states`` the idle states whose memory ends soonest go."""

from __future__ import annotations

from alerts.lifecycle import AlertState, dedup_key
from alerts.model import AlertStatus
from monitor.config import AlertSettings
from monitor.windows.memory import MemoryWindowStore
from tests.unit.alerts.builders import DAY0_S, memory_engine, signal

B = 300
HOUR_S = 3600


def idle(key: str, status: AlertStatus, episode_s: int, resolved_s: int, updated_s: int) -> AlertState:
    dk = dedup_key("negative_sentiment", key)
    return AlertState(dk, "negative_sentiment", key, status, started_at_s=episode_s, resolved_at_s=resolved_s,
                      last_firing_notified_s=episode_s, episode_starts_s=(episode_s,), sequence=2,
                      updated_at_s=updated_s, last_signal=signal(key, updated_s, False))


def test_over_the_cap_an_alert_in_cooldown_outlives_inactive_states_touched_by_steady_data() -> None:
    """Found by review: the cap dropped the least recently updated idle state, which a key with steady data never
    is, so a story resolved minutes ago lost its cooldown and paged again at once."""
    now = DAY0_S + 2 * 86_400
    engine = memory_engine(MemoryWindowStore(bucket_s=B, retention_s=8 * 86_400),
                           AlertSettings(max_alert_states=10, repeat_interval_s=0), [])
    steady = [idle(f"ticker:K{i}", AlertStatus.INACTIVE, now - 3 * HOUR_S, now - 3 * HOUR_S + 2 * B, now)
              for i in range(10)]
    recent = idle("ticker:TSLA", AlertStatus.RESOLVED, now - 3 * B, now - B, now - B)
    states = {s.dedup_key: s for s in [*steady, recent]}
    deleted = engine._prune(states, now)
    assert len(deleted) == 1 and recent.dedup_key in states
    assert len(states) == 10
