from __future__ import annotations

from collections.abc import Hashable

import pytest

from monitor.engine.time_jumps import OPENING_MAX_PER_CONFIRMATION, JumpGuard, Offer, Reference
from monitor.types import SourceRecord
from tests.fakes import msg

H = 3600
DAY = 86_400
T0 = 1_600_000_000


def _rec(mid: str, event_s: int, lane: Hashable = None, pos: int = 0) -> SourceRecord:
    return SourceRecord(msg(mid, "x", event_s), pos, lane)


def _ids(records: list[SourceRecord]) -> list[str]:
    return [r.message.id for r in records]


def at(ref_s: int | None) -> Reference:
    """Every lane's event time is ``ref_s``."""
    return lambda _lane: ref_s


def _offer(guard: JumpGuard, rec: SourceRecord, ref_s: int | None = T0) -> Offer:
    return guard.offer(rec, int(rec.message.event_time.timestamp()), at(ref_s))


def _guard(max_jump_s: int = 6 * H, confirmations: int = 3) -> JumpGuard:
    """A guard past its opening: the stream started at T0."""
    guard = JumpGuard(max_jump_s, confirmations)
    again: list[SourceRecord] = []
    for i in range(2 * confirmations - 1):
        again = _offer(guard, _rec(f"open{i}", T0), None).again
    assert [_offer(guard, r, None).admit for r in again] == [[r] for r in again]
    assert not guard.holding
    return guard


def test_a_message_within_the_bound_is_admitted_at_once() -> None:
    guard = _guard()
    assert _ids(_offer(guard, _rec("a", T0 + 5 * H)).admit) == ["a"] and not guard.holding


def test_the_stream_starts_at_the_median_of_its_first_messages_so_a_rogue_first_one_is_held() -> None:
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("rogue", T0 + 90 * DAY)] + [_rec(f"m{i}", T0 + i) for i in range(4)]
    assert [_offer(guard, r, None).again for r in stream[:4]] == [[]] * 4 and guard.held_count() == 4
    assert _ids(_offer(guard, stream[4], None).again) == ["rogue", "m0", "m1", "m2", "m3"]
    # offered again: the rogue is a jump from the start (T0 + 2), the rest count
    assert _offer(guard, stream[0], None).held_jump_s is not None
    assert _ids(_offer(guard, stream[1], None).admit) == ["m0"]


def test_a_first_message_dated_years_before_the_rest_of_the_opening_is_refuted() -> None:
    """Found by review: offered again, a first row mistyped 2016 for 2026 became its lane's event time, the
    real stream a confirmed jump past it, and a backtest measured the stream as 10 years long."""
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("old", T0 - 3650 * DAY)] + [_rec(f"m{i}", T0 + i) for i in range(4)]
    offers = [_offer(guard, r, None) for r in stream]
    [(rogue, why)] = offers[4].refuted
    assert rogue.message.id == "old" and "before the other first messages of its partition" in why
    assert _ids(offers[4].again) == ["m0", "m1", "m2", "m3"]


def test_the_opening_judges_each_lane_on_its_own_so_a_partition_days_behind_is_kept() -> None:
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("a0", T0, 0), _rec("b0", T0 - 3 * DAY, 1), _rec("a1", T0 + 1, 0), _rec("b1", T0 - 3 * DAY + 1, 1),
              _rec("a2", T0 + 2, 0)]
    opening = [_offer(guard, r, None) for r in stream][4]
    assert opening.refuted == [] and _ids(opening.again) == ["a0", "b0", "a1", "b1", "a2"]


def test_two_first_messages_on_friday_before_mondays_dense_run_are_kept() -> None:
    """Found by the regression review: Friday 15:00 and 16:30, then Monday's open every 15 min, lost both Friday
    rows (the floor 6 h before the Monday median refuted every earlier row, real or not)."""
    guard = JumpGuard(6 * H, 3)
    monday_s = T0 + 2 * DAY + 18 * H + 30 * 60
    stream = [_rec("fri0", T0), _rec("fri1", T0 + 90 * 60)] + [_rec(f"mon{i}", monday_s + i * 900) for i in range(3)]
    opening = [_offer(guard, r, None) for r in stream][4]
    assert opening.refuted == [] and _ids(opening.again) == ["fri0", "fri1", "mon0", "mon1", "mon2"]


def test_an_unevenly_sparse_opening_keeps_its_first_messages() -> None:
    """One ticker's history (stocknet AGFS): rows months apart, then weeks; its gaps are its own spacing."""
    guard = JumpGuard(6 * H, 3)
    opening = [_offer(guard, _rec(f"s{i}", T0 + days * DAY), None) for i, days in enumerate((0, 85, 176, 196, 218))]
    assert opening[4].again == [] and guard.held_count() == 5  # its newest rows never agree: it waits
    settled = guard.close_opening()  # the stream ended (or went quiet)
    assert settled.refuted == [] and len(settled.again) == 5


def test_a_sparse_opening_settles_by_itself_at_its_row_cap() -> None:
    guard = JumpGuard(6 * H, 3)
    cap = OPENING_MAX_PER_CONFIRMATION * 3
    opening = [_offer(guard, _rec(f"s{i}", T0 + i * 11 * DAY), None) for i in range(cap)]
    assert all(o.again == [] for o in opening[:-1]) and len(opening[-1].again) == cap
    assert opening[-1].refuted == [] and not guard.holding


def test_a_lone_first_message_on_friday_before_mondays_dense_run_is_kept() -> None:
    """Once refuted as standing alone more than the bound before the run; but Friday's last row before
    Monday's open (65 h) lies within a market closure (``MAX_CLOSURE_S``, 10 days) of it, so it is real news,
    and a mistyped date lies further off than that."""
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("fri", T0)] + [_rec(f"mon{i}", T0 + 65 * H + i * 900) for i in range(4)]
    opening = [_offer(guard, r, None) for r in stream][4]
    assert opening.refuted == [] and _ids(opening.again) == ["fri", "mon0", "mon1", "mon2", "mon3"]


def test_two_first_messages_mistyped_years_before_a_dense_run_are_both_refuted() -> None:
    """Found by review: two rows mistyped 2016 for 2026 lay within the bound of each other, so each
    'corroborated' the other, both were counted and a backtest measured the stream as 10 years long."""
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("old0", T0 - 3650 * DAY), _rec("old1", T0 - 3650 * DAY + 60)] + [_rec(f"m{i}", T0 + i) for i in
                                                                                      range(3)]
    opening = [_offer(guard, r, None) for r in stream][4]
    assert _ids([rec for rec, _ in opening.refuted]) == ["old0", "old1"]
    assert _ids(opening.again) == ["m0", "m1", "m2"]
    assert all("before the other first messages of its partition" in why for _, why in opening.refuted)


@pytest.mark.parametrize("days_before", [10.5, 30])
def test_first_messages_more_than_a_market_closure_before_a_dense_run_are_refuted_alone_or_together(
    days_before: float,
) -> None:
    """No market closes for more than 10 days: a row (or rows) further off is a mistyped date, not the last
    trading day's news; the rows of the run itself, and a row within a closure of it, are kept."""
    guard = JumpGuard(6 * H, 3)
    start_s = T0 - int(days_before * DAY)
    stream = [_rec("far0", start_s), _rec("far1", start_s + 10 * H)] + [_rec(f"m{i}", T0 + i * 900) for i in range(3)]
    opening = [_offer(guard, r, None) for r in stream][4]
    assert _ids([rec for rec, _ in opening.refuted]) == ["far0", "far1"] and len(opening.again) == 3
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("far", start_s - 3 * DAY), _rec("fri", T0 - 3 * DAY)] + [_rec(f"m{i}", T0 + i * 900) for i in
                                                                             range(3)]
    opening = [_offer(guard, r, None) for r in stream][4]
    assert _ids([rec for rec, _ in opening.refuted]) == ["far"] and _ids(opening.again)[0] == "fri"


def test_a_bound_longer_than_a_market_closure_sets_the_gap_an_opening_row_may_lie_before_the_run() -> None:
    guard = JumpGuard(12 * DAY, 3)
    stream = [_rec("near", T0 - 11 * DAY)] + [_rec(f"m{i}", T0 + i * 900) for i in range(4)]
    assert [_offer(guard, r, None) for r in stream][4].refuted == []
    guard = JumpGuard(12 * DAY, 3)
    stream = [_rec("far", T0 - 13 * DAY)] + [_rec(f"m{i}", T0 + i * 900) for i in range(4)]
    assert _ids([rec for rec, _ in [_offer(guard, r, None) for r in stream][4].refuted]) == ["far"]


def test_a_sparse_opening_is_not_judged_even_years_after_its_first_message() -> None:
    """Its newer half lies further apart than the bound: the gaps are the data's own spacing (one ticker's
    history), and a mistyped first row there is caught only as a jump by the rows after it, if at all."""
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("old", T0 - 3650 * DAY)] + [_rec(f"s{i}", T0 + i * DAY) for i in range(4)]
    assert [_offer(guard, r, None).again for r in stream] == [[]] * 5
    opening = guard.close_opening()
    assert opening.refuted == [] and len(opening.again) == 5


@pytest.mark.parametrize("mistyped", [3, 4])
def test_more_mistyped_first_messages_than_real_ones_wait_for_the_real_ones_and_are_refuted(mistyped: int) -> None:
    """Found by review: three rows mistyped 2016 for 2026 (a vendor export sorted by date puts them all first)
    outvoted the next two real ones: the stream started in 2016, nothing was refuted and a backtest measured
    3,656 days. The opening now waits until its newest rows agree (up to ``2 * confirmations - 2`` such rows:
    the first five all mistyped look like a stream of their own, next test)."""
    guard = JumpGuard(6 * H, 3)
    stream = [_rec(f"old{i}", T0 - 3650 * DAY + i * 60) for i in range(mistyped)]
    stream += [_rec(f"m{i}", T0 + i * 60) for i in range(3)]
    offers = [_offer(guard, r, None) for r in stream]
    assert all(o.again == [] and o.refuted == [] for o in offers[:-1])
    assert _ids([rec for rec, _ in offers[-1].refuted]) == [f"old{i}" for i in range(mistyped)]
    assert _ids(offers[-1].again) == ["m0", "m1", "m2"]
    again = offers[-1].again
    assert [_ids(_offer(guard, r, None).admit) for r in again] == [["m0"], ["m1"], ["m2"]]  # started at T0


def test_an_opening_of_only_mistyped_rows_starts_there_and_the_real_stream_is_a_confirmed_jump() -> None:
    """The documented limit: five consistent rows are a stream; ``source.min_event_time`` refuses such dates."""
    guard = JumpGuard(6 * H, 3)
    offers = [_offer(guard, _rec(f"old{i}", T0 - 3650 * DAY + i * 60), None) for i in range(5)]
    assert offers[-1].refuted == [] and len(offers[-1].again) == 5


def test_a_rogue_first_message_dated_ahead_does_not_make_the_opening_wait() -> None:
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("ahead", T0 + 3650 * DAY)] + [_rec(f"m{i}", T0 + i) for i in range(4)]
    assert _ids([_offer(guard, r, None) for r in stream][4].again) == ["ahead", "m0", "m1", "m2", "m3"]


def test_the_last_rows_before_easter_are_kept() -> None:
    """Found by review: Thursday's close to Tuesday's open (Good Friday, Easter Monday) is 4 days 15 hours; a
    4-day closure bound dead-lettered Thursday's news."""
    guard = JumpGuard(6 * H, 3)
    stream = [_rec("thu", T0)] + [_rec(f"tue{i}", T0 + 4 * DAY + 15 * H + i * 60) for i in range(4)]
    opening = [_offer(guard, r, None) for r in stream][4]
    assert opening.refuted == [] and _ids(opening.again)[0] == "thu"


def test_an_evenly_sparse_opening_keeps_its_first_message() -> None:
    guard = JumpGuard(6 * H, 3)
    opening = [_offer(guard, _rec(f"s{i}", T0 + i * 8 * H), None) for i in range(5)][4]
    assert opening.refuted == [] and len(opening.again) == 5


def test_a_stream_that_ends_during_its_opening_is_offered_again_as_it_is() -> None:
    guard = JumpGuard(6 * H, 3)
    assert _offer(guard, _rec("a", T0), None).admit == []
    assert _ids(guard.close_opening().again) == ["a"] and not guard.holding
    assert _ids(_offer(guard, _rec("a", T0), None).admit) == ["a"]


def test_a_lone_jump_is_held_then_refuted_by_the_next_messages_and_they_are_admitted() -> None:
    guard = _guard()
    held = _offer(guard, _rec("rogue", T0 + 300 * DAY))
    assert held.admit == [] and held.held_jump_s == 300 * DAY and guard.holding
    assert _ids(_offer(guard, _rec("b", T0 + 10)).admit) == ["b"]
    assert _ids(_offer(guard, _rec("c", T0 + 20)).admit) == ["c"] and guard.holding
    third = _offer(guard, _rec("d", T0 + 30))
    assert _ids(third.admit) == ["d"]
    assert [(r.message.id, "max_event_time_jump_s=21600" in why) for r, why in third.refuted] == [("rogue", True)]
    assert not guard.holding


def test_a_real_gap_is_confirmed_by_its_lane_and_every_held_message_is_admitted_in_order() -> None:
    guard = _guard()
    after = T0 + 2 * DAY
    assert _offer(guard, _rec("a", after)).admit == []
    assert _offer(guard, _rec("b", after + 60)).admit == []
    offer = _offer(guard, _rec("c", after + 120))
    assert _ids(offer.admit) == ["a", "b", "c"] and offer.refuted == []
    assert offer.confirmed_jump_s == after + 120 and not guard.holding


def test_a_sparse_stream_confirms_its_jumps_even_when_they_lie_further_apart_than_the_bound() -> None:
    """Found by review: votes had to lie within the bound of the first held message, so a stream with one
    message every 8 h refuted each in turn and was dead-lettered whole."""
    guard = _guard()
    offers = [_offer(guard, _rec(f"s{i}", T0 + (i + 1) * 8 * H)) for i in range(3)]
    assert _ids(offers[2].admit) == ["s0", "s1", "s2"] and offers[2].refuted == []


def test_a_rogue_among_the_votes_of_a_real_jump_is_refuted_and_the_rest_admitted() -> None:
    guard = _guard()
    rogue, real = T0 + 365 * DAY, T0 + 2 * DAY
    _offer(guard, _rec("r1", real))
    _offer(guard, _rec("rogue", rogue))
    offer = _offer(guard, _rec("r2", real + 60))
    assert _ids(offer.admit) == ["r1", "r2"]
    assert [r.message.id for r, _ in offer.refuted] == ["rogue"]


def test_one_confirmation_means_every_jump_is_believed_at_once() -> None:
    guard = _guard(confirmations=1)
    offer = _offer(guard, _rec("a", T0 + DAY))
    assert _ids(offer.admit) == ["a"] and offer.confirmed_jump_s == T0 + DAY
    assert _ids(_offer(JumpGuard(6 * H, 1), _rec("b", T0), None).admit) == ["b"]  # no opening either


def test_max_jump_0_turns_the_guard_off() -> None:
    assert _ids(_offer(JumpGuard(0, 3), _rec("a", T0 + 10**8)).admit) == ["a"]


def test_a_jump_is_measured_from_its_own_lanes_event_time() -> None:
    """Found by review: measured from the newest of any lane, a row of a partition replaying a backlog two
    days behind, mistyped to today, was no jump, moved that partition (so the watermark) to today, and the
    rest of the backlog was late."""
    guard = _guard()
    lanes = {"p0": T0 + 2 * DAY, "p1": T0}
    now = guard.offer(_rec("p0-now", T0 + 2 * DAY, "p0"), T0 + 2 * DAY, lanes.get)
    assert _ids(now.admit) == ["p0-now"]  # no jump for the current partition
    offer = guard.offer(_rec("p1-typo", T0 + 2 * DAY, "p1"), T0 + 2 * DAY, lanes.get)
    assert offer.admit == [] and offer.held_jump_s == 2 * DAY


def test_a_redelivered_copy_of_a_held_message_is_not_a_second_vote() -> None:
    guard = _guard()
    rogue = _rec("rogue", T0 + 30 * DAY)
    for _ in range(3):
        assert _offer(guard, rogue).admit == []
    assert guard.held_count() == 1


def test_lanes_are_judged_separately() -> None:
    guard = _guard(confirmations=2)
    assert _offer(guard, _rec("p0", T0 + DAY, lane=0)).admit == []
    assert _ids(_offer(guard, _rec("p1", T0 + 5, lane=1)).admit) == ["p1"]
    assert guard.holding  # a message of another partition neither confirms nor refutes partition 0's jump


def test_no_record_at_or_after_a_lanes_first_held_one_is_committable() -> None:
    guard = _guard()
    a, rogue, b = _rec("a", T0, 0, 0), _rec("rogue", T0 + DAY, 0, 1), _rec("b", T0 + 5, 0, 2)
    other = _rec("o", T0, 1, 0)
    for rec in (a, rogue, b):
        _offer(guard, rec)
    assert _ids(guard.committable([a, rogue, other, b])) == ["a", "o"]
    # a later read of the same lane stays blocked until the hold ends
    c = _rec("c", T0 + 6, 0, 3)
    _offer(guard, c)
    assert _ids(guard.committable([c])) == []
    d = _rec("d", T0 + 7, 0, 4)
    assert _offer(guard, d).refuted
    assert _ids(guard.committable([d])) == ["d"]


def test_at_the_end_of_the_stream_a_held_jump_is_returned_with_why() -> None:
    guard = _guard()
    _offer(guard, _rec("tail", T0 + DAY))
    [(rec, why)] = guard.drain()
    assert rec.message.id == "tail" and "ended before" in why
    assert not guard.holding


def test_event_time_that_caught_up_without_data_releases_the_hold() -> None:
    guard = _guard()
    _offer(guard, _rec("a", T0 + 8 * H))
    assert guard.recheck(at(T0 + H)) == []  # still 7 h ahead
    assert _ids(guard.recheck(at(T0 + 3 * H))) == ["a"] and not guard.holding


def test_a_revoked_lane_forgets_its_hold() -> None:
    guard = _guard()
    _offer(guard, _rec("a", T0 + DAY, lane=0))
    assert _ids(guard.forget_lanes([1])) == ["a"] and not guard.holding


def test_a_lane_holds_fewer_messages_than_the_confirmations() -> None:
    guard = _guard()
    for i in range(50):  # rogues and in-range messages in turn
        _offer(guard, _rec(f"j{i}", T0 + (10 + i) * DAY if i % 2 else T0 + i))
        assert guard.held_count() <= 3 - 1


def test_the_opening_blocks_commits_of_its_lanes_and_a_revoked_lane_leaves_it() -> None:
    guard = JumpGuard(6 * H, 3)
    a, b = _rec("a", T0, 0, 0), _rec("b", T0, 1, 0)
    _offer(guard, a, None)
    _offer(guard, b, None)
    assert guard.committable([a, b]) == []
    assert _ids(guard.forget_lanes([1])) == ["a"] and guard.held_count() == 1


def test_invalid_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        JumpGuard(-1, 3)
    with pytest.raises(ValueError):
        JumpGuard(60, 0)


def test_another_message_under_a_held_ids_name_is_not_taken_for_a_copy() -> None:
    """Found by review: matched by id alone, a corrected re-publication of a held row was dropped unseen."""
    guard = _guard()
    _offer(guard, _rec("wire-1", T0 + 30 * DAY, pos=5))
    fixed = _offer(guard, _rec("wire-1", T0 + 60, pos=9))  # same id, the date fixed, another offset
    assert _ids(fixed.admit) == ["wire-1"]


def test_a_redelivered_message_votes_against_a_jump_once() -> None:
    guard = _guard()
    _offer(guard, _rec("rogue", T0 + 30 * DAY, pos=1))
    behind = _rec("b", T0 + 60, pos=2)
    for _ in range(3):
        assert _offer(guard, behind).refuted == []
    assert guard.holding


def test_mistyped_rows_arriving_after_the_real_opening_rows_are_refuted_not_made_the_start() -> None:
    """Found by the regression review: three real rows, then three mistyped 2016: the newest three agreed on
    2016, nothing was refuted, the stream started in 2016 and the real rows confirmed a jump."""
    guard = JumpGuard(6 * H, 3)
    stream = [_rec(f"m{i}", T0 + i * 60) for i in range(3)]
    stream += [_rec(f"old{i}", T0 - 3650 * DAY + i * 60) for i in range(3)]
    settled = [_offer(guard, r, None) for r in stream[:5]][4]
    assert _ids([rec for rec, _ in settled.refuted]) == ["old0", "old1"]  # the opening's, before the run
    assert [_ids(_offer(guard, r, None).admit) for r in settled.again] == [["m0"], ["m1"], ["m2"]]  # from T0 + 60
    # a later mistyped row lies behind the stream: admitted here, the watermark's lateness check drops it
    assert _ids(_offer(guard, stream[5], T0 + 120).admit) == ["old2"] and not guard.holding
