"""A cluster member measures its clock against Redis's at each heartbeat (found by review: one member whose clock
ran 10 min slow held every page of the cluster back by 10 min, with no warning)."""

from __future__ import annotations

from collections.abc import Hashable

from structlog.testing import capture_logs

from monitor.cluster.clock import CLOCK_WARN_EVERY_S, ClockOffset
from monitor.cluster.member import ClusterMember
from monitor.engine.watermark import Watermark
from monitor.metrics import prometheus_client_value

LOCAL_S = 1_700_000_000.0
BUCKET_S = 60


class Ticking:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _clock(monotonic: Ticking | None = None) -> ClockOffset:
    return ClockOffset(wall_clock=lambda: LOCAL_S, monotonic=monotonic or Ticking())


def test_a_host_clock_ten_minutes_behind_redis_is_exported_and_warned_once_per_interval() -> None:
    monotonic = Ticking()
    clock = _clock(monotonic)
    with capture_logs() as logs:
        clock.measure(int((LOCAL_S + 600) * 1000), LOCAL_S - 0.01, LOCAL_S + 0.01)
        monotonic.now += CLOCK_WARN_EVERY_S - 1
        clock.measure(int((LOCAL_S + 600) * 1000), LOCAL_S - 0.01, LOCAL_S + 0.01)
        monotonic.now += 1
        clock.measure(int((LOCAL_S + 600) * 1000), LOCAL_S - 0.01, LOCAL_S + 0.01)
    assert clock.offset_s == 600
    assert prometheus_client_value("finsent_clock_offset_seconds") == 600
    warned = [e for e in logs if e["event"] == "host_clock_off"]
    assert len(warned) == 2 and warned[0]["offset_s"] == 600 and "NTP" in warned[0]["fix"]


def test_a_host_within_a_second_of_redis_is_not_warned() -> None:
    clock = _clock()
    with capture_logs() as logs:
        clock.measure(int((LOCAL_S - 0.8) * 1000), LOCAL_S, LOCAL_S)
    assert logs == [] and clock.offset_s is not None and abs(clock.offset_s + 0.8) < 0.01


class Cluster:
    def __init__(self) -> None:
        self.clock = _clock()


class Lanes:
    def lane_key(self, lane: Hashable) -> str:
        return f"t:{lane}"


def _member_watermark(offset_s: float) -> Watermark:
    cluster = Cluster()
    watermark = Watermark(bucket_s=BUCKET_S, allowed_lateness_s=0, wall_clock=lambda: LOCAL_S)
    ClusterMember(cluster, Lanes(), watermark)  # type: ignore[arg-type]
    cluster.clock.measure(int((LOCAL_S + offset_s) * 1000), LOCAL_S, LOCAL_S)
    return watermark


def test_a_slow_hosts_event_time_cap_follows_the_redis_clock() -> None:
    watermark = _member_watermark(offset_s=600)
    watermark.observe(int(LOCAL_S) + 590, lane=0)
    assert watermark.lane_closed_s()[0] == (int(LOCAL_S) + 590) // BUCKET_S * BUCKET_S


def test_a_fast_hosts_event_time_cap_stays_at_its_own_clock() -> None:
    watermark = _member_watermark(offset_s=-600)
    watermark.observe(int(LOCAL_S) + 590, lane=0)
    assert watermark.lane_closed_s()[0] == (int(LOCAL_S) + watermark.max_ahead_s) // BUCKET_S * BUCKET_S
