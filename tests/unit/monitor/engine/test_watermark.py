from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monitor.engine.watermark import MAX_AHEAD_OF_CLOCK_S, Watermark


def test_message_in_an_already_closed_bucket_is_late() -> None:
    wm = Watermark(bucket_s=60, allowed_lateness_s=30)
    assert wm.observe(1_000)
    assert wm.observe(1_200)  # watermark 1170 -> buckets ending <= 1140 are closed
    assert wm.is_late(1_079)  # bucket [1020, 1080) closed
    assert not wm.is_late(1_150)  # bucket [1140, 1200) still open
    assert not wm.observe(1_000)


def test_newly_closed_reports_each_boundary_once_in_order() -> None:
    wm = Watermark(bucket_s=60, allowed_lateness_s=0)
    wm.observe(125)
    assert wm.newly_closed() == [120]
    assert wm.newly_closed() == []
    wm.observe(370)
    assert wm.newly_closed() == [180, 240, 300, 360]


def test_first_report_covers_every_bucket_since_the_oldest_data() -> None:
    wm = Watermark(bucket_s=60, allowed_lateness_s=0)
    wm.expect_lanes({"p0", "p1"})
    wm.observe(10, "p0")
    wm.observe(250, "p0")
    assert wm.newly_closed() == []  # p1 holds the watermark
    wm.mark_idle({"p1"})
    assert wm.newly_closed() == [60, 120, 180, 240]


@given(st.lists(st.integers(min_value=0, max_value=100_000), max_size=200), st.integers(1, 5))
def test_lateness_verdicts_do_not_depend_on_batching(events: list[int], splits: int) -> None:
    one = Watermark(bucket_s=60, allowed_lateness_s=90)
    verdicts = [one.observe(e) for e in events]
    other = Watermark(bucket_s=60, allowed_lateness_s=90)
    chunk = max(1, len(events) // splits)
    split_verdicts: list[bool] = []
    for i in range(0, len(events), chunk):
        split_verdicts += [other.observe(e) for e in events[i : i + chunk]]
        other.newly_closed()
    assert verdicts == split_verdicts
    assert one.max_event_s == other.max_event_s


def test_lagging_partition_holds_the_watermark_so_its_data_is_not_late() -> None:
    wm = Watermark(bucket_s=60, allowed_lateness_s=0)
    wm.expect_lanes({"p0", "p1"})
    for t in range(0, 600, 10):
        assert wm.observe(t, "p0")
    assert wm.value_s is None  # p1 has not delivered yet: nothing closes, nothing is late
    assert wm.observe(5, "p1")
    assert wm.value_s == 5
    assert wm.observe(100, "p1")
    assert wm.closed_until_s == 60
    assert not wm.observe(30, "p1")  # older than p1's own progress past a closed bucket: late


def test_idle_lane_stops_holding_and_the_watermark_never_moves_back() -> None:
    wm = Watermark(bucket_s=60, allowed_lateness_s=0)
    wm.expect_lanes({"p0", "p1"})
    wm.observe(300, "p0")
    wm.mark_idle({"p1"})
    assert wm.value_s == 300
    wm.observe(100, "p1")  # p1 wakes up behind: late data is refused, the watermark stays
    assert wm.value_s == 300


def test_revoked_lane_no_longer_holds_the_watermark() -> None:
    wm = Watermark(bucket_s=60, allowed_lateness_s=0)
    wm.expect_lanes({"p0", "p1"})
    wm.observe(200, "p0")
    wm.observe(100, "p1")
    assert wm.value_s == 100
    wm.expect_lanes({"p0"})
    assert wm.value_s == 200


def test_buckets_closed_by_the_cluster_leader_make_data_late_here_without_being_reported() -> None:
    wm = Watermark(bucket_s=60, allowed_lateness_s=120)
    wm.close_through(600)
    assert wm.newly_closed() == []  # closing is the leader's business: nothing to report here
    assert wm.is_late(599) and not wm.is_late(600)
    assert not wm.observe(30)
    assert wm.observe(610)
    wm.close_through(300)  # never moves back
    assert wm.is_late(599) and not wm.is_late(600)


def test_per_lane_promises_judge_each_partition_by_its_own_promise_and_the_evaluated_floor() -> None:
    """Cluster mode: an adopted partition's backlog is older than this instance's own watermark but
    not late -- only what was promised final for it (or evaluated by the leader) is."""
    wm = Watermark(bucket_s=60, allowed_lateness_s=0, per_lane_promises=True)
    wm.expect_lanes({"p0", "p1"})
    wm.observe(1_000, "p0")
    wm.observe(1_000, "p1")
    wm.promise("p0", 960)
    assert wm.closed_until_s == 960
    wm.expect_lanes({"p0", "p1", "p2"})  # adopted: its previous owner promised up to 600
    wm.promise("p2", 600)
    assert wm.observe(700, "p2")  # older than this instance's 960, but not promised final
    assert not wm.observe(599, "p2")
    assert not wm.observe(900, "p0")
    assert wm.observe(900, "p1")  # nothing promised for p1 yet
    wm.close_through(840)
    assert not wm.observe(800, "p1")
    assert wm.lane_closed_s() == {"p0": 960, "p1": 960, "p2": 660}
    wm.expect_lanes({"p0"})  # revoked lanes forget their promises
    wm.expect_lanes({"p0", "p2"})
    assert wm.observe(650, "p2") is False  # ...but the evaluated floor still holds
    assert wm.observe(850, "p2")


def test_a_message_dated_ahead_of_the_clock_does_not_carry_event_time_with_it() -> None:
    """One record stamped 59 minutes ahead (inside source.max_future_s) closed the next hour's buckets, so
    every on-time message after it was late; now it counts at most MAX_AHEAD_OF_CLOCK_S past the clock."""
    now = 1_800_000_000
    wm = Watermark(bucket_s=300, allowed_lateness_s=60, wall_clock=lambda: now)
    assert wm.observe(now - 10)
    assert wm.observe(now + 59 * 60)  # kept: it is in its own (future) bucket
    assert not wm.is_late(now + 5) and wm.observe(now + 5)
    assert wm.value_s is not None and wm.value_s <= now + MAX_AHEAD_OF_CLOCK_S - 60
    wm.advance_to(wm.max_event_s or 0)  # the idle sweep starts from the newest counted time
    assert not wm.is_late(now + 5)


def test_without_a_clock_event_time_follows_the_data() -> None:
    wm = Watermark(bucket_s=300, allowed_lateness_s=60)
    wm.observe(1_800_000_000 + 3_540)
    assert wm.is_late(1_800_000_000)


def test_messages_held_back_to_the_clock_are_counted_until_the_next_report() -> None:
    now = 1_800_000_000
    wm = Watermark(bucket_s=300, allowed_lateness_s=60, wall_clock=lambda: now)
    for ahead_s in (0, MAX_AHEAD_OF_CLOCK_S, MAX_AHEAD_OF_CLOCK_S + 5, 600):
        wm.observe(now + ahead_s)
    skew = wm.take_clock_skew()
    assert (skew.observed, skew.capped, skew.max_excess_s) == (4, 2, 600 - MAX_AHEAD_OF_CLOCK_S)
    assert wm.take_clock_skew().observed == 0
