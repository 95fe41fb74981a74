"""AlertStateStore contract, run on memory and Redis."""

from __future__ import annotations

import pytest

from alerts.lifecycle import AlertState, dedup_key
from alerts.model import AlertStatus, Silence
from alerts.state import AlertStateStore, CursorMovedError, SilenceLimitError
from tests.unit.alerts.builders import DAY0_S, signal


def state(key: str, status: AlertStatus = AlertStatus.FIRING) -> AlertState:
    return AlertState(dedup_key=dedup_key("negative_sentiment", key), rule="negative_sentiment",
                      window_key=key, status=status, started_at_s=DAY0_S, notified=True,
                      last_firing_notified_s=DAY0_S, sequence=2,
                      episode_starts_s=(DAY0_S,), last_signal=signal(key, DAY0_S, True))


async def test_committed_states_and_cursor_load_back_equal(state_store: AlertStateStore) -> None:
    assert await state_store.get_cursor() is None and await state_store.load_states() == {}
    a, b = state("ticker:TSLA"), state("topic:earnings", AlertStatus.RESOLVED)
    await state_store.commit([a, b], [], DAY0_S + 300)
    assert await state_store.load_states() == {a.dedup_key: a, b.dedup_key: b}
    assert await state_store.get_cursor() == DAY0_S + 300


async def test_commit_deletes_and_overwrites(state_store: AlertStateStore) -> None:
    a, b = state("ticker:TSLA"), state("topic:earnings")
    await state_store.commit([a, b], [], DAY0_S)
    a2 = AlertState(dedup_key=a.dedup_key, rule=a.rule, window_key=a.window_key, status=AlertStatus.RESOLVED)
    await state_store.commit([a2], [b.dedup_key], DAY0_S + 600)
    assert await state_store.load_states() == {a.dedup_key: a2}


async def test_a_commit_from_a_pass_whose_cursor_moved_meanwhile_writes_nothing(state_store: AlertStateStore) -> None:
    """A stalled cluster leader's late commit moved the cursor back, so the new leader judged those buckets
    again and sent a RESOLVED for an alert that was still spiking (found by review)."""
    a = state("ticker:TSLA")
    await state_store.commit([], [], DAY0_S + 300, after_s=None)  # first pass: no cursor yet
    await state_store.commit([a], [], DAY0_S + 2_700, after_s=DAY0_S + 300)  # the new leader's pass
    stale = AlertState(dedup_key=a.dedup_key, rule=a.rule, window_key=a.window_key, status=AlertStatus.RESOLVED)
    with pytest.raises(CursorMovedError):
        await state_store.commit([stale], [], DAY0_S + 600, after_s=DAY0_S + 300)  # the stalled one's
    assert await state_store.get_cursor() == DAY0_S + 2_700
    assert await state_store.load_states() == {a.dedup_key: a}
    with pytest.raises(CursorMovedError):
        await state_store.commit([], [], DAY0_S + 600, after_s=None)


async def test_silences_are_listed_expired_and_bounded(state_store: AlertStateStore) -> None:
    now = DAY0_S
    for i in range(3):
        await state_store.add_silence(Silence(f"s{i}", "ticker:*", now, now + 100 + i), now)
    with pytest.raises(SilenceLimitError):
        await state_store.add_silence(Silence("s3", "topic:*", now, now + 100), now)
    assert await state_store.expire_silence("s0", now + 10)
    assert not await state_store.expire_silence("nope", now + 10)
    listed = {s.id: s for s in await state_store.list_silences()}
    assert listed["s0"].ends_at_s == now + 10 and not listed["s0"].active_at(now + 10)
    assert listed["s1"].active_at(now + 10)
    await state_store.add_silence(Silence("s3", "topic:*", now + 20, now + 200), now + 20)  # s0 pruned
    assert sorted(s.id for s in await state_store.list_silences()) == ["s1", "s2", "s3"]
